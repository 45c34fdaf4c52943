"""Shapes that are not one digit, for teaching a classifier to say so (outlier exposure).

A reader cuts touching digits by asking the classifier which cut gives the most digit-like pieces.
A network trained on whole digits only is just as sure of half a 0 (a '1') or of two digits squeezed
into one field, so the cut it prefers is often wrong. Trained to give these shapes a flat
distribution, its confidence separates whole digits from fragments, pairs and scribbles.
"""

from __future__ import annotations

import cv2
import numpy as np

from digitread.errors import ImageError
from digitread.inference.normalize import fit_digit


def _crop(digit: np.ndarray) -> np.ndarray | None:
    ys, xs = np.nonzero(digit > 40)
    if len(ys) == 0:
        return None
    return digit[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def _fragment(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    crop = _crop(digit)
    if crop is None or crop.shape[1] < 8:
        return None
    # A left or right part, as a wrong vertical cut leaves. Thin slivers are left out: a lone
    # vertical stroke *is* a 1, and teaching the network otherwise would cost real 1s.
    h, w = crop.shape
    cut = int(w * rng.uniform(0.3, 0.65))
    part = crop[:, :cut] if rng.random() < 0.5 else crop[:, cut:]
    part = _crop(part)
    if part is None or part.shape[1] < 0.35 * part.shape[0]:
        return None
    return part


def _pair(a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    ca, cb = _crop(a), _crop(b)
    if ca is None or cb is None:
        return None
    h = max(ca.shape[0], cb.shape[0])
    overlap = int(rng.integers(0, max(1, min(ca.shape[1], cb.shape[1]) // 3)))
    canvas = np.zeros((h, ca.shape[1] + cb.shape[1] - overlap), np.uint8)
    canvas[h - ca.shape[0] :, : ca.shape[1]] = ca
    region = canvas[h - cb.shape[0] :, ca.shape[1] - overlap :]
    np.maximum(region, cb, out=region)
    return canvas


def make_outliers(images: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """``count`` uint8 (28, 28) fields of fragments and pairs of ``images``, normalised like real digits."""
    rng = np.random.default_rng(seed)
    out = np.zeros((count, 28, 28), np.uint8)
    made = 0
    while made < count:
        i, j = rng.integers(0, len(images), 2)
        shape = _fragment(images[i], rng) if rng.random() < 0.7 else _pair(images[i], images[j], rng)
        if shape is None or shape.max() == 0:
            continue
        if rng.random() < 0.3:  # a thicker pen now and then, as real fragments come from real pens
            shape = cv2.dilate(shape, np.ones((2, 2), np.uint8))
        try:
            out[made] = fit_digit(shape)
        except ImageError:
            continue
        made += 1
    return out
