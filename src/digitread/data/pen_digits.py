"""Digits drawn stroke by stroke in the styles MNIST's writers rarely use, for training readers of
real handwriting.

MNIST's digits come from American census staff and students. Much of the world writes a 1 with a
long flag (and a foot), a 7 with a bar, a 4 open at the top, a 2 with a curl or a loop, a 9 whose
stem hangs from the bottom or left of its loop (a "ρ" or a "P"), a 0 wide and flat; a classifier
that never saw them reads those 1s as 7s, the 9s as 8s, the 2s as 9s and the 0s as 2s.

This module draws every digit in several such styles from templates of pen strokes (lines and arcs
in a unit box), each shape parameter drawn at random and the whole warped by a smooth random field,
slanted, stretched and drawn with a random pen width, then normalised the MNIST way (``fit_digit``).
No font or data file is needed, and every draw is seeded.

    >>> images, labels = make_pen_digits(1000, seed=0)  # (1000, 28, 28) uint8, (1000,) uint8
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from digitread.inference.normalize import fit_digit

Stroke = np.ndarray  # (n, 2) points in a unit box, x to the right, y down
CANVAS = 96  # pixels the unit box spans (times 0.7), drawn with a MARGIN round it so no stroke is cut
MARGIN = 24


def _arc(cx: float, cy: float, rx: float, ry: float, start: float, end: float, n: int = 24) -> Stroke:
    """Points on an ellipse from ``start`` to ``end`` degrees (0: right, 90: down, since y points down)."""
    t = np.radians(np.linspace(start, end, n))
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def _line(*points: tuple[float, float]) -> Stroke:
    return np.asarray(points, np.float64)


def _join(*parts: Stroke) -> Stroke:
    return np.concatenate(parts)


# ---- templates: rng -> strokes. Each shape parameter is drawn, so no two digits are alike ----


def _zero(r):
    tilt = r.uniform(-0.08, 0.08)
    start = r.uniform(-120, -60)
    loop = _arc(0.5 + tilt, 0.5, r.uniform(0.25, 0.38), 0.45, start, start + r.uniform(350, 390), 40)
    return [loop]


def _zero_wide(r):
    # The flat, wide 0 of cheque amounts, often written smaller than the digits before it.
    start = r.uniform(-120, -60)
    return [_arc(0.5, 0.5, r.uniform(0.42, 0.6), r.uniform(0.22, 0.36), start, start + r.uniform(350, 390), 40)]


def _one_stem(r):
    return [_line((0.5, 0.05), (0.5 + r.uniform(-0.05, 0.05), 0.95))]


def _one_flag(r):
    # The continental 1: a long up-stroke into the stem, sometimes a foot.
    drop, reach = r.uniform(0.15, 0.45), r.uniform(0.2, 0.42)
    strokes = [_line((0.5 - reach, 0.05 + drop), (0.5, 0.05), (0.5 + r.uniform(-0.04, 0.04), 0.95))]
    if r.random() < 0.3:
        strokes.append(_line((0.5 - r.uniform(0.15, 0.25), 0.95), (0.5 + r.uniform(0.15, 0.25), 0.95)))
    return strokes


def _one_hook(r):
    # The 1 of many cheques: its flag a curve bowing up from the top, hanging a third or more down the
    # stem; straight flags alone left such 1s read as 7s.
    drop, reach = r.uniform(0.25, 0.5), r.uniform(0.18, 0.35)
    flag = _arc(0.5, 0.05 + drop, reach, drop, r.uniform(172, 190), 270, 12)
    return [_join(flag, _line((0.5 + r.uniform(-0.04, 0.04), 0.95)))]


def _two_plain(r):
    top = _arc(0.5, 0.3, r.uniform(0.26, 0.34), r.uniform(0.2, 0.26), r.uniform(190, 215), r.uniform(375, 400))
    return [_join(top, _line((0.15, 0.95), (0.88, r.uniform(0.9, 0.98))))]


def _two_looped(r):
    # Cursive 2: the diagonal turns in a small loop before the foot.
    top = _arc(0.5, 0.28, r.uniform(0.26, 0.34), r.uniform(0.18, 0.24), r.uniform(190, 215), r.uniform(370, 400))
    lr = r.uniform(0.07, 0.14)
    loop = _arc(0.22 + lr, 0.88 - lr, lr, lr, 100, 460, 20)
    return [_join(top, _line((0.22, 0.88)), loop, _line((0.88, r.uniform(0.86, 0.96))))]


def _two_curl(r):
    # A 2 begun with a curl at its top left: the curl is a small loop, as a 9 has.
    cr = r.uniform(0.08, 0.13)
    curl = _arc(0.22 + cr, 0.3, cr, cr, r.uniform(60, 120), r.uniform(-200, -160), 16)
    top = _arc(0.5, 0.3, r.uniform(0.26, 0.32), r.uniform(0.2, 0.25), 200, r.uniform(375, 400))
    return [_join(curl, top, _line((0.15, 0.95), (0.88, r.uniform(0.88, 0.98))))]


def _two_loop_top(r):
    # A 2 whose top is a closed loop: the pen starts low on the left, climbs and goes round clockwise,
    # crosses its own start and runs down the diagonal to the foot (common on cheques). A 9 has the
    # loop too; the foot running right is what tells them apart.
    rx, ry = r.uniform(0.24, 0.34), r.uniform(0.18, 0.27)
    cx, cy = 0.5 + r.uniform(-0.05, 0.05), 0.05 + ry
    loop = _arc(cx, cy, rx, ry, r.uniform(120, 160), r.uniform(470, 500), 36)
    foot_y = r.uniform(0.88, 0.97)
    return [_join(loop, _line((r.uniform(0.08, 0.2), foot_y), (r.uniform(0.8, 0.95), foot_y + r.uniform(-0.06, 0.03))))]


def _two_big_loop(r):
    # The 2 of many cheques: a loop over half the digit's height, left from its lower right down under
    # itself to the left, often curling there, then a foot to the right: the foot is all a 9 lacks.
    rx, ry = r.uniform(0.3, 0.42), r.uniform(0.25, 0.33)
    cx, cy = 0.5 + r.uniform(-0.06, 0.06), 0.03 + ry
    end = r.uniform(380, 440)  # closed: round once and out at its lower right
    loop = _arc(cx, cy, rx, ry, end - r.uniform(340, 380), end, 36)
    foot_y = r.uniform(0.88, 0.97)
    corner = (r.uniform(0.08, 0.25), foot_y)
    parts = [loop, _line(corner)]
    if r.random() < 0.4:  # the curl at the bottom left
        cr = r.uniform(0.05, 0.1)
        parts.append(_arc(corner[0] + cr, foot_y - cr, cr, cr, 180, 450, 12))
    parts.append(_line((r.uniform(0.55, 0.95), foot_y + r.uniform(-0.08, 0.03))))
    return [_join(*parts)]


def _three(r):
    upper = _arc(0.45, 0.27, r.uniform(0.26, 0.32), 0.22, r.uniform(-170, -140), 90)
    lower = _arc(0.45, 0.72, r.uniform(0.3, 0.36), 0.24, -90, r.uniform(140, 170))
    return [_join(upper, lower)]


def _three_flat(r):
    lower = _arc(0.45, 0.7, r.uniform(0.3, 0.36), 0.26, -100, r.uniform(140, 170))
    return [_join(_line((0.15, 0.06), (0.8, 0.06), (0.42, 0.44)), lower)]


def _four_open(r):
    cross = r.uniform(0.55, 0.7)
    stem_x = r.uniform(0.6, 0.72)
    return [
        _line((r.uniform(0.35, 0.55), 0.04), (0.1, cross), (0.92, cross)),
        _line((stem_x, r.uniform(0.2, 0.4)), (stem_x + r.uniform(-0.05, 0.03), 0.97)),
    ]


def _four_closed(r):
    cross = r.uniform(0.58, 0.7)
    return [_line((0.68, 0.04), (0.1, cross), (0.92, cross)), _line((0.68, 0.04), (0.68, 0.97))]


def _four_upright(r):
    # The 4 written as an L and a stem, open at the top (much of Europe).
    cross = r.uniform(0.5, 0.65)
    stem_x = r.uniform(0.62, 0.75)
    return [
        _line((r.uniform(0.12, 0.22), 0.05), (0.15, cross), (0.9, cross)),
        _line((stem_x, r.uniform(0.05, 0.25)), (stem_x, 0.97)),
    ]


def _five(r):
    belly = _arc(0.47, 0.66, r.uniform(0.3, 0.36), r.uniform(0.24, 0.3), r.uniform(-150, -120), r.uniform(140, 170))
    stem = _line((0.3, 0.08), (0.26, 0.45))
    bar = _line((0.3, 0.08), (r.uniform(0.75, 0.9), 0.06 + r.uniform(-0.03, 0.03)))
    if r.random() < 0.5:
        return [_join(stem, belly), bar]
    return [_join(bar[::-1], stem, belly)]


def _six(r):
    loop = _arc(0.5, 0.7, r.uniform(0.27, 0.33), 0.25, 180, 540, 32)
    reach = _line((r.uniform(0.65, 0.8), 0.05), (0.38, 0.25), (0.22, 0.55), (0.2, 0.7))
    return [_join(reach, loop)]


def _seven(r, bar: bool = False):
    corner = (r.uniform(0.85, 0.92), 0.07)
    foot = (r.uniform(0.3, 0.5), 0.96)
    top = _line((0.1, r.uniform(0.05, 0.12)), corner, foot)
    if r.random() < 0.3:
        top = _join(_line((0.1, r.uniform(0.2, 0.3))), top)  # a small hook where the pen starts
    strokes = [top]
    if bar:
        y = r.uniform(0.42, 0.58)
        x = corner[0] + (foot[0] - corner[0]) * (y - 0.07) / 0.89
        strokes.append(_line((x - r.uniform(0.18, 0.3), y), (x + r.uniform(0.15, 0.28), y)))
    return strokes


def _eight(r):
    upper = _arc(0.5, 0.27, r.uniform(0.22, 0.28), 0.22, 0, 360, 28)
    lower = _arc(0.5 + r.uniform(-0.04, 0.04), 0.71, r.uniform(0.27, 0.34), 0.25, 0, 360, 28)
    return [upper, lower]


def _nine(r, attach: float):
    """A loop and a stem; ``attach`` is where on the loop the stem leaves it, in degrees (0: its right
    side, as MNIST's writers do; 90-180: its bottom or left, the "ρ" or "P" 9 of many hands)."""
    rx, ry = r.uniform(0.24, 0.32), r.uniform(0.18, 0.24)
    cx, cy = 0.5, 0.26
    loop = _arc(cx, cy, rx, ry, attach, attach + 360, 32)
    x0, y0 = loop[-1]
    foot_x = x0 + r.uniform(-0.12, 0.05)
    stem = _line((foot_x, 0.97)) if r.random() < 0.6 else _arc(foot_x - 0.12, 0.8, 0.12, 0.17, 0, 100, 10)
    return [_join(loop, stem)]


STYLES: dict[int, list[Callable]] = {
    0: [_zero, _zero_wide],
    1: [_one_stem, _one_flag, _one_flag, _one_hook],
    2: [_two_plain, _two_looped, _two_curl, _two_loop_top, _two_big_loop],
    3: [_three, _three_flat],
    4: [_four_open, _four_closed, _four_upright],
    5: [_five],
    6: [_six],
    7: [_seven, lambda r: _seven(r, bar=True)],
    8: [_eight],
    9: [lambda r: _nine(r, r.uniform(-10, 30)), lambda r: _nine(r, r.uniform(80, 180))],
}


def _warp(points: np.ndarray, rng: np.random.Generator, amount: float = 0.04) -> np.ndarray:
    """A smooth random displacement of the unit box (three random waves per axis): a hand is not a ruler."""
    out = points.copy()
    for axis in (0, 1):
        for _ in range(3):
            fx, fy = rng.uniform(0.5, 2.0, 2)
            phase = rng.uniform(0, 2 * np.pi)
            out[:, axis] += rng.normal(0, amount) * np.sin(2 * np.pi * (fx * points[:, 0] + fy * points[:, 1]) + phase)
    return out


def draw_pen_digit(label: int, rng: np.random.Generator, styles: list[Callable] | None = None) -> np.ndarray:
    """One digit ``label`` in a random style (of ``styles``, by default all of the label's), as a 28x28
    MNIST-style uint8 field (white ink on black)."""
    styles = styles or STYLES[label]
    strokes = styles[int(rng.integers(len(styles)))](rng)
    shear, angle = rng.uniform(-0.35, 0.35), np.radians(rng.uniform(-8, 8))
    width = rng.uniform(0.55, 1.15)  # narrow hands and round ones
    rotate = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    thickness = int(rng.integers(3, 10))
    canvas = np.zeros((CANVAS + 2 * MARGIN, CANVAS + 2 * MARGIN), np.uint8)
    for stroke in strokes:
        p = _warp(stroke, rng) - 0.5
        p[:, 0] = p[:, 0] * width - shear * p[:, 1]
        p = p @ rotate.T
        pixels = np.round(((p * 0.7 + 0.5) * CANVAS + MARGIN) * 8).astype(np.int32)  # 3 bits of sub-pixel precision
        cv2.polylines(canvas, [pixels.reshape(-1, 1, 2)], False, 255, thickness, cv2.LINE_AA, shift=3)
    if rng.random() < 0.5:
        canvas = cv2.GaussianBlur(canvas, (3, 3), 0)
    return fit_digit(canvas)


def make_pen_digits(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``count`` pen-drawn digits, the ten labels in turn: (images (count, 28, 28) uint8, labels uint8)."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(count) % 10).astype(np.uint8)
    images = np.zeros((count, 28, 28), np.uint8)
    for i, label in enumerate(labels):
        images[i] = draw_pen_digit(int(label), rng)
    return images, labels
