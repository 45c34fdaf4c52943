"""Runs -> one ensemble folder whose confidence is calibrated.

    digitread ensemble runs/cnn-1 runs/cnn-2 runs/resnet --out runs/vote      # digit models
    digitread ensemble runs/strings runs/strings_small --out weights/sequence   # sequence models

Digit models become one ``digit_ensemble`` model folder (models/ensemble.py: soft or majority voting,
weighted), its temperature fitted on the validation split: it loads, evaluates, predicts, reads and
serves like any model folder.

Sequence models:
Each run's model folder is copied in under the run's name and listed in ``members.json``. The
ensemble's confidence (the geometric mean of its members' P(text)) ranks readings well but is not a
probability: agreeing members are each a little unsure, so their product is too low. A logistic map
of its log-odds (Platt scaling) is fitted on synthetic strips of the *validation* digits (the strips each
member was validated on) so that the confidence is the chance of being right, and recorded with the
calibration error before and after.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from digitread._io import atomic_write_json
from digitread.checkpoint import CONFIG_FILE, WEIGHTS_FILE, read_model_config
from digitread.data.mnist import load_mnist
from digitread.data.strips import make_strips
from digitread.errors import ConfigError
from digitread.eval.calibration import calibration_error, fit_logistic, logistic
from digitread.inference.sequence import MEMBERS_FILE, SequenceReader, check_shifts
from digitread.train.strings import VAL_SEED, strips_for  # the strips each member was validated on (training seed 0)

MEMBER_FILES = (WEIGHTS_FILE, CONFIG_FILE, "history.json")


def _replace_folder(staging: Path, out: Path) -> None:
    """Put the finished ``staging`` folder where ``out`` was, never leaving ``out`` half-written."""
    old = out.with_name(f".{out.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    staging.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def build_digit_ensemble(
    runs: list[Path],
    out: Path,
    voting: str = "soft",
    weights: list[float] | None = None,
    data_dir: str | None = None,
) -> dict:
    """One model folder voting over the digit models in ``runs``; test accuracy and calibration measured."""
    import torch

    from digitread.checkpoint import load_model, save_model
    from digitread.data.tensors import images_to_tensor
    from digitread.eval.calibration import calibration_entry
    from digitread.models import create_model
    from digitread.runtime import predict_logits

    members = [load_model(run) for run in runs]
    preprocess = members[0].config.get("preprocess")
    for run, member in zip(runs, members, strict=True):
        if member.config.get("task", "digits") != "digits":
            raise ConfigError(f"{run} is not a digit model; an ensemble's members must all read the same task")
        if member.config.get("preprocess") != preprocess:
            raise ConfigError(f"{run} prepares its digits differently from {runs[0]}: they cannot vote on one input")
    specs = [{"arch": m.arch, "model_args": m.model_args} for m in members]
    try:
        model = create_model("digit_ensemble", members=specs, voting=voting, weights=weights)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    for slot, member in zip(model.members, members, strict=True):
        slot.load_state_dict(member.state_dict())
    model.eval()

    data = load_mnist(data_dir, val_size=0)  # all 60,000 training images, in file order
    held = _held_out_by_all(members, data.train.labels)
    calibration = None
    if len(held) >= MIN_CALIBRATION_IMAGES:
        logits = predict_logits(model, images_to_tensor(data.train.images[held]), 1000, preprocess)
        labels = torch.from_numpy(data.train.labels[held])
        calibration = calibration_entry(logits, labels, f"{len(held)} validation images no member trained on")
    test_logits = predict_logits(model, images_to_tensor(data.test.images), 1000, preprocess)
    accuracy = (test_logits.argmax(1).numpy() == data.test.labels).mean()
    members_info = [
        {"run": str(run), "arch": m.arch, "test_accuracy": m.config.get("metrics", {}).get("test_accuracy")}
        for run, m in zip(runs, members, strict=True)
    ]
    metrics = {"test_accuracy": float(accuracy), "members": len(members), "voting": voting}
    # Each file is written atomically and config.json holds the weights' sha256, so a folder caught
    # between the two writes is refused at load; what else is in ``out`` (bagging's members/) stays.
    save_model(
        model,
        out,
        metrics=metrics,
        preprocess=preprocess,
        dataset={"name": "mnist", "checksums": data.checksums},
        extra={**({"calibration": calibration} if calibration else {}), "members": members_info},
    )
    return {"out": str(out), **metrics, "calibration": calibration, "member_runs": members_info}


MIN_CALIBRATION_IMAGES = 500


def _held_out_by_all(members, labels: np.ndarray) -> np.ndarray:
    """Indices of the MNIST training images that every member held out for validation: a temperature
    fitted on images a member trained on would make the ensemble overconfident."""
    from digitread.data.mnist import stratified_split

    held = None
    for member in members:
        split = member.config.get("dataset", {}).get("split")
        if not split:  # runs from before the split was recorded: the seed and size they were trained with
            settings = member.config.get("train", {})
            split = {
                "val_size": settings.get("data", {}).get("val_size", 0),
                "seed": settings.get("train", {}).get("seed"),
            }
        if not split.get("val_size") or split.get("seed") is None:
            return np.array([], np.int64)
        _, val = stratified_split(labels, split["val_size"], split["seed"])
        held = set(val.tolist()) if held is None else held & set(val.tolist())
    return np.array(sorted(held or ()), np.int64)


def build_ensemble(
    runs: list[Path], out: Path, data_dir: str | None = None, strips: int = 1000, shifts: Sequence[int] = (0,)
) -> dict:
    """Write the sequence-ensemble folder ``out`` (replacing it only once the new one is complete).
    ``shifts``: the views every member reads (``SequenceReader``), saved with the calibration fitted on them."""
    shifts = check_shifts(shifts)
    names = [run.name for run in runs]
    if len(set(names)) != len(names):
        raise ConfigError(f"ensemble members need distinct folder names, got {names}")
    for run in runs:
        if read_model_config(run).get("task") != "strings":
            raise ConfigError(f"{run} is not a sequence model (train it with --task strings)")
    staging = out.with_name(f".{out.name}.new")
    shutil.rmtree(staging, ignore_errors=True)
    for run, name in zip(runs, names, strict=True):
        (staging / name).mkdir(parents=True)
        for file in MEMBER_FILES:
            if (run / file).is_file():
                shutil.copy2(run / file, staging / name / file)
    atomic_write_json(staging / MEMBERS_FILE, {"members": names})

    data = load_mnist(data_dir)
    reader = SequenceReader.from_pretrained(staging, shifts=shifts)
    # With a member that reads points, the ensemble's readings hold them, and so must the labels.
    val = make_strips(data.val.images, data.val.labels, strips, seed=VAL_SEED, cfg=strips_for(reader.reads_points))
    readings = reader.read([strip for _, _, strip in val])
    mean = np.array([r.confidence for r in readings])  # the geometric mean of the members' P(text)
    correct = np.array([r.text == label for r, (_, label, _) in zip(readings, val, strict=True)])
    a, b = fit_logistic(mean, correct)
    if a <= 0:  # a likelier string would mean a less likely reading: the members do not agree on what is sure
        raise ConfigError(
            f"these members' scores do not rank their readings (slope {a:.3f} on {strips} validation strips); "
            "check that every member was trained on today's strips (letters included)"
        )
    calibration = {
        "logistic": [a, b],
        "exact": float(correct.mean()),
        "ece_before": calibration_error(mean, correct),
        "ece_after": calibration_error(logistic(mean, a, b), correct),
        "fitted_on": f"{strips} synthetic strips of validation digits",
    }
    listing = {"members": names, "shifts": list(shifts), "calibration": calibration}
    atomic_write_json(staging / MEMBERS_FILE, listing)
    _replace_folder(staging, out)
    return {"out": str(out), "members": names, "shifts": list(shifts), **calibration}
