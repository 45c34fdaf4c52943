"""Training one model in two processes with DistributedDataParallel (gloo on this CPU), launched by
torchrun exactly as docs/scaling.md says: the accuracy of one process on the same schedule, the same
model again from the same seed, and a run killed in the middle that resumes to that same model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import kill_mid_epoch
from safetensors.torch import load_file

RECIPE = ["--recipe", "fast", "--quiet"]  # cnn_fast24, 2 epochs on all of MNIST: 99.1% in one process


def _single(out: Path, mnist_path: Path) -> list[str]:
    return [sys.executable, "-m", "digitread", "train", "--out", str(out), "--data-dir", str(mnist_path), *RECIPE]


def _torchrun(out: Path, mnist_path: Path, *extra: str) -> list[str]:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    return [*launcher, "-m", "digitread", "train", "--out", str(out), "--data-dir", str(mnist_path), *extra]


def _run(command: list[str]) -> dict:
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])  # rank 0 alone prints the metrics


@pytest.fixture(scope="module")
def runs(tmp_path_factory, mnist_path):
    root = tmp_path_factory.mktemp("ddp")
    single = _run(_single(root / "single", mnist_path))
    ddp = _run(_torchrun(root / "ddp", mnist_path, *RECIPE))
    return root, single, ddp


def test_two_processes_match_one_on_the_same_schedule(runs):
    _, single, ddp = runs
    assert ddp["processes"] == 2 and ddp["steps"] == single["steps"]
    assert abs(ddp["test_accuracy"] - single["test_accuracy"]) <= 0.003, (single, ddp)
    assert ddp["test_accuracy"] >= 0.985


def test_only_rank_0_writes_the_run_folder(runs):
    root, _, _ = runs
    names = sorted(p.name for p in (root / "ddp").iterdir())
    assert names == ["checkpoint.safetensors", "config.json", "history.json", "model.safetensors", "train_config.json"]


def test_a_killed_two_process_run_resumes_to_the_same_model(runs, mnist_path):
    root, _, ddp = runs
    cut = root / "cut"
    # The whole session at once (torchrun and both workers), as a lost machine would, inside epoch 2.
    kill_mid_epoch(_torchrun(cut, mnist_path, "--recipe", "fast"), epoch=2)
    assert not (cut / "model.safetensors").exists(), "the run ended before the kill"

    resumed = _run(_torchrun(cut, mnist_path, "--resume", "--quiet"))
    assert resumed["steps"] == ddp["steps"]
    a, b = load_file(str(root / "ddp" / "model.safetensors")), load_file(str(cut / "model.safetensors"))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a), "same seed, same processes, same model"
