import json

import pytest
import torch

from digitread import create_model, load_model, save_model
from digitread.checkpoint import load_checkpoint, save_checkpoint
from digitread.errors import ModelFileError


@pytest.fixture()
def saved(tmp_path):
    torch.manual_seed(0)
    return save_model(create_model("cnn_small"), tmp_path / "m", metrics={"test_accuracy": 0.5})


def test_config_describes_the_model(saved):
    config = json.loads((saved / "config.json").read_text())
    for key in ("format_version", "arch", "model_args", "preprocess", "labels", "metrics", "dataset", "versions"):
        assert key in config
    assert config["arch"] == "cnn_small" and config["labels"] == [str(d) for d in range(10)]
    assert not list(saved.glob("*.tmp")), "temporary files left behind"


def test_weights_of_another_architecture_are_refused(saved, tmp_path):
    other = save_model(create_model("cnn"), tmp_path / "other")
    config = json.loads((saved / "config.json").read_text())
    config.pop("weights_sha256")
    (other / "config.json").write_text(json.dumps(config))  # cnn weights, cnn_small config
    with pytest.raises(ModelFileError, match="weights do not match the architecture"):
        load_model(other)


def test_edited_weights_are_detected(saved):
    data = bytearray((saved / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (saved / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="does not match config.json"):
        load_model(saved)


def test_truncated_weights_are_refused(saved):
    config = json.loads((saved / "config.json").read_text())
    config.pop("weights_sha256")
    (saved / "config.json").write_text(json.dumps(config))
    (saved / "model.safetensors").write_bytes((saved / "model.safetensors").read_bytes()[:100])
    with pytest.raises(ModelFileError, match="not a readable safetensors file"):
        load_model(saved)


@pytest.mark.parametrize("missing", ["config.json", "model.safetensors"])
def test_missing_files_are_named(saved, missing):
    (saved / missing).unlink()
    with pytest.raises(ModelFileError, match=missing.replace(".", r"\.")):
        load_model(saved)


def test_config_that_is_not_json_is_refused(saved):
    (saved / "config.json").write_text("{not json")
    with pytest.raises(ModelFileError, match="not valid JSON"):
        load_model(saved)


def test_a_pickle_is_never_loaded(tmp_path):
    # A torch.save file (a pickle) in place of the weights must be refused, not unpickled.
    folder = save_model(create_model("cnn_small"), tmp_path / "m")
    torch.save(create_model("cnn_small").state_dict(), folder / "model.safetensors")
    with pytest.raises(ModelFileError):
        load_model(folder)


def test_training_checkpoint_round_trips_nested_state(tmp_path):
    model = create_model("cnn_small")
    opt = torch.optim.AdamW(model.parameters())
    model(torch.randn(2, 1, 28, 28)).sum().backward()
    opt.step()
    state = {"epoch": 3, "optimizer": opt.state_dict(), "history": [{"acc": 0.5}], "rng": torch.get_rng_state()}
    save_checkpoint(tmp_path / "c.safetensors", state)
    back = load_checkpoint(tmp_path / "c.safetensors")
    assert back["epoch"] == 3 and back["history"] == [{"acc": 0.5}]
    assert torch.equal(back["rng"], state["rng"])
    fresh = torch.optim.AdamW(create_model("cnn_small").parameters())
    fresh.load_state_dict(back["optimizer"])
    assert torch.equal(fresh.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])


def test_unreadable_checkpoint_is_refused(tmp_path):
    (tmp_path / "c.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelFileError, match="not a readable digitread checkpoint"):
        load_checkpoint(tmp_path / "c.safetensors")
