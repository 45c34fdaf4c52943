import json
import time

import pytest
import torch

from digitread import create_model, load_model
from digitread.config import AugmentConfig, DataConfig, RunConfig, TrainConfig
from digitread.data.mnist import load_mnist
from digitread.errors import ConfigError
from digitread.train.logging import NullLogger
from digitread.train.loop import CHECKPOINT_FILE, TrainingDiverged, fit, seed_everything
from digitread.train.optim import validate


@pytest.fixture(scope="module")
def tiny(tiny_dataset):
    folder, spec = tiny_dataset
    return load_mnist(folder, val_size=100, seed=0, spec=spec)


def _cfg(**train) -> RunConfig:
    base = dict(model="cnn_small", epochs=2, batch_size=50, lr=3e-3, seed=0)
    return RunConfig(train=TrainConfig(**{**base, **train}), augment=AugmentConfig(rotate=5, translate=0.05))


def _train(data, out, **train):
    cfg = _cfg(**train)
    seed_everything(cfg.train.seed)
    return fit(create_model(cfg.train.model), data, cfg, out, progress=False)


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "rmsprop", "sgd"])
def test_each_optimizer_learns_the_tiny_set(tiny, tmp_path, optimizer):
    lr = {"sgd": 0.05, "rmsprop": 1e-3}.get(optimizer, 3e-3)
    result = _train(tiny, tmp_path, optimizer=optimizer, lr=lr, nesterov=True, epochs=3)
    assert result.metrics["test_accuracy"] > 0.9, result.history


def test_run_folder_holds_model_config_history_and_checkpoint(tiny, tmp_path):
    result = _train(tiny, tmp_path, schedule="cosine")
    names = {p.name for p in tmp_path.iterdir()}
    assert {"model.safetensors", "config.json", "train_config.json", "history.json", CHECKPOINT_FILE} <= names
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["metrics"]["test_accuracy"] == result.metrics["test_accuracy"]
    assert config["train"]["train"]["schedule"] == "cosine"
    assert len(json.loads((tmp_path / "history.json").read_text())) == 2
    assert not list(tmp_path.glob(".*.tmp"))


def test_same_seed_gives_the_same_model(tiny, tmp_path):
    a = _train(tiny, tmp_path / "a", limit_batches=4)
    b = _train(tiny, tmp_path / "b", limit_batches=4)
    c = _train(tiny, tmp_path / "c", limit_batches=4, seed=1)
    sa, sb, sc = (load_model(p).state_dict() for p in (a.out_dir, b.out_dir, c.out_dir))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


class _StopAfter(NullLogger):
    def __init__(self, epoch: int):
        self.epoch = epoch

    def log_epoch(self, epoch, scalars):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def test_resume_continues_to_the_same_model_as_an_uninterrupted_run(tiny, tmp_path):
    whole = _train(tiny, tmp_path / "whole", epochs=3)
    cfg = _cfg(epochs=3)
    seed_everything(0)
    with pytest.raises(KeyboardInterrupt):
        fit(create_model("cnn_small"), tiny, cfg, tmp_path / "cut", logger=_StopAfter(2), progress=False)
    assert not (tmp_path / "cut" / "model.safetensors").exists()
    seed_everything(123)  # resuming must not depend on the process's own random state
    resumed = fit(create_model("cnn_small"), tiny, cfg, tmp_path / "cut", resume=True, progress=False)
    assert resumed.metrics["steps"] == whole.metrics["steps"]
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in whole.history]
    a, b = load_model(whole.out_dir).state_dict(), load_model(resumed.out_dir).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_early_stopping_stops_when_validation_stalls(tiny, tmp_path):
    result = _train(tiny, tmp_path, epochs=30, patience=1, lr=1e-9, schedule="constant")
    assert result.stopped_early and len(result.history) < 30


def test_a_diverging_loss_stops_with_a_clear_message_and_keeps_the_checkpoint(tiny, tmp_path):
    _train(tiny, tmp_path, epochs=1)
    before = (tmp_path / CHECKPOINT_FILE).read_bytes()
    cfg = _cfg(model="seed_mlp", epochs=2, optimizer="sgd", lr=1e30, schedule="constant")
    with pytest.raises(TrainingDiverged, match="lower --lr"):
        fit(create_model("seed_mlp"), tiny, cfg, tmp_path, progress=False)  # the same run folder
    assert (tmp_path / CHECKPOINT_FILE).read_bytes() == before


