"""Evaluate a saved model on MNIST and write its report folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from digitread.checkpoint import load_model
from digitread.data.mnist import load_mnist
from digitread.data.tensors import images_to_tensor
from digitread.errors import DataError
from digitread.eval.calibration import expected_calibration_error, reliability
from digitread.eval.metrics import ClassificationMetrics
from digitread.inference.predictor import DEFAULT_MODEL, resolve_model_dir
from digitread.models import count_parameters
from digitread.runtime import predict_logits


def evaluate_model(
    run: str | Path, data_dir: str | Path | None = None, split: str = "test", out_dir: str | Path | None = None
) -> tuple[dict[str, Any], Path]:
    """Metrics, plots and a readable summary of the model in ``run``, written to ``out_dir``; returns the
    report and its folder (default: RUN/report, or reports/default for the shipped model).

    >>> report, folder = evaluate_model("runs/cnn")  # doctest: +SKIP
    >>> report["metrics"]["accuracy"]  # doctest: +SKIP
    0.9951
    """
    from digitread.eval.report import write_report  # matplotlib only when a report is written

    model_dir = resolve_model_dir(run)
    model = load_model(model_dir)
    config = model.config
    val_size = config.get("train", {}).get("data", {}).get("val_size", 5000)
    seed = config.get("train", {}).get("train", {}).get("seed", 0)
    data = load_mnist(data_dir, val_size=val_size, seed=seed)
    dataset = data.test if split == "test" else data.val
    if dataset is None:
        raise DataError(f"{run} was trained without a validation split; evaluate on --split test")
    x = images_to_tensor(dataset.images)
    logits = predict_logits(model, x, 1000, config.get("preprocess"))
    temperature = float(config.get("calibration", {}).get("temperature", 1.0))
    probs = torch.softmax(logits / temperature, 1).numpy()
    metrics = ClassificationMetrics()
    metrics.update(probs, dataset.labels)
    calibration = {
        "temperature": temperature,
        "ece_uncalibrated": expected_calibration_error(torch.softmax(logits, 1).numpy(), dataset.labels),
        "ece": expected_calibration_error(probs, dataset.labels),
        "reliability": reliability(probs, dataset.labels),
    }
    history_file = model_dir / "history.json"  # written by train.loop (HISTORY_FILE); eval never imports train
    history = json.loads(history_file.read_text()) if history_file.is_file() else None
    model_info = {
        "path": str(model_dir),
        "arch": config["arch"],
        "parameters": count_parameters(model),
        "trained_on": config.get("dataset", {}),
        "training_metrics": config.get("metrics", {}),
    }
    if out_dir:
        out = Path(out_dir)
    else:  # never write into the installed package
        out = Path("reports") / DEFAULT_MODEL if run is None or str(run) == DEFAULT_MODEL else model_dir / "report"
    report = write_report(
        out,
        {**metrics.compute(), "calibration": calibration},
        metrics.worst_mistakes(32),
        np.asarray(dataset.images),
        model_info,
        split,
        history,
    )
    return report, out
