"""The `digitread` command, run in-process (fast) and once as a real process (exit codes, no traceback)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digitread.cli import main

EXAMPLES = sorted((Path(__file__).parents[1] / "examples" / "digits").glob("*.png"))


def test_models_lists_every_model_with_its_parameter_count(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "seed_mlp" in out and "43,480" in out and "lstm_rows" in out
    # The parameter counts end under their heading's end, however long a model's name.
    header, *rows = out.splitlines()
    end = header.index("parameters") + len("parameters")
    assert all(row[end - 1].isdigit() and row[end : end + 2] == "  " for row in rows)


def test_recipes_lists_every_recipe_with_its_notes_in_one_column(capsys):
    from digitread.config import list_recipes

    assert main(["recipes"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = list_recipes()
    assert {line.split()[0] for line in lines if not line.startswith(" ")} == set(names)
    column = max(len(n) for n in names) + 1  # notes and measured figures start here, past the longest name
    assert all(line[column - 1] == " " and line[column] != " " for line in lines)


def test_models_says_when_no_model_matches(capsys):
    assert main(["models", "no_such_model*"]) == 1
    assert "no registered model matches" in capsys.readouterr().err


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, mnist_path):
    """A real, short run of cnn_small on MNIST through the CLI (one epoch, onecycle)."""
    out = tmp_path_factory.mktemp("run") / "cnn_small"
    code = main(
        ["train", "--recipe", "smoke", "--out", str(out), "--data-dir", str(mnist_path), "--quiet", "--tensorboard"]
    )
    assert code == 0
    return out


def test_train_writes_a_loadable_run_with_config_and_tensorboard(trained_run):
    config = json.loads((trained_run / "config.json").read_text())
    assert config["arch"] == "cnn_small" and config["metrics"]["test_accuracy"] > 0.9
    assert config["calibration"]["ece_after"] <= config["calibration"]["ece_before"]
    assert config["train"]["recipe"] == "smoke"
    assert json.loads((trained_run / "train_config.json").read_text())["data"]["train_subset"] == 5000
    assert any((trained_run / "tensorboard").iterdir())


def test_a_finished_run_is_not_overwritten_by_accident(trained_run, capsys):
    assert main(["train", "--recipe", "smoke", "--out", str(trained_run)]) == 1
    assert "--resume" in capsys.readouterr().err


def test_evaluate_writes_every_report_file(trained_run, mnist_path, tmp_path, capsys):
    assert main(["evaluate", str(trained_run), "--data-dir", str(mnist_path), "--out", str(tmp_path)]) == 0
    assert "test accuracy" in capsys.readouterr().out
    for name in (
        "report.json",
        "report.md",
        "confusion_matrix.json",
        "confusion_matrix.png",
        "mistakes.png",
        "training_curves.png",
    ):
        assert (tmp_path / name).stat().st_size > 0, name
    report = json.loads((tmp_path / "report.json").read_text())
    m = report["metrics"]
    assert m["count"] == 10000 and np.array(m["confusion_matrix"]).sum() == 10000
    assert set(m["per_class"]) == {str(d) for d in range(10)}
    confidences = [mistake["confidence"] for mistake in report["mistakes"]]
    assert confidences == sorted(confidences, reverse=True)
    assert Image.open(tmp_path / "confusion_matrix.png").size[0] > 300


def test_predict_prints_digit_and_confidence_per_image(trained_run, capsys):
    assert main(["predict", str(trained_run), *map(str, EXAMPLES[:3])]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    name, digit, confidence = lines[0].split()
    assert name.endswith(".png") and digit.isdigit() and 0 <= float(confidence) <= 1


def test_predict_json_has_all_ten_probabilities(trained_run, capsys):
    assert main(["predict", str(trained_run), str(EXAMPLES[0]), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert len(row["probabilities"]) == 10 and abs(sum(row["probabilities"]) - 1) < 1e-4


def test_shipped_model_reads_the_example_digits(capsys):
    assert main(["predict", "default", *map(str, EXAMPLES)]) == 0
    rows = [line.split() for line in capsys.readouterr().out.strip().splitlines()]
    right = sum(Path(name).stem.endswith(digit) for name, digit, _ in rows)
    assert right >= 9, rows


def test_resume_of_a_run_without_checkpoint_is_refused(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "none"), "--resume"]) == 1
    assert "no checkpoint to resume from" in capsys.readouterr().err


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "digitread", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--model", "nope", "--out", "{tmp}/x"], "unknown model 'nope'"),
        (["train", "--optimizer", "adagrad", "--out", "{tmp}/x"], "unknown optimizer"),
        (["train", "--out", "{tmp}/x", "--data-dir", "{tmp}/missing"], "does not exist"),
        (["predict", "{tmp}", "x.png"], "config.json is missing"),
        (["evaluate", "{tmp}/nothing"], "does not exist"),
    ],
)
def test_user_mistakes_give_one_line_and_a_nonzero_exit(tmp_path, args, message):
    result = _run(*(a.format(tmp=tmp_path) for a in args))
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_unreadable_image_fails_alone_and_sets_the_exit_code(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    result = _run("predict", "default", str(bad), str(EXAMPLES[0]))
    assert result.returncode == 1
    assert "bad.png: not an image in a format" in result.stderr and "Traceback" not in result.stderr
    assert EXAMPLES[0].name in result.stdout


def test_corrupt_data_file_is_named(tmp_path, mnist_path):
    for f in mnist_path.glob("*.gz"):
        (tmp_path / f.name).symlink_to(f.resolve())
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8bbroken")
    result = _run("train", "--out", str(tmp_path / "run"), "--data-dir", str(tmp_path), "--epochs", "1")
    assert result.returncode == 1
    assert "t10k-labels-idx1-ubyte.gz: corrupt or truncated gzip" in result.stderr
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_resume_keeps_the_saved_settings(trained_run, capsys):
    assert main(["train", "--out", str(trained_run), "--resume", "--lr", "0.5"]) == 1
    assert "drop lr" in capsys.readouterr().err
    assert main(["train", "--out", str(trained_run), "--resume", "--epochs", "3"]) == 1
    assert "cannot extend" in capsys.readouterr().err


def test_an_output_folder_that_is_a_file_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = _run("read", str(EXAMPLES[0]), "--annotate", str(blocker))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_init_starts_from_a_trained_model_and_refuses_another_architecture(trained_run, mnist_path, tmp_path):
    # Two batches at a tiny rate: from scratch that is a guess (about 10%); from the trained weights it
    # keeps their accuracy. Pen-drawn digits join the training set.
    args = ["train", "--recipe", "smoke", "--data-dir", str(mnist_path), "--quiet", "--limit-batches", "2"]
    args += ["--lr", "1e-6", "--pen-digits", "500"]
    assert main([*args, "--init", str(trained_run), "--out", str(tmp_path / "warm")]) == 0
    assert main([*args, "--out", str(tmp_path / "cold")]) == 0
    warm, cold = (json.loads((tmp_path / n / "config.json").read_text())["metrics"] for n in ("warm", "cold"))
    assert warm["test_accuracy"] > 0.9 > cold["test_accuracy"] + 0.3
    result = _run("train", "--init", "default", "--model", "cnn_small", "--out", str(tmp_path / "x"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "holds a cnn model; this run trains cnn_small: pass --model cnn" in result.stderr
    # Starting from the run that --overwrite would delete is refused before anything is deleted.
    assert main([*args, "--init", str(tmp_path / "warm"), "--out", str(tmp_path / "warm"), "--overwrite"]) == 1
    assert (tmp_path / "warm" / "model.safetensors").is_file()


def test_keep_decides_which_epochs_weights_a_run_ends_with(trained_run, tmp_path, capsys):
    """--keep best ends with the best validation epoch's weights, --keep last with the final epoch's;
    a finished run resumed with another --keep ends again with those. The checkpoint's best weights
    are replaced by a marker first, so the two choices always differ."""
    import shutil

    import torch

    from digitread.checkpoint import load_checkpoint, load_model, save_checkpoint

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    state = load_checkpoint(run / "checkpoint.safetensors")
    state["best_model"] = {
        k: torch.full_like(v, 0.5) if v.is_floating_point() else v.clone() for k, v in state["model"].items()
    }
    save_checkpoint(run / "checkpoint.safetensors", state)

    def ends_with(keep: str) -> dict[str, torch.Tensor]:
        assert main(["train", "--out", str(run), "--resume", "--keep", keep, "--quiet"]) == 0
        assert json.loads((run / "config.json").read_text())["train"]["train"]["keep"] == keep
        return load_model(run).state_dict()

    weight = "features.0.weight"
    assert torch.equal(ends_with("best")[weight], state["best_model"][weight])
    assert torch.equal(ends_with("last")[weight], state["model"][weight])
    assert main(["train", "--out", str(run), "--resume", "--keep", "first"]) == 1
    assert "unknown keep 'first'; choose best or last" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "new"), "--keep", "last", "--patience", "2"]) == 1
    assert "drop --patience or keep best" in capsys.readouterr().err
