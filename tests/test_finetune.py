"""Fine-tuning the shipped model on one person's handwriting, made here: MNIST test digits redrawn with a
consistent style (a thick pen, a strong slant, turned 35 degrees), 20 of each digit."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from digitread import load_model
from digitread.cli import main
from digitread.data.idx import write_idx
from digitread.data.samples import load_samples
from digitread.errors import DataError


def _in_my_hand(digit: np.ndarray) -> np.ndarray:
    """One writer's style: a thick pen, slanted and turned; dark ink on white paper, 84x84."""
    big = cv2.dilate(cv2.resize(digit, (84, 84)), np.ones((7, 7), np.uint8))
    turn = cv2.getRotationMatrix2D((42, 42), -35, 1.0)
    turn[0, 1] += 0.9
    turn[0, 2] -= 0.9 * 42
    return 255 - cv2.warpAffine(big, turn, (84, 84))


@pytest.fixture(scope="module")
def my_samples(tmp_path_factory, mnist) -> Path:
    folder = tmp_path_factory.mktemp("my_digits")
    rng = np.random.default_rng(0)
    for digit in range(10):
        (folder / str(digit)).mkdir()
        for i in rng.choice(np.flatnonzero(mnist.test.labels == digit), 20, replace=False):
            cv2.imwrite(str(folder / str(digit) / f"{i}.png"), _in_my_hand(mnist.test.images[i]))
    return folder


def test_finetuning_reads_the_persons_held_out_samples_better_and_keeps_mnist(my_samples, mnist_path, tmp_path, capsys):
    out = tmp_path / "mine"
    args = ["finetune", "default", "--samples", str(my_samples), "--out", str(out), "--data-dir", str(mnist_path)]
    assert main([*args, "--quiet"]) == 0
    metrics = json.loads((out / "config.json").read_text())["metrics"]
    assert metrics["held_out"] == 50 and metrics["trained_on"] == 150 and metrics["replay"]
    # Measured: 70% -> 96% on the held-out samples; MNIST test 99.55% -> 99.07%.
    assert metrics["holdout_accuracy_after"] >= metrics["holdout_accuracy_before"] + 0.15, metrics
    assert metrics["test_accuracy"] >= 0.98, metrics
    assert "held-out accuracy" in capsys.readouterr().out
    assert load_model(out).config["finetuned_from"].endswith("default")
    assert main([*args, "--quiet"]) == 1  # an existing model is not replaced without --overwrite


def test_samples_load_from_folders_labels_csv_and_idx(my_samples, tmp_path):
    def prepare(path):
        return np.zeros((28, 28), np.uint8)

    fields, labels, problems = load_samples(my_samples, prepare)
    assert fields.shape == (200, 28, 28) and np.bincount(labels).tolist() == [20] * 10 and problems == []
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "a.png").write_bytes((my_samples / "3" / next((my_samples / "3").iterdir()).name).read_bytes())
    (flat / "labels.csv").write_text("file,label\na.png,3\n")
    assert load_samples(flat, prepare)[1].tolist() == [3]
    idx = tmp_path / "idx"
    idx.mkdir()
    write_idx(idx / "my-images-idx3-ubyte", np.zeros((4, 28, 28), np.uint8))
    write_idx(idx / "my-labels-idx1-ubyte", np.array([1, 2, 3, 4], np.uint8))
    assert load_samples(idx, prepare)[1].tolist() == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("content", "message"),
    [({}, "no samples found"), ({"labels.csv": "a.png,seven\n"}, "is not 'file,digit'")],
    ids=["empty", "bad-csv"],
)
def test_samples_that_cannot_be_used_are_named(tmp_path, content, message):
    for name, text in content.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(DataError, match=message):
        load_samples(tmp_path, lambda p: np.zeros((28, 28), np.uint8))
