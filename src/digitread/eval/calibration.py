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
    # Over every prediction, as always: one read 0 sure falls in no bin but still counts in the whole.
    total = max(1, len(np.asarray(confidence)))
    return float(
        sum(r["count"] * abs(r["accuracy"] - r["confidence"]) for r in reliability_of(confidence, correct, bins))
        / total
    )


def reliability(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> list[dict[str, float]]:
    """Per confidence bin: mean confidence, accuracy and count (the points of a reliability diagram)."""
    return reliability_of(probabilities.max(axis=1), probabilities.argmax(axis=1) == labels, bins)


def reliability_of(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> list[dict[str, float]]:
    """``reliability`` for any predictions given as (confidence, was it right); empty bins are left out."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
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


def _minimise(f, lo: float, hi: float, steps: int = 60) -> float:
    """Golden-section search for the minimum of a 1-D function on [lo, hi] (robust, no gradients)."""
    golden = (np.sqrt(5) - 1) / 2
    a, b = hi - golden * (hi - lo), lo + golden * (hi - lo)
    fa, fb = f(a), f(b)
    for _ in range(steps):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - golden * (hi - lo)
            fa = f(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + golden * (hi - lo)
            fb = f(b)
    return (lo + hi) / 2


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The temperature minimising the NLL of ``softmax(logits / T)``, searched over log T."""
    logits, labels = logits.double(), labels.long()

    def nll(log_t: float) -> float:
        return torch.nn.functional.cross_entropy(logits / np.exp(log_t), labels).item()

    return float(np.exp(_minimise(nll, np.log(0.05), np.log(20.0))))


def fit_logistic(probability: np.ndarray, correct: np.ndarray) -> tuple[float, float]:
    """(a, b) making ``sigmoid(a * logit(p) + b)`` the chance of being right (Platt scaling of the
    log-odds, by logistic regression; a = 1, b = 0 leaves p as it is): for scores that rank well
    but are not quite probabilities, such as an ensemble's geometric mean."""
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(correct, dtype=bool)
    if y.all() or not y.any():
        raise ValueError("calibration needs both right and wrong readings")
    fit = LogisticRegression(C=1e4).fit(_logit(probability)[:, None], y)
    return float(fit.coef_[0, 0]), float(fit.intercept_[0])


def logistic(probability: np.ndarray | float, a: float, b: float) -> np.ndarray:
    """``sigmoid(a * logit(p) + b)``: the map ``fit_logistic`` fits."""
    return 1.0 / (1.0 + np.exp(-(a * _logit(probability) + b)))


def _logit(probability: np.ndarray | float) -> np.ndarray:
    p = np.clip(np.asarray(probability, dtype=np.float64), 1e-9, 1 - 1e-9)  # finite log-odds at 0 and 1
    return np.log(p) - np.log1p(-p)


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
