"""Scoring readings of whole numbers: exact-match rate and per-character accuracy by edit distance, and
how far their confidence can be trusted (what share is read at least so sure, and how many of those right)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from digitread.eval.calibration import calibration_error

# The bars a user might accept readings at without a person looking; the rest go to review.
ACCEPT_AT = (0.5, 0.8, 0.9, 0.95, 0.99)


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: insertions, deletions and substitutions turning ``a`` into ``b``."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def digits_only(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def score_readings(predicted: Sequence[str], expected: Sequence[str]) -> dict[str, float]:
    """``exact``: share read exactly; ``char_accuracy``: 1 - edit distance / length, over all images."""
    if len(predicted) != len(expected):
        raise ValueError("predicted and expected differ in length")
    exact = sum(p == e for p, e in zip(predicted, expected, strict=True))
    errors = sum(edit_distance(p, e) for p, e in zip(predicted, expected, strict=True))
    chars = sum(len(e) for e in expected)
    return {
        "count": len(expected),
        "exact": exact / max(1, len(expected)),
        "char_accuracy": 1 - errors / max(1, chars),
    }


def confidence_report(confidence: Sequence[float], correct: Sequence[bool], bars: Sequence[float] = ACCEPT_AT) -> dict:
    """How well whole-number confidences sort right readings from wrong ones.

    ``calibration_error``: ECE over the readings (a reported 0.9 right about 90% of the time gives 0).
    ``accept``: for each bar, the share of readings at least that sure (``accepted``) and the share of
    those read right (``exact_when_accepted``, None when none is accepted): what accepting readings at
    that bar without a person looking would give.
    """
    conf = np.asarray(confidence, dtype=np.float64)
    right = np.asarray(correct, dtype=bool)
    if conf.shape != right.shape:
        raise ValueError("confidence and correct differ in length")
    accept = []
    for bar in bars:
        taken = conf >= bar
        accept.append(
            {
                "min_confidence": bar,
                "accepted": float(taken.mean()) if conf.size else 0.0,
                "exact_when_accepted": float(right[taken].mean()) if taken.any() else None,
            }
        )
    return {"calibration_error": calibration_error(conf, right), "accept": accept}


def coverage_curve(confidence: Sequence[float], correct: Sequence[bool]) -> tuple[np.ndarray, np.ndarray]:
    """(share accepted, share of those right) as the bar falls from the surest reading to the least sure:
    the points of a risk-coverage plot. Readings equally sure are accepted together."""
    conf = np.asarray(confidence, dtype=np.float64)
    right = np.asarray(correct, dtype=bool)
    order = np.argsort(-conf, kind="stable")
    conf, right = conf[order], right[order]
    ends = np.flatnonzero(np.append(conf[1:] != conf[:-1], True)) + 1  # the last of each run of equal values
    hits = np.cumsum(right)[ends - 1]
    return ends / max(1, conf.size), hits / ends
