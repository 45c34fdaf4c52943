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


@dataclass
class DigitReading:
    """One character of a reading: a digit, or a '.', ',' or '-' mark; ``box`` is (x, y, w, h) in the image."""

    char: str
    confidence: float
    box: tuple[int, int, int, int]
    alternatives: list[tuple[str, float]]
    uncertain: bool = False

    def to_dict(self) -> dict:
        return {
            "char": self.char,
            "confidence": round(self.confidence, 4),
            "box": list(self.box),
            "alternatives": [[c, round(p, 4)] for c, p in self.alternatives],
            "uncertain": self.uncertain,
        }


def parse_value(text: str) -> int | float | None:
    """The number ``text`` spells ('-12.5' -> -12.5, '0042' -> 42), or None when it spells none.

    The readers give every point between digits as '.', decimal point and thousands separator alike. One
    point is a decimal point ('12.500' -> 12.5). Of several, all but the last must be thousands separators,
    each followed by three digits ('1.250.000' -> 1250000); the last is one too when three digits follow
    it, else the decimal point ('1.234.56', written 1.234,56 -> 1234.56). Other groupings ('9.03.2') spell
    no number."""
    cleaned = text.replace(",", ".")
    if cleaned.count(".") > 1:
        head, *groups, last = cleaned.split(".")
        if not 1 <= len(head.lstrip("-")) <= 3 or any(len(g) != 3 for g in groups) or not last:
            return None
        cleaned = head + "".join(groups) + (last if len(last) == 3 else "." + last)
    try:
        return float(cleaned) if "." in cleaned else int(cleaned)
    except ValueError:
        return None


@dataclass
class LineReading:
    """One line of characters, read left to right."""

    text: str
    confidence: float
    box: tuple[int, int, int, int]
    digits: list[DigitReading]
    path: str = "segment"  # which reader read it: "segment" (digit by digit) or "sequence" (whole line)

    @property
    def value(self) -> int | float | None:
        return parse_value(self.text)

    def to_dict(self) -> dict:
        return {
            "text": self.text,
            "value": self.value,
            "confidence": round(self.confidence, 4),
            "box": list(self.box),
            "path": self.path,
            "digits": [d.to_dict() for d in self.digits],
        }


@dataclass
class Reading:
    """What was read in one image: ``text`` joins the lines with newlines; ``value`` is the number when
    there is exactly one line; ``confidence`` is the chance every digit is right (their product)."""

    text: str
    value: int | float | None
    confidence: float
    digits: list[DigitReading]
    lines: list[LineReading]
    source: str | None = None

    @classmethod
    def from_lines(cls, lines: list[LineReading], source: str | None = None) -> Reading:
        digits = [d for line in lines for d in line.digits]
        confidence = 1.0
        for line in lines:
            confidence *= line.confidence
        value = lines[0].value if len(lines) == 1 else None
        return cls("\n".join(line.text for line in lines), value, confidence if lines else 0.0, digits, lines, source)

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "text": self.text,
            "value": self.value,
            "confidence": round(self.confidence, 4),
            "digits": [d.to_dict() for d in self.digits],
            "lines": [line.to_dict() for line in self.lines],
        }
