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


# Letters with no digit look-alike (no o/O for 0, l/I for 1, s/S for 5, z/Z for 2, b for 6, g/q/p/P for 9
# (a 9 whose stem hangs from the bottom of its loop is a P), B for 8).
LETTERS = "acefhkmnrtuvwxyACEFHKLMNRUVWXY"
_FONTS = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
    cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
    cv2.FONT_HERSHEY_SCRIPT_COMPLEX,
)


def draw_letter(rng: np.random.Generator) -> np.ndarray:
    """A letter drawn with one of OpenCV's fonts, slanted at random: a shape a reader must not call a digit."""
    canvas = np.zeros((96, 96), np.uint8)
    font = _FONTS[int(rng.integers(len(_FONTS)))] | (cv2.FONT_ITALIC if rng.random() < 0.3 else 0)
    ch = LETTERS[int(rng.integers(len(LETTERS)))]
    cv2.putText(canvas, ch, (20, 70), font, float(rng.uniform(1.5, 2.5)), 255, int(rng.integers(2, 7)), cv2.LINE_AA)
    m = np.float32([[1, rng.uniform(-0.3, 0.3), 0], [0, 1, 0]])
    return cv2.warpAffine(canvas, m, (96, 96))


def draw_mark(rng: np.random.Generator) -> np.ndarray:
    """A cross, a plus or a tick as a clerk writes one beside a row's number: two strokes, hand-drawn
    (arms of unequal length, a little bow, turned a little). Straight, a plus reads as a 4 or a 7 and
    an x as a 4 or an 8 to a classifier that never saw one (``recipes/reader_marks.json``; tried, not
    in the shipped model: docs/reading.md)."""
    canvas = np.zeros((96, 96), np.uint8)
    kind = ("+", "x", "v")[int(rng.integers(3))]
    stroke = int(rng.integers(2, 8))
    if kind == "v":  # a short stroke down to the right, then a long one up
        low = np.array([44.0, 64.0])
        a, b = low + rng.uniform(14, 24) * np.array([-0.7, -0.7]), low + rng.uniform(30, 44) * np.array([0.55, -0.85])
        strokes = [(a, low), (low, b)]
    else:
        centre = np.array([48.0, 48.0]) + rng.uniform(-4, 4, 2)
        angle = (np.pi / 4 if kind == "x" else 0.0) + rng.uniform(-0.35, 0.35)  # turned a little
        strokes = []
        for turn in (0.0, np.pi / 2):
            d = np.array([np.cos(angle + turn), np.sin(angle + turn)])
            strokes.append((centre - d * rng.uniform(12, 30), centre + d * rng.uniform(12, 30)))
    for a, b in strokes:  # each stroke a bowed polyline: a hand's line is never ruled
        t = np.linspace(0, 1, 12)[:, None]
        normal = np.array([-(b - a)[1], (b - a)[0]]) / (np.linalg.norm(b - a) + 1e-6)
        points = a + t * (b - a) + normal * rng.uniform(-4, 4) * np.sin(np.pi * t)
        cv2.polylines(canvas, [np.round(points).astype(np.int32)], False, 255, stroke, cv2.LINE_AA)
    return canvas


def make_outliers(
    images: np.ndarray, count: int, seed: int = 0, letters: float = 0.0, marks: float = 0.0
) -> np.ndarray:
    """``count`` uint8 (28, 28) fields of fragments and pairs of ``images`` (and a ``letters`` share of
    drawn letters, a ``marks`` share of crosses and ticks), normalised like real digits."""
    if len(images) == 0:
        raise ValueError("make_outliers needs at least one digit image")
    rng = np.random.default_rng(seed)
    out = np.zeros((count, 28, 28), np.uint8)
    made, attempts = 0, 0
    while made < count:
        attempts += 1
        if attempts > 50 * count + 1000:
            raise ValueError("could not make outliers: the digit images look blank")
        i, j = rng.integers(0, len(images), 2)
        if letters > 0 and rng.random() < letters:  # no extra draw without letters: keeps old runs reproducible
            shape = draw_letter(rng)
        elif marks > 0 and rng.random() < marks:  # likewise without marks
            shape = draw_mark(rng)
        else:
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
