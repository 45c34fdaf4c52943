"""`digitread tune`: an Optuna study on real MNIST (tiny schedules), its results, and resuming it."""

from __future__ import annotations

import csv
import json
import sqlite3

from digitread.cli import main
from digitread.config import load_recipe

SHORT = ["--model", "cnn_fast", "--epochs", "1", "--train-subset", "2000", "--val-size", "500", "--quiet"]


def _trials(out) -> int:
    with sqlite3.connect(out / "study.db") as db:
        return db.execute("select count(*) from trials").fetchone()[0]


def test_a_search_writes_a_recipe_a_table_and_a_plot_and_resumes(mnist_path, tmp_path, capsys):
    out = tmp_path / "tune"
    args = ["tune", "--trials", "3", "--out", str(out), "--data-dir", str(mnist_path), *SHORT]
    assert main(args) == 0
    assert "best of 3 trials" in capsys.readouterr().out
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert len(rows) == 3 and {"lr", "batch_size", "augment", "val_accuracy"} <= set(rows[0])
    assert (out / "trials.png").read_bytes()[:4] == b"\x89PNG"
    best = json.loads((out / "best.json").read_text())
    assert best["train"]["model"] == "cnn_fast" and float(best["measured"].split()[2]) > 0.5
    # The recipe trains as it is: the winner's settings from the file.
    recipe = load_recipe(str(out / "best.json"))
    assert recipe["train"]["lr"] == best["train"]["lr"]
    assert "epochs" not in best["train"] and "data" not in best  # not the trials' short schedule and subset
    run = ["train", "--recipe", str(out / "best.json"), "--out", str(tmp_path / "run"), "--data-dir", str(mnist_path)]
    assert main([*run, "--epochs", "1", "--train-subset", "1000", "--quiet"]) == 0
    # The same command with more trials goes on from the study in study.db.
    assert main([*args[:2], "4", *args[3:]]) == 0
    assert _trials(out) == 4


def test_grid_and_random_search(mnist_path, tmp_path, capsys):
    for sampler in ("grid", "random"):
        out = tmp_path / sampler
        args = ["tune", "--trials", "2", "--sampler", sampler, "--out", str(out), "--data-dir", str(mnist_path)]
        assert main([*args, *SHORT]) == 0
        assert _trials(out) == 2
    assert main(["tune", "--trials", "0", "--out", str(tmp_path / "x"), *SHORT]) == 1
    assert "--trials must be at least 1" in capsys.readouterr().err
