"""One line of a prepared image -> the fixed-height strip the sequence model reads.

The strip is cut from the same cleaned ink the per-digit path uses (lighting evened out, ruled lines
and other lines' ink left out), so the sequence model is trained on exactly what the reader will
show it: synthetic strips go through ``prepare`` and ``segment`` too (see ``data.strips``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from digitread.inference.layout import find_lines
from digitread.inference.normalize import saturate_ink
from digitread.inference.preprocess import Prepared
from digitread.inference.segment import Line

STRIP_HEIGHT = 32
DIGIT_HEIGHT = 22  # the line's typical digit height is scaled to this many pixels
PAD = 4  # empty columns either side, so the first and last digit have context
MAX_WIDTH = 640  # longer lines are squeezed to fit: bounds the cost of one strip


@dataclass
class Strip:
    image: np.ndarray  # uint8 (STRIP_HEIGHT, width), ink bright on black
    x0: int  # where the strip's content starts, in working coordinates
    y0: int
    scale: float  # strip pixels per working pixel

    def to_working(self, sx0: float, sx1: float) -> tuple[int, int]:
        """Strip columns [sx0, sx1) -> working-image columns."""
        return int(self.x0 + (sx0 - PAD) / self.scale), int(np.ceil(self.x0 + (sx1 - PAD) / self.scale))


def line_strip(prepared: Prepared, line: Line) -> Strip:
    """The ink of ``line``'s pieces (all of them, marks included), scaled so its digits are
    ``DIGIT_HEIGHT`` tall, centred in a ``STRIP_HEIGHT``-high strip."""
    x0, y0 = min(p.x for p in line.pieces), min(p.y for p in line.pieces)
    x1, y1 = max(p.x2 for p in line.pieces), max(p.y2 for p in line.pieces)
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    for p in line.pieces:
        region = mask[p.y - y0 : p.y2 - y0, p.x - x0 : p.x2 - x0]
        np.maximum(region, p.mask, out=region)
    crop = prepared.ink[y0:y1, x0:x1]
    ink = saturate_ink(np.where(mask > 0, np.maximum(crop, 1), 0).astype(np.uint8))
    h, w = ink.shape
    scale = min(DIGIT_HEIGHT / max(line.height, 1.0), (STRIP_HEIGHT - 2) / h, (MAX_WIDTH - 2 * PAD) / w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    small = cv2.resize(ink, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    strip = np.zeros((STRIP_HEIGHT, nw + 2 * PAD), np.uint8)
    top = (STRIP_HEIGHT - nh) // 2
    strip[top : top + nh, PAD : PAD + nw] = small
    return Strip(strip, x0, y0, scale)


def boxes_from_alignment(line: Line, centres: list[float]) -> list[tuple[int, int, int, int]]:
    """A box (x, y, x2, y2, working coordinates) for each of a line's digits read by the sequence model,
    given the column each was read at (left to right).

    CTC places a digit's spike somewhere on or just before the digit, so the spikes only order the
    digits: between two neighbouring spikes the line is cut at the column with the least ink (the gap
    between the two digits, or their thinnest join), and each box is the ink between cuts.
    """
    digits = [p for p in line.pieces if p.kind == "digit"] or line.pieces
    x0, y0 = min(p.x for p in digits), min(p.y for p in digits)
    x1, y1 = max(p.x2 for p in digits), max(p.y2 for p in digits)
    ink = np.zeros((y1 - y0, x1 - x0), bool)
    for p in digits:
        ink[p.y - y0 : p.y2 - y0, p.x - x0 : p.x2 - x0] |= p.mask > 0
    profile = np.convolve(ink.sum(axis=0).astype(np.float32), np.ones(3) / 3, mode="same")
    spikes = [int(np.clip(round(c) - x0, 0, x1 - x0 - 1)) for c in centres]
    cuts = [0]
    for a, b in zip(spikes, spikes[1:], strict=False):
        lo, hi = max(cuts[-1] + 1, min(a, b)), max(a, b)
        # The last of equally empty columns: a spike often sits in the gap just before its own digit.
        cuts.append(hi - 1 - int(np.argmin(profile[lo:hi][::-1])) if hi > lo else max(lo, cuts[-1] + 1))
    cuts.append(x1 - x0)
    boxes = []
    for a, b in zip(cuts, cuts[1:], strict=False):
        b = max(b, a + 1)
        rows = np.nonzero(ink[:, a:b].any(axis=1))[0]
        cols = np.nonzero(ink[:, a:b].any(axis=0))[0]
        if len(rows):
            boxes.append((x0 + a + int(cols[0]), y0 + int(rows[0]), x0 + a + int(cols[-1]) + 1, y0 + int(rows[-1]) + 1))
        else:
            boxes.append((x0 + a, y0, x0 + b, y1))
    return boxes


def main_line(lines: list[Line]) -> Line | None:
    """The line with the most ink: the number, when an image holds one number and some clutter."""
    return max(lines, key=lambda line: sum(int(p.mask.sum()) for p in line.pieces), default=None)


def image_strip(gray: np.ndarray) -> np.ndarray | None:
    """The strip of an image's main line, as the reader would cut it; None when no ink is found."""
    prepared, lines = find_lines(gray)
    line = main_line(lines)
    return None if line is None else line_strip(prepared, line).image
