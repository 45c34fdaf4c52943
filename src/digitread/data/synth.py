"""Synthetic photos of handwritten numbers, composed from digit images, seeded.

Each image is a number of several digits placed left to right with random size, slant, stroke
width, spacing (down to touching and overlapping), baseline jitter, optional decimal point and
minus sign, on paper with uneven lighting and texture, in coloured ink, sometimes inverted (chalk on a
board), with ruled lines, blur, noise, rotation and JPEG compression.

Used to measure and tune the reader on MNIST *test* digits: the images are made at run time and
never stored in the repository.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image


@dataclass
class SynthConfig:
    min_digits: int = 4
    max_digits: int = 8
    digit_height: tuple[int, int] = (28, 56)  # pixels
    spacing: tuple[float, float] = (-0.1, 0.45)  # gap between digits, as a share of digit height
    touching: float = 0.25  # chance that a pair is pushed together until the ink touches
    slant: float = 0.25  # max shear
    rotation: float = 3.0  # degrees, whole image
    decimal_point: float = 0.15  # chance of a decimal point
    minus: float = 0.05  # chance of a leading minus
    ruled_lines: float = 0.3  # chance of ruled lines or an underline
    invert: float = 0.1  # chance of light ink on a dark board
    blur: float = 0.3  # chance of a slight blur
    noise: float = 6.0  # std of pixel noise
    jpeg: float = 0.5  # chance of JPEG compression


MODERATE = SynthConfig()


def ink_crop(digit: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(digit > 30)
    return digit[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] if len(ys) else digit


def shape_digit(digit: np.ndarray, height: int, slant: float, rng: np.random.Generator) -> np.ndarray:
    crop = ink_crop(digit)
    h, w = crop.shape
    scale = height / h
    crop = cv2.resize(crop, (max(1, round(w * scale)), height), interpolation=cv2.INTER_LINEAR)
    pad = int(abs(slant) * height) + 2
    m = np.float32([[1, -slant, pad + slant * height / 2], [0, 1, 0]])
    crop = cv2.warpAffine(crop, m, (crop.shape[1] + 2 * pad, height), flags=cv2.INTER_LINEAR)
    stroke = rng.choice([-1, 0, 0, 1, 2])  # thinner or thicker pens
    if stroke:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (abs(stroke) + 1,) * 2)
        crop = cv2.dilate(crop, k) if stroke > 0 else cv2.erode(crop, k)
    return ink_crop(crop)


def place(canvas: np.ndarray, glyph: np.ndarray, x: int, y: int) -> None:
    h, w = glyph.shape
    region = canvas[y : y + h, x : x + w]
    np.maximum(region, glyph[: region.shape[0], : region.shape[1]], out=region)


def touch_offset(canvas: np.ndarray, glyph: np.ndarray, x: int, y: int) -> int:
    """Move ``glyph`` left from ``x`` until its ink meets ink already on the canvas."""
    for shift in range(0, glyph.shape[1] // 2):
        h, w = glyph.shape
        region = canvas[y : y + h, x - shift : x - shift + w]
        if region.shape != glyph.shape or ((region > 60) & (glyph > 60)).any():
            return max(0, shift - 1)
    return glyph.shape[1] // 2


def compose_number(
    images: np.ndarray, labels: np.ndarray, rng: np.random.Generator, cfg: SynthConfig = MODERATE
) -> tuple[np.ndarray, str]:
    """One synthetic photo (uint8 BGR) and the text it shows, e.g. '-40.75'."""
    n = int(rng.integers(cfg.min_digits, cfg.max_digits + 1))
    picks = rng.integers(0, len(labels), n)
    height = int(rng.integers(*cfg.digit_height))
    slant = float(rng.uniform(-cfg.slant, cfg.slant))
    glyphs = [shape_digit(images[i], int(height * rng.uniform(0.9, 1.1)), slant, rng) for i in picks]
    text = "".join(str(int(labels[i])) for i in picks)
    point_after = int(rng.integers(1, n)) if rng.random() < cfg.decimal_point else -1
    minus = rng.random() < cfg.minus

    margin = height
    width = margin * 2 + sum(g.shape[1] for g in glyphs) + n * height + height
    canvas = np.zeros((height * 3, width), np.uint8)
    baseline = int(height * 2)
    x = margin
    if minus:
        cv2.line(
            canvas, (x, baseline - height // 2), (x + height // 2, baseline - height // 2), 255, max(2, height // 10)
        )
        x += height // 2 + int(height * 0.3)
    for k, glyph in enumerate(glyphs):
        y = baseline - glyph.shape[0] + int(rng.integers(-height // 12, height // 12 + 1))
        if k and rng.random() < cfg.touching:
            x -= touch_offset(canvas, glyph, x, y)
        place(canvas, glyph, x, y)
        x += glyph.shape[1] + int(height * rng.uniform(*cfg.spacing)) if k + 1 < n else glyph.shape[1]
        x = max(x, 1)
        if k == point_after - 1:
            r = max(2, height // 12)
            x += r * 2
            cv2.circle(canvas, (x, baseline - r), r, 255, -1)
            x += r * 3
    if point_after > 0:
        text = text[:point_after] + "." + text[point_after:]
    if minus:
        text = "-" + text
    canvas = canvas[:, : min(width, x + margin)]
    return _render(canvas, rng, cfg, height), text


def _render(
    ink: np.ndarray, rng: np.random.Generator, cfg: SynthConfig, height: int, printed: np.ndarray | None = None
) -> np.ndarray:
    """The ink (uint8, 255 = full pen) written on rendered paper; ``printed``: the form's print under it
    (uint8, 255 = full print, in a printer's colour drawn here)."""
    h, w = ink.shape
    alpha = (ink.astype(np.float32) / 255.0)[..., None]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    light = 1 - 0.25 * rng.random() * (xx / w) - 0.2 * rng.random() * (yy / h)  # lighting gradient
    paper_colour = np.array([rng.uniform(200, 250), rng.uniform(200, 250), rng.uniform(195, 245)], np.float32)
    texture = cv2.GaussianBlur(rng.normal(0, 8, (h, w)).astype(np.float32), (0, 0), 1.5)[..., None]
    paper = paper_colour * light[..., None] + texture
    if rng.random() < cfg.ruled_lines:
        gap = int(height * rng.uniform(1.0, 1.6))
        for y in range(int(rng.integers(0, gap)), h, gap):
            cv2.line(paper, (0, y), (w, y), (150.0, 170.0, 200.0), 1)
    if printed is not None:
        # Forms print their boxes black, grey, or in a pale "dropout" colour (blue, red, green).
        inks = [[40, 40, 40], [120, 120, 120], [190, 120, 60], [70, 70, 200], [90, 150, 90]]
        print_colour = np.array(inks[int(rng.integers(len(inks)))], np.float32)
        printed_alpha = (printed.astype(np.float32) / 255.0)[..., None]
        paper = paper * (1 - printed_alpha) + print_colour * printed_alpha
    pens = [[30, 30, 35], [140, 40, 20], [30, 30, 150], [60, 60, 60]]  # BGR: black, blue, red, pencil
    pen = np.array(pens[int(rng.integers(len(pens)))], np.float32)
    image = paper * (1 - alpha) + pen * alpha
    if rng.random() < cfg.invert:
        image = 255 - image
    if rng.random() < cfg.blur:
        image = cv2.GaussianBlur(image, (3, 3), 0)
    image = image + rng.normal(0, cfg.noise, image.shape)
    angle = rng.uniform(-cfg.rotation, cfg.rotation)
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    image = cv2.warpAffine(np.clip(image, 0, 255).astype(np.uint8), m, (w, h), borderMode=cv2.BORDER_REPLICATE)
    if rng.random() < cfg.jpeg:
        buffer = io.BytesIO()
        Image.fromarray(image[..., ::-1]).save(buffer, format="JPEG", quality=int(rng.integers(40, 90)))
        image = np.asarray(Image.open(buffer))[..., ::-1].copy()
    return image


def make_numbers(
    images: np.ndarray, labels: np.ndarray, count: int, seed: int = 0, cfg: SynthConfig = MODERATE
) -> list[tuple[np.ndarray, str]]:
    """``count`` synthetic number photos and their texts, the same for the same seed."""
    rng = np.random.default_rng(seed)
    return [compose_number(images, labels, rng, cfg) for _ in range(count)]


COMB_FIELD = SynthConfig(min_digits=3, max_digits=8, digit_height=(26, 48), ruled_lines=0.0, invert=0.0)


def compose_comb_field(
    images: np.ndarray, labels: np.ndarray, rng: np.random.Generator, cfg: SynthConfig = COMB_FIELD
) -> tuple[np.ndarray, str]:
    """A form's comb field: a printed row of boxes, one handwritten digit in each (uint8 BGR, text).

    Half are closed boxes, half an open comb (a printed baseline with teeth rising between the boxes,
    a quarter to the whole of the box's height). Digits sit anywhere in their box, and a tenth of
    them reach over its edge into the tooth beside them."""
    n = int(rng.integers(cfg.min_digits, cfg.max_digits + 1))
    picks = rng.integers(0, len(labels), n)
    height = int(rng.integers(*cfg.digit_height))
    box_w, box_h = int(height * rng.uniform(0.95, 1.5)), int(height * rng.uniform(1.15, 1.6))
    closed = rng.random() < 0.5
    tooth = box_h if closed else int(box_h * rng.uniform(0.25, 1.0))
    line = int(rng.integers(1, 4))  # printed line width, pixels
    margin = height
    h, w = box_h + 2 * margin, n * box_w + 2 * margin
    ink, printed = np.zeros((h, w), np.uint8), np.zeros((h, w), np.uint8)
    x0, top, bottom = margin, margin, margin + box_h
    cv2.line(printed, (x0, bottom), (x0 + n * box_w, bottom), 255, line)
    if closed:
        cv2.line(printed, (x0, top), (x0 + n * box_w, top), 255, line)
    for i in range(n + 1):
        cv2.line(printed, (x0 + i * box_w, bottom - tooth), (x0 + i * box_w, bottom), 255, line)
    slant = float(rng.uniform(-cfg.slant, cfg.slant))
    for i, pick in enumerate(picks):
        glyph = shape_digit(images[pick], int(height * rng.uniform(0.75, 0.95)), slant, rng)
        gh, gw = glyph.shape
        room_x, room_y = max(0, box_w - gw - 2 * line), max(0, box_h - gh - 2 * line)
        x = x0 + i * box_w + line + int(rng.integers(0, room_x + 1))
        y = top + line + int(rng.integers(0, room_y + 1))
        if rng.random() < 0.1:  # over the edge
            x += int(rng.choice([-1, 1]) * gw * rng.uniform(0.1, 0.3))
        place(ink, glyph, max(0, min(x, w - gw)), y)
    return _render(ink, rng, cfg, height, printed), "".join(str(int(labels[k])) for k in picks)


def make_comb_fields(
    images: np.ndarray, labels: np.ndarray, count: int, seed: int = 0, cfg: SynthConfig = COMB_FIELD
) -> list[tuple[np.ndarray, str]]:
    """``count`` comb fields (``compose_comb_field``) and their texts, the same for the same seed."""
    rng = np.random.default_rng(seed)
    return [compose_comb_field(images, labels, rng, cfg) for _ in range(count)]


def make_blank_pages(count: int, seed: int = 0, cfg: SynthConfig = MODERATE) -> list[np.ndarray]:
    """``count`` pages rendered as ``make_numbers`` renders its photos (lighting, paper grain, ruled lines,
    blur, noise, rotation, JPEG) with no ink on them: a reader must read them empty."""
    rng = np.random.default_rng(seed)
    pages = []
    for _ in range(count):
        h, w, writing = int(rng.integers(200, 500)), int(rng.integers(300, 900)), int(rng.integers(30, 80))
        pages.append(_render(np.zeros((h, w), np.uint8), rng, cfg, writing))
    return pages
