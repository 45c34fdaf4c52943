"""Scoring readings of whole numbers: exact-match rate and per-character accuracy by edit distance."""

from __future__ import annotations

from collections.abc import Sequence


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
