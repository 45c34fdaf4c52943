"""Confidence that means something: temperature scaling and expected calibration error (ECE).

Temperature scaling divides the logits by one number T, fitted on held-out data to minimise the
negative log-likelihood; it changes how sure the model says it is, never which digit it picks.
"""

from __future__ import annotations

import numpy as np
import torch


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """The gap between confidence and accuracy, averaged over equal-width confidence bins, weighted by count."""
    return calibration_error(probabilities.max(axis=1), probabilities.argmax(axis=1) == labels, bins)


def calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> float:
    """ECE for any predictions given as (confidence, was it right): digits, whole strings, readings."""
    correct = np.asarray(correct, dtype=bool)
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        in_bin = (confidence > lo) & (confidence <= hi)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def reliability(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> list[dict[str, float]]:
    """Per confidence bin: mean confidence, accuracy and count (the points of a reliability diagram)."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0, 1, bins + 1)
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        in_bin = (confidence > lo) & (confidence <= hi)
        if in_bin.any():
            rows.append(
                {
                    "low": float(lo),
                    "high": float(hi),
                    "confidence": float(confidence[in_bin].mean()),
                    "accuracy": float(correct[in_bin].mean()),
                    "count": int(in_bin.sum()),
                }
            )
    return rows


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The temperature minimising the NLL of ``softmax(logits / T)``, searched over log T (robust, 1-D)."""
    logits, labels = logits.double(), labels.long()

    def nll(log_t: float) -> float:
        return torch.nn.functional.cross_entropy(logits / np.exp(log_t), labels).item()

    lo, hi = np.log(0.05), np.log(20.0)
    golden = (np.sqrt(5) - 1) / 2
    a, b = hi - golden * (hi - lo), lo + golden * (hi - lo)
    fa, fb = nll(a), nll(b)
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - golden * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + golden * (hi - lo)
            fb = nll(b)
    return float(np.exp((lo + hi) / 2))


def calibration_entry(logits: torch.Tensor, labels: torch.Tensor, fitted_on: str) -> dict:
    """What config.json records under ``calibration``: the temperature and the ECE it changes."""
    labels_np = labels.numpy()
    temperature = fit_temperature(logits, labels)
    before = torch.softmax(logits, 1).numpy()
    after = torch.softmax(logits / temperature, 1).numpy()
    return {
        "temperature": round(temperature, 4),
        "ece_before": round(expected_calibration_error(before, labels_np), 5),
        "ece_after": round(expected_calibration_error(after, labels_np), 5),
        "fitted_on": fitted_on,
    }
