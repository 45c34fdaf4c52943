"""Small typed results shared by Python, the CLI's JSON and (later) HTTP."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class DigitPrediction:
    """One image of one digit, classified."""

    digit: int
    confidence: float
    probabilities: list[float]
    source: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)
