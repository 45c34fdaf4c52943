"""Ensembles of digit models: soft and majority voting, weights, one model folder that works wherever a
model does (load, predict, read, ONNX), and bagging from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from digitread import DigitClassifier, load_model
from digitread.cli import main
from digitread.errors import ConfigError
from digitread.export import onnx_bytes
from digitread.train.ensemble import build_digit_ensemble

EXAMPLES = sorted((Path(__file__).parents[1] / "examples" / "digits").glob("*.png"))


@pytest.fixture(scope="module")
def members(tmp_path_factory, mnist_path) -> list[Path]:
    """Two short real runs (cnn_small on 5,000 images, one epoch each), of different seeds."""
    root = tmp_path_factory.mktemp("members")
    runs = []
    for seed in (0, 1):
        run = root / f"m{seed}"
        args = ["train", "--recipe", "smoke", "--seed", str(seed), "--out", str(run), "--data-dir", str(mnist_path)]
        assert main([*args, "--quiet"]) == 0
        runs.append(run)
    return runs


def _probs(model, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return torch.softmax(model(x), 1)


def test_soft_voting_is_the_mean_of_the_members_probabilities(members, mnist_path, tmp_path):
    result = build_digit_ensemble(members, tmp_path / "soft", data_dir=str(mnist_path))
    ensemble = load_model(tmp_path / "soft")
    a, b = (load_model(m) for m in members)
    x = torch.randn(6, 1, 28, 28)
    expected = (_probs(a, x) + _probs(b, x)) / 2
    assert torch.allclose(_probs(ensemble, x), expected, atol=1e-5)
    config = json.loads((tmp_path / "soft" / "config.json").read_text())
    assert config["arch"] == "digit_ensemble" and len(config["members"]) == 2
    assert config["metrics"]["test_accuracy"] == result["test_accuracy"] > 0.9
    # Seeds 0 and 1 held out different validation images: too few are unseen by both to calibrate on.
    assert "calibration" not in config and result["calibration"] is None


def test_majority_voting_and_weights(members, mnist_path, tmp_path):
    build_digit_ensemble(members, tmp_path / "first", weights=[1, 0], data_dir=str(mnist_path))
    only_first, first = load_model(tmp_path / "first"), load_model(members[0])
    x = torch.randn(16, 1, 28, 28)
    assert torch.equal(_probs(only_first, x).argmax(1), _probs(first, x).argmax(1))
    build_digit_ensemble(members, tmp_path / "vote", voting="majority", data_dir=str(mnist_path))
    p = _probs(load_model(tmp_path / "vote"), x)
    agree = _probs(first, x).argmax(1) == _probs(load_model(members[1]), x).argmax(1)
    assert agree.any() and (~agree).any(), "random inputs on which the two members both agree and disagree"
    assert torch.all(p.max(1).values[agree] > 0.99)  # both voted for it
    assert torch.all(p.max(1).values[~agree] < 0.51)  # one vote each: the tie broken by the mean probability


def test_an_ensemble_predicts_reads_and_exports_like_one_model(members, mnist_path, tmp_path, capsys):
    build_digit_ensemble(members, tmp_path / "e", data_dir=str(mnist_path))
    assert main(["predict", str(tmp_path / "e"), *map(str, EXAMPLES[:3])]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines] == [p.stem.split("_")[1] for p in EXAMPLES[:3]]
    onnx = DigitClassifier.from_pretrained(tmp_path / "e", backend="onnx")  # parity-checked at load
    torch_backend = DigitClassifier.from_pretrained(tmp_path / "e", backend="torch")
    images = [str(p) for p in EXAMPLES]

    def probabilities(classifier) -> np.ndarray:
        return np.array([p.probabilities for p in classifier.classify(images)])

    assert np.abs(probabilities(onnx) - probabilities(torch_backend)).max() < 1e-4
    assert onnx_bytes(load_model(tmp_path / "e"))[:2]  # exportable as a file too


def test_members_that_cannot_vote_together_are_refused(members, mnist_path, tmp_path, capsys):
    for weights in ([1, 2, 3], [float("nan"), 1], [-1, 2]):
        with pytest.raises(ConfigError, match="one finite, non-negative weight per member"):
            build_digit_ensemble(members, tmp_path / "w", weights=weights, data_dir=str(mnist_path))
    assert main(["ensemble", *map(str, members), "--weights", "1,x", "--out", str(tmp_path / "x")]) == 1
    assert "give numbers separated by commas" in capsys.readouterr().err


def test_bagging_trains_members_on_bootstrap_samples_and_continues_where_it_stopped(mnist_path, tmp_path, capsys):
    out = tmp_path / "bag"
    args = ["train", "--recipe", "smoke", "--bagging", "2", "--out", str(out), "--data-dir", str(mnist_path), "--quiet"]
    assert main(args) == 0
    ensemble = load_model(out)
    assert ensemble.arch == "digit_ensemble"
    # Bagging's members share one validation split: the ensemble is calibrated on all of it.
    calibration = ensemble.config["calibration"]
    assert calibration["fitted_on"].startswith("1000 validation images") and calibration["temperature"] > 0
    configs = [json.loads((out / "members" / k / "train_config.json").read_text()) for k in ("1", "2")]
    assert [c["data"]["bootstrap"] for c in configs] == [1, 2] and configs[0]["train"]["seed"] != configs[1]["train"][
        "seed"
    ]
    # As if stopped while training member 2: member 1 is kept, member 2 and the ensemble made again.
    first = (out / "members" / "1" / "model.safetensors").stat().st_mtime_ns
    for name in ("model.safetensors", "config.json"):
        (out / name).unlink()
        (out / "members" / "2" / name).unlink()
    capsys.readouterr()
    assert main(args) == 0
    assert "member 1/2: already trained" in capsys.readouterr().err
    assert (out / "members" / "1" / "model.safetensors").stat().st_mtime_ns == first
    assert load_model(out).arch == "digit_ensemble"