@pytest.mark.parametrize(
    "bad",
    [
        dict(optimizer="adagrad"),
        dict(schedule="linear"),
        dict(epochs=0),
        dict(lr=-1.0),
        dict(precision="fp8"),
        dict(outlier_letters=1.5),
        dict(outlier_marks=-0.1),
    ],
)
def test_impossible_settings_fail_before_training(bad):
    with pytest.raises(ConfigError):
        validate(TrainConfig(**bad))


@pytest.mark.slow
def test_cnn_small_learns_real_mnist_in_one_short_epoch(mnist, tmp_path):
    cfg = RunConfig(
        train=TrainConfig(model="cnn_small", epochs=1, batch_size=128, seed=0),
        data=DataConfig(train_subset=12000),
        augment=AugmentConfig(rotate=0, translate=0, scale=0),
    )
    seed_everything(0)
    result = fit(create_model("cnn_small"), mnist, cfg, tmp_path, progress=False)
    assert result.metrics["test_accuracy"] >= 0.95, result.metrics


def test_a_probe_sees_the_model_during_training_with_the_clock_stopped(tiny, tmp_path):
    calls = []

    def probe(model, step, seconds):
        assert not model.training  # evaluated in eval mode, then put back to training
        calls.append((step, seconds))
        time.sleep(0.2)  # far longer than the tiny run's steps: it must not count as training time

    cfg = _cfg(epochs=2)
    seed_everything(0)
    start = time.perf_counter()
    result = fit(create_model("cnn_small"), tiny, cfg, tmp_path, progress=False, probe=probe, probe_every=3)
    wall = time.perf_counter() - start
    steps = [s for s, _ in calls]
    assert steps == list(range(3, result.metrics["steps"] + 1, 3))
    seconds = [t for _, t in calls]
    assert seconds == sorted(seconds) and seconds[-1] <= result.metrics["train_seconds"]
    assert wall - result.metrics["train_seconds"] >= 0.2 * len(calls)


@pytest.mark.parametrize("model", ["cnn_fast", "cnn_fast24", "cnn_fast_wide", "cnn_fast_wide24"])
def test_the_fast_recipes_models_train_and_round_trip(tiny, tmp_path, model):
    result = _train(tiny, tmp_path, model=model, epochs=3)
    assert result.metrics["test_accuracy"] > 0.9, result.history
    loaded = load_model(tmp_path)
    x = torch.rand(4, 1, 28, 28)
    assert torch.allclose(loaded(x), result.model(x), atol=1e-5)


def test_a_cropping_fast_cnn_reads_the_centre_of_the_digit_only():
    cropping = create_model("cnn_fast_wide24").eval()
    on_the_centre = create_model("cnn_fast_wide", in_size=24)
    on_the_centre.load_state_dict(cropping.state_dict())  # the same weights: 6x6 maps, the same head
    x = torch.randn(4, 1, 28, 28)
    assert torch.equal(cropping(x), on_the_centre.eval()(x[..., 2:-2, 2:-2]))
    border = x.clone()
    border[..., :2, :] = border[..., -2:, :] = border[..., :, :2] = border[..., :, -2:] = 5.0
    assert torch.equal(cropping(x), cropping(border)), "the outer two pixels are not read"


@pytest.mark.parametrize("norm", [False, True])
def test_the_fast_cnns_pool_before_its_relu_computes_what_relu_then_pool_did(norm):
    model = create_model("cnn_fast_wide", norm=norm).eval()
    stem = 2 if norm else 1  # conv (and BatchNorm), then the max-pool and the ReLU
    pool, relu = model.features[stem], model.features[stem + 1]
    assert isinstance(pool, torch.nn.MaxPool2d) and isinstance(relu, torch.nn.ReLU)
    before = torch.nn.Sequential(*model.features[:stem], relu, pool, *model.features[stem + 2 :])
    x = torch.randn(4, 1, 28, 28)
    assert torch.equal(model.features(x), before(x))
