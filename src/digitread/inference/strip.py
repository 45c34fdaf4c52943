"""One line of a prepared image -> the fixed-height strip the sequence model reads.

The strip is cut from the same cleaned ink the per-digit path uses (lighting evened out, ruled lines
and other lines' ink left out), so the sequence model is trained on exactly what the reader will
show it: synthetic strips go through ``prepare`` and ``segment`` too (see ``data.strips``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from digitread.inference.normalize import saturate_ink
from digitread.inference.preprocess import Prepared, prepare
from digitread.inference.segment import Line, segment

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


def main_line(lines: list[Line]) -> Line | None:
    """The line with the most ink: the number, when an image holds one number and some clutter."""
    return max(lines, key=lambda line: sum(int(p.mask.sum()) for p in line.pieces), default=None)


def image_strip(gray: np.ndarray) -> np.ndarray | None:
    """The strip of an image's main line, as the reader would cut it; None when no ink is found."""
    prepared = prepare(gray)
    line = main_line(segment(prepared.mask))
    return None if line is None else line_strip(prepared, line).image
