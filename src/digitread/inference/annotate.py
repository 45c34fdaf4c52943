"""Draw a Reading on its image: a box per character, the character and its confidence above it."""

from __future__ import annotations

import cv2
import numpy as np

from digitread.inference.results import Reading


def annotate(gray: np.ndarray, reading: Reading, min_side: int = 240) -> np.ndarray:
    """A BGR picture of ``gray`` with ``reading`` drawn on it (small images are enlarged to stay legible)."""
    scale = max(1.0, min_side / max(1, min(gray.shape)))
    image = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    if scale > 1:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    font_scale = max(0.4, min(image.shape[:2]) / 500)
    for d in reading.digits:
        x, y, w, h = (int(round(v * scale)) for v in d.box)
        colour = (0, 0, 255) if d.uncertain else (0, 160, 0)
        cv2.rectangle(image, (x, y), (x + w, y + h), colour, max(1, int(font_scale * 2)))
        label = d.char if not d.char.isdigit() else f"{d.char} {d.confidence:.2f}"
        cv2.putText(image, label, (x, max(12, y - 4)), cv2.FONT_HERSHEY_SIMPLEX, font_scale, colour, 1, cv2.LINE_AA)
    return image
