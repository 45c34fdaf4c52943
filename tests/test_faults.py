"""Training that survives faults: killed with SIGKILL in the middle of an epoch and resumed, a full disk
and an unwritable folder while checkpointing. Nothing finished is lost and no checkpoint is corrupted."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import kill_mid_epoch

from digitread.checkpoint import load_checkpoint
from digitread.cli import main

# Real MNIST, small enough for seconds: about 90 steps per epoch, so a kill lands inside an epoch.
SHORT = ["--model", "cnn_small", "--epochs", "3", "--batch-size", "64", "--train-subset", "6000"]
SHORT += ["--val-size", "1000", "--lr", "0.003", "--seed", "3", "--quiet"]


def _train_command(out: Path, mnist_path: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "digitread", "train", "--out", str(out), "--data-dir", str(mnist_path), *extra]


def _metrics(run: Path) -> dict:
    return json.loads((run / "config.json").read_text())["metrics"]


def test_a_run_killed_mid_epoch_resumes_to_the_same_model_as_an_uninterrupted_run(mnist_path, tmp_path):
    whole = tmp_path / "whole"
    subprocess.run(_train_command(whole, mnist_path, *SHORT), check=True, timeout=300)

    cut = tmp_path / "cut"
    kill_mid_epoch([c for c in _train_command(cut, mnist_path, *SHORT) if c != "--quiet"], epoch=2)
    assert not (cut / "model.safetensors").exists(), "the run finished before the kill: make it longer"
    assert load_checkpoint(cut / "checkpoint.safetensors")["epoch"] == 1  # what the kill left is whole

    resumed = subprocess.run(_train_command(cut, mnist_path, "--resume", "--quiet"), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    a, b = _metrics(whole), _metrics(cut)
    assert a["steps"] == b["steps"] == a["epochs_run"] * 93
    assert abs(a["test_accuracy"] - b["test_accuracy"]) <= 0.001, (a, b)
    assert not list(cut.glob(".*.tmp")), "a temporary file was left behind"


def _smoke_args(out: Path, mnist_path: Path) -> list[str]:
    return ["train", "--recipe", "smoke", "--epochs", "2", "--out", str(out), "--data-dir", str(mnist_path)]


def test_a_full_disk_while_checkpointing_fails_in_one_line_and_keeps_the_last_checkpoint(
    mnist_path, tmp_path, monkeypatch, capsys
):
    import digitread.checkpoint as checkpoint

    real_save, calls = checkpoint.save_file, []

    def fill_the_disk(tensors, filename, metadata=None):
        calls.append(filename)
        if len(calls) == 1:
            return real_save(tensors, filename, metadata=metadata)
        Path(filename).write_bytes(b"half a checkpoint")  # the disk fills partway through the write
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), filename)

    monkeypatch.setattr(checkpoint, "save_file", fill_the_disk)
    run = tmp_path / "run"
    assert main([*_smoke_args(run, mnist_path), "--quiet"]) == 1
    err = capsys.readouterr().err  # epoch 1's line, then the error in one line
    assert err.strip().splitlines()[-1].startswith("digitread: error:") and "No space left on device" in err, err
    assert "Traceback" not in err
    assert load_checkpoint(run / "checkpoint.safetensors")["epoch"] == 1  # epoch 1's checkpoint, intact
    assert not list(run.glob(".*.tmp")) and not (run / "model.safetensors").exists()

    monkeypatch.setattr(checkpoint, "save_file", real_save)  # space freed: the run resumes and finishes
    assert main(["train", "--out", str(run), "--resume", "--quiet"]) == 0
    assert _metrics(run)["epochs_run"] == 2


def test_an_unwritable_run_folder_fails_before_training_in_one_line(mnist_path, tmp_path, monkeypatch, capsys):
    import digitread._io as atomic

    def refuse(*args, dir=None, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(dir))

    monkeypatch.setattr(atomic.tempfile, "mkstemp", refuse)
    run = tmp_path / "run"
    assert main([*_smoke_args(run, mnist_path), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Permission denied" in err and str(run) in err, err
    assert not (run / "checkpoint.safetensors").exists()  # found out at the start, not after an epoch
