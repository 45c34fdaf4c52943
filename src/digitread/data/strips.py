"""Synthetic number strips for training the sequence model, made on the fly and seeded.

A strip is a handwritten number the way it sits on a cheque or a form: digits (MNIST *training*
digits) placed left to right with random spacing down to touching and overlapping, scale and
baseline jitter, slant and pen width; separators that are not part of the number (thousands dots and
commas, trailing dashes, '=', '/-', crosses and ticks); printed baselines, ruled lines, box edges, guilloche patterns
and paper texture; pen underlines (a register's row number, underlined and crossed); blur, noise,
JPEG and both polarities; optionally a small scan (``StripConfig.small``). The label is the digits alone, as on
ORAND-CAR ("27.375,-" is 27375).

Each rendered strip then goes through the reader's own ``find_lines`` (prepare, segment) and is cut by
``line_strip``, so the model trains on what the reader shows it at inference time.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from digitread.data.font_digits import load_font_digits
from digitread.data.outliers import draw_letter
from digitread.data.synth import place, shape_digit, touch_offset
from digitread.inference.strip import STRIP_HEIGHT, image_strip
from digitread.models.crnn import CLASS_OF


@dataclass
class StripConfig:
    min_digits: int = 1
    max_digits: int = 8
    digit_height: tuple[int, int] = (20, 48)  # pixels
    spacing: tuple[float, float] = (-0.12, 0.5)  # gap between digits, as a share of digit height
    touching: float = 0.3  # chance that a digit is pushed left until its ink meets the previous one
    slant: float = 0.35  # max shear
    small_tail: float = 0.3  # chance that the digits after the first are written smaller (cheque zeros)
    wide: float = 0.4  # share of digits drawn wider than MNIST's (round, cursive hands)
    ligature: float = 0.15  # chance per gap of a joining stroke from one digit's foot to the next
    continental: float = 0.3  # chance that a 1 gets a flag and a 7 a crossbar (European hands; MNIST has few)
    font_digits: float = 0.2  # share of digits taken from handwriting-style fonts (``data/font_digits.py``)
    elastic: float = 0.5  # share of digits warped by a smooth random displacement field
    words: float = 0.08  # chance that the strip holds letters instead of digits: the model must read nothing
    separators: float = 0.35  # chance of thousands dots or commas
    # Chance that a comma is written as a pen writes one: a stroke from about the digits' middle down
    # below the line, 0.3-0.95 of a digit's height in all (often tall enough to pass for a 1).
    pen_commas: float = 0.0
    decimal_point: float = 0.0  # chance of one point between two digits (for models with a point class)
    points: bool = False  # label the dots and commas between digits as '.' (models with a point class)
    trailing: float = 0.35  # chance of one of trailing_marks after the number
    # Each string is drawn mark by mark: ',', '-', '=', '/', '.', '~' (a flourish), '+', 'x', 'v' (a tick).
    # Crosses twice over: a register's row mark, often small and set apart, is easily read as a 4 or a 1.
    trailing_marks: tuple[str, ...] = (",", "-", "=", "/-", ",-", ".-", "--", "~", "+", "x", "v", "+", "x")
    leading: float = 0.1  # chance of a leading '=' or '-' (cheque amounts are fenced against edits)
    underline: float = 0.15  # chance of a pen underline touching the digits, often with a cross on or under it
    baseline: float = 0.5  # chance of a printed baseline under (or through the foot of) the digits
    ruled: float = 0.2  # chance of faint ruled lines
    box: float = 0.2  # chance of printed box edges left and right
    pattern: float = 0.35  # chance of a guilloche pattern (cheque paper)
    invert: float = 0.1  # chance of light ink on a dark background
    blur: float = 0.4
    noise: tuple[float, float] = (2.0, 10.0)  # std of pixel noise
    jpeg: float = 0.4
    small: float = 0.0  # chance the strip is scanned small (digits SMALL_HEIGHT pixels tall, then blurred)


CROSSES = ("+", "x")
# Digit heights of a strip scanned small: row numbers in old registers are 10-16 pixels tall in their
# scans, so the reader enlarges them and sees soft, blurred strokes that full-size strips never show.
SMALL_HEIGHT = (10.0, 16.0)


def _with_points(digits: str, marks_after: dict[int, list[str]]) -> str:
    """The label with a '.' after each digit followed by a dot or comma that is not the last: the reader
    keeps a point between digits (a decimal point; a thousands separator reads the same way)."""
    return "".join(
        d + ("." if k + 1 < len(digits) and {".", ","} & set(marks_after.get(k, [])) else "")
        for k, d in enumerate(digits)
    )


def _separator(kind: str, h: int, stroke: int, arm: float = 0.25) -> np.ndarray:
    """A mark drawn on its own canvas (h x w), its foot on the canvas's bottom row like a digit's; a
    cross's arms are ``arm`` times ``h`` long."""
    canvas = np.zeros((h, max(4, h)), np.uint8)
    r = max(2, stroke)
    if kind == ".":
        cv2.circle(canvas, (r + 1, h - r - 1), r, 255, -1)
        return canvas[:, : 2 * r + 3]
    if kind == ",":
        cv2.line(canvas, (r + 2, h - 2 * r - 1), (2, h - 1), 255, stroke)
        cv2.circle(canvas, (r + 2, h - 2 * r - 1), r, 255, -1)
        return canvas[:, : 2 * r + 5]
    mid, width = h // 2, int(0.5 * h)
    if kind == "-":
        cv2.line(canvas, (1, mid), (width, mid), 255, stroke)
    elif kind == "=":
        cv2.line(canvas, (1, mid - h // 8), (width, mid - h // 8), 255, stroke)
        cv2.line(canvas, (1, mid + h // 8), (width, mid + h // 8), 255, stroke)
    elif kind == "~":  # a closing flourish, on a wider canvas of its own
        xs = np.arange(1, width + h // 2)
        ys = mid + (h / 6) * np.sin(xs / max(2, h / 5))
        curl = np.zeros((h, width + h // 2 + 2), np.uint8)
        cv2.polylines(curl, [np.stack([xs, ys], 1).astype(np.int32)], False, 255, stroke)
        return curl
    elif kind == "/":
        cv2.line(canvas, (1, h - 2), (h // 3, h // 6), 255, stroke)
        width = h // 3
    elif kind in CROSSES:  # a cross or a plus beside the number (a register's mark, a checked box)
        arm = max(2, int(arm * h))
        c = arm + stroke
        ends = [((c - arm, mid), (c + arm, mid)), ((c, mid - arm), (c, mid + arm))]
        if kind == "x":
            ends = [((c - arm, mid - arm), (c + arm, mid + arm)), ((c - arm, mid + arm), (c + arm, mid - arm))]
        for a, b in ends:
            cv2.line(canvas, a, b, 255, stroke)
        width = 2 * c
    elif kind == "v":  # a tick
        cv2.line(canvas, (1, mid), (h // 6, mid + h // 5), 255, stroke)
        cv2.line(canvas, (h // 6, mid + h // 5), (h // 2, mid - h // 4), 255, stroke)
        width = h // 2
    return canvas[:, : width + 2]


def _pen_comma(height: int, stroke: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """A comma as handwriting has it: a stroke bowing right, from 0.15-0.5 of the digits' height above
    the line to 0.15-0.45 below it, leaning left, often begun with a blob. Returns the mark and its
    top's height above the line."""
    above, below = int(height * rng.uniform(0.15, 0.5)), int(height * rng.uniform(0.15, 0.45))
    lean, bow = height * rng.uniform(0.05, 0.3), height * rng.uniform(0.0, 0.12)
    r = max(1, stroke)
    w = int(lean + bow) + 2 * r + 4
    canvas = np.zeros((above + below + 2 * r + 2, w), np.uint8)
    t = np.linspace(0, 1, 16)[:, None]
    top, foot = np.array([lean + r + 1, r + 1]), np.array([r + 1, above + below + r])
    control = (top + foot) / 2 + [bow, 0]
    curve = (1 - t) ** 2 * top + 2 * t * (1 - t) * control + t**2 * foot
    cv2.polylines(canvas, [curve.astype(np.int32)], False, 255, stroke)
    if rng.random() < 0.5:
        cv2.circle(canvas, tuple(int(v) for v in top), r, 255, -1)
    return canvas, above + r + 1


def _mark_after(
    canvas: np.ndarray,
    kind: str,
    x: int,
    baseline: int,
    height: int,
    stroke: int,
    rng: np.random.Generator,
    pen_commas: float = 0.0,
) -> int:
    """Draw the mark ``kind`` just after column ``x`` (a separator or a trailing mark); returns the column
    after it. A cross or a plus is a register's row mark: small, often well apart, anywhere from
    mid-height down; the rest sit close, at about the digits' height."""
    # Drawn only when asked for, so sets made without pen commas keep their random draws.
    if kind == "," and pen_commas and rng.random() < pen_commas:
        x += int(height * rng.uniform(0.02, 0.2))
        mark, above = _pen_comma(height, stroke, rng)
        place(canvas, mark, x, baseline - above)
        return x + mark.shape[1]
    if kind in CROSSES:
        x += int(height * rng.uniform(0.05, 0.9))
        mark = _separator(kind, height, stroke, arm=rng.uniform(0.15, 0.3))
        drop = int(rng.integers(0, height // 3 + 1))
    else:
        x += int(height * rng.uniform(0.02, 0.2))
        mark = _separator(kind, height, stroke)
        drop = int(rng.integers(0, height // 8 + 1))
    place(canvas, mark, x, baseline - height + drop)
    return x + mark.shape[1]


def _underline(
    canvas: np.ndarray, x0: int, x1: int, baseline: int, height: int, stroke: int, rng: np.random.Generator
) -> int:
    """A hand-drawn line under the number from ``x0`` to ``x1``, touching or nearly touching the digits'
    feet, and in half the strips a cross ('+' or 'x') on its right end or under it, as register clerks
    mark a row. Where line removal leaves it (it is shorter than a ruled line), it joins the digits into
    one piece. Returns the column after the canvas's rightmost ink."""
    h, w = canvas.shape
    start = x0 - int(height * rng.uniform(-0.1, 0.4))
    end = min(w - 2, x1 + int(height * rng.uniform(-0.1, 0.5)))
    xs = np.arange(max(0, start), end)
    y = baseline + height * rng.uniform(-0.02, 0.2)
    tilt, sag = rng.uniform(-0.08, 0.08), height * rng.uniform(-0.06, 0.06)
    ys = y + tilt * (xs - xs[0]) + sag * np.sin(np.pi * (xs - xs[0]) / max(1, len(xs)))
    points = np.stack([xs, np.clip(ys, 0, h - 1)], 1).astype(np.int32)
    cv2.polylines(canvas, [points], False, 255, max(1, stroke - int(rng.integers(0, 2))), cv2.LINE_AA)
    right = int(xs[-1]) if len(xs) else x1
    if len(xs) and rng.random() < 0.5:
        size = max(8, int(height * rng.uniform(0.7, 1.2)))  # the cross is half its canvas
        cross = _separator(str(rng.choice(CROSSES)), size, stroke)
        if rng.random() < 0.5:  # on the line's right end
            cx, cy = right - cross.shape[1] // 3, int(ys[-1]) - size // 2
        else:  # under the line, near its middle
            cx, cy = int(xs[len(xs) // 2]) - cross.shape[1] // 2, int(ys.max()) + stroke - size // 4
        cx, cy = int(np.clip(cx, 0, w - cross.shape[1])), int(np.clip(cy, 0, h - size))
        place(canvas, cross, cx, cy)
    return int(np.nonzero(canvas.any(axis=0))[0].max()) + 1


def _elastic(digit: np.ndarray, rng: np.random.Generator, alpha: float = 30.0, sigma: float = 4.5) -> np.ndarray:
    """Simard et al.'s elastic distortion: a random displacement field, smoothed, moves every pixel;
    strokes bend the way different hands bend them."""
    h, w = digit.shape
    dx = cv2.GaussianBlur(rng.uniform(-1, 1, (h, w)).astype(np.float32), (0, 0), sigma) * alpha
    dy = cv2.GaussianBlur(rng.uniform(-1, 1, (h, w)).astype(np.float32), (0, 0), sigma) * alpha
    xx, yy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(digit, xx + dx, yy + dy, cv2.INTER_LINEAR, borderValue=0)


def _continental(digit: np.ndarray, label: int, rng: np.random.Generator) -> np.ndarray:
    """A 1 with the long flag, or a 7 with the bar, that most of Europe and Latin America write."""
    ys, xs = np.nonzero(digit > 100)
    if len(ys) == 0:
        return digit
    out = digit.copy()
    if label == 1:
        top = int(np.argmin(ys))
        tip = (int(xs[top]), int(ys[top]))
        end = (tip[0] - int(rng.integers(5, 10)), tip[1] + int(rng.integers(4, 10)))
        cv2.line(out, tip, end, 255, int(rng.integers(2, 4)), cv2.LINE_AA)
    elif label == 7:
        y = int((ys.min() + ys.max()) / 2 + rng.integers(-2, 3))
        row = xs[np.abs(ys - y) <= 1]
        if len(row):
            cx, half = int(row.mean()), int(rng.integers(4, 7))
            cv2.line(out, (cx - half, y), (cx + half, y), 255, int(rng.integers(2, 4)), cv2.LINE_AA)
    return out


def _join(canvas: np.ndarray, x: int, y: int, glyph: np.ndarray, stroke: int) -> None:
    """A pen stroke from the ink already on the canvas (its lowest right-hand point) to where ``glyph``
    will start at (x, y): the link a cursive hand draws between close digits."""
    left = canvas[:, max(0, x - glyph.shape[1]) : x]
    ys, xs = np.nonzero(left > 100)
    rows, cols = np.nonzero(glyph > 100)
    if len(ys) == 0 or len(rows) == 0:
        return
    right = xs >= xs.max() - 2
    start = (int(xs[right].max()) + max(0, x - glyph.shape[1]), int(ys[right].max()))
    first = cols <= cols.min() + 2
    end = (x + int(cols[first].min()), y + int(rows[first].mean()))
    if end[0] - start[0] > 0.4 * glyph.shape[0]:
        return  # digits this far apart are not joined by a hand
    cv2.line(canvas, start, end, 255, max(1, stroke - 1), cv2.LINE_AA)


def compose_strip(
    images: np.ndarray, labels: np.ndarray, rng: np.random.Generator, cfg: StripConfig
) -> tuple[np.ndarray, str]:
    """One rendered strip (uint8 grey, as photographed) and its digits ('' for a strip of letters)."""
    n = int(rng.integers(cfg.min_digits, cfg.max_digits + 1))
    fonts, font_labels = load_font_digits() if cfg.font_digits > 0 else (images[:0], labels[:0])
    digits, digit_labels = [], []
    for _ in range(n):
        if len(font_labels) and rng.random() < cfg.font_digits:
            k = int(rng.integers(len(font_labels)))
            digits.append(fonts[k])
            digit_labels.append(int(font_labels[k]))
        else:
            k = int(rng.integers(len(labels)))
            digits.append(images[k])
            digit_labels.append(int(labels[k]))
    height = int(rng.integers(*cfg.digit_height))
    slant = float(rng.uniform(-cfg.slant, cfg.slant))
    stroke = max(1, round(height * rng.uniform(0.05, 0.11)))
    sizes = rng.uniform(0.85, 1.12, n)
    if n > 1 and rng.random() < cfg.small_tail:
        sizes[int(rng.integers(1, n)) :] *= rng.uniform(0.5, 0.85)
    glyphs = []
    for digit, label, size in zip(digits, digit_labels, sizes, strict=True):
        if label in (1, 7) and rng.random() < cfg.continental:
            digit = _continental(digit, label, rng)
        if rng.random() < cfg.elastic:
            digit = _elastic(digit, rng)
        glyph = shape_digit(digit, max(8, int(height * size)), slant, rng)
        if rng.random() < cfg.wide:
            stretch = rng.uniform(1.1, 1.7)
            glyph = cv2.resize(glyph, (max(2, round(glyph.shape[1] * stretch)), glyph.shape[0]))
        glyphs.append(glyph)
    label = "".join(map(str, digit_labels))
    if rng.random() < cfg.words:  # OpenCV's fonts (letters with no digit look-alike), as for the digit model
        glyphs = [
            shape_digit(draw_letter(rng), max(8, int(height * rng.uniform(0.5, 1.0))), slant, rng) for _ in glyphs
        ]
        label = ""
    marks_after: dict[int, list[str]] = {}
    if n >= 4 and rng.random() < cfg.separators:
        sep = str(rng.choice([".", ","]))
        for k in range(n - 3, 0, -3):
            marks_after.setdefault(k - 1, []).append(sep)
    # Drawn only when asked for, so sets made without decimal points keep their random draws.
    if n >= 2 and cfg.decimal_point and rng.random() < cfg.decimal_point:
        marks_after.setdefault(int(rng.integers(0, n - 1)), []).append(".")
    if rng.random() < cfg.trailing:
        marks_after.setdefault(n - 1, []).extend(list(cfg.trailing_marks[int(rng.integers(len(cfg.trailing_marks)))]))
    if cfg.points and label:
        label = _with_points(label, marks_after)

    margin = int(height * rng.uniform(0.3, 1.2))
    width = 2 * margin + sum(g.shape[1] for g in glyphs) + (n + 6) * height
    canvas = np.zeros((int(height * 2.4), width), np.uint8)
    baseline = int(height * 1.7)
    x = margin
    first = x
    if rng.random() < cfg.leading:
        mark = _separator(str(rng.choice(["-", "="])), height, stroke)
        place(canvas, mark, x, baseline - height)
        x += mark.shape[1] + int(height * rng.uniform(0.1, 0.4))
    for k, glyph in enumerate(glyphs):
        y = baseline - glyph.shape[0] + int(rng.integers(-height // 10, height // 10 + 1))
        if k and rng.random() < cfg.touching:
            x -= touch_offset(canvas, glyph, x, y)
        if k and rng.random() < cfg.ligature:
            _join(canvas, x, y, glyph, stroke)
        place(canvas, glyph, x, y)
        x += glyph.shape[1]
        for kind in marks_after.get(k, []):
            x = _mark_after(canvas, kind, x, baseline, height, stroke, rng, cfg.pen_commas)
        if k + 1 < n:
            x = max(1, x + int(height * rng.uniform(*cfg.spacing)))
    # Drawn only when asked for, so sets made with underline=0 keep their random draws (benchmarks).
    if cfg.underline and rng.random() < cfg.underline:
        x = max(x, _underline(canvas, first, x, baseline, height, stroke, rng))
    canvas = canvas[:, : min(width, x + margin)]
    return _paper(canvas, rng, cfg, height, baseline), label


def _paper(ink: np.ndarray, rng: np.random.Generator, cfg: StripConfig, height: int, baseline: int) -> np.ndarray:
    """Put the ink on paper: lighting, texture, printed lines and patterns, then camera and scanner faults."""
    h, w = ink.shape
    paper_level = rng.uniform(170, 250)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    paper = paper_level * (1 - 0.2 * rng.random() * xx / w - 0.15 * rng.random() * yy / h)
    paper += cv2.GaussianBlur(rng.normal(0, rng.uniform(2, 10), (h, w)).astype(np.float32), (0, 0), 1.2)
    if rng.random() < cfg.pattern:
        period = rng.uniform(4, 14)
        waves = np.sin(
            2 * np.pi * (xx * rng.uniform(-1, 1) + yy) / period + rng.uniform(2, 6) * np.sin(xx / rng.uniform(8, 30))
        )
        paper -= rng.uniform(15, 60) * (np.abs(waves) < rng.uniform(0.15, 0.4))
    printed = paper_level - rng.uniform(60, 150)
    if rng.random() < cfg.baseline:
        y = baseline + int(height * rng.uniform(-0.08, 0.3))
        cv2.line(paper, (0, y), (w, y), float(printed), int(rng.integers(1, 4)))
    if rng.random() < cfg.ruled:
        gap = int(height * rng.uniform(0.9, 1.5))
        for y in range(int(rng.integers(0, gap)), h, gap):
            cv2.line(paper, (0, y), (w, y), float(paper_level - rng.uniform(20, 60)), 1)
    if rng.random() < cfg.box:
        for x in (int(rng.integers(0, max(1, height // 3))), w - 1 - int(rng.integers(0, max(1, height // 3)))):
            cv2.line(paper, (x, 0), (x, h), float(printed), int(rng.integers(1, 3)))
    ink_level = rng.uniform(0, max(1.0, paper_level - 80))
    alpha = ink.astype(np.float32) / 255.0
    image = paper * (1 - alpha) + ink_level * alpha
    if rng.random() < cfg.blur:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 1.2))
    image += rng.normal(0, rng.uniform(*cfg.noise), image.shape)
    # Drawn only when asked for, so sets made with small=0 keep their random draws (benchmarks). The
    # scan averages the paper's grain away as it shrinks the writing, then its optics soften the strokes.
    if cfg.small and rng.random() < cfg.small:
        factor = rng.uniform(*SMALL_HEIGHT) / height
        if factor < 1:
            image = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
            image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.3, 0.7))
    image = np.clip(image, 0, 255).astype(np.uint8)
    if rng.random() < cfg.invert:
        image = 255 - image
    if rng.random() < cfg.jpeg:
        _, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 90))])
        image = cv2.imdecode(buffer, cv2.IMREAD_GRAYSCALE)
    return image


def make_strip(
    images: np.ndarray, labels: np.ndarray, rng: np.random.Generator, cfg: StripConfig
) -> tuple[np.ndarray, str, np.ndarray]:
    """A rendered strip, its label, and the model's input cut from it the reader's way."""
    while True:
        rendered, label = compose_strip(images, labels, rng, cfg)
        strip = image_strip(rendered)
        if strip is not None:
            return rendered, label, strip


def make_strips(
    images: np.ndarray, labels: np.ndarray, count: int, seed: int, cfg: StripConfig | None = None
) -> list[tuple[np.ndarray, str, np.ndarray]]:
    """``count`` strips, the same for the same seed (validation sets, tests, benchmarks)."""
    rng = np.random.default_rng(seed)
    return [make_strip(images, labels, rng, cfg or StripConfig()) for _ in range(count)]


class StripStream(torch.utils.data.IterableDataset):
    """A seeded stream of ready batches for one epoch; each worker draws its own share.

    Strips are made a pool of ``POOL`` batches at a time and batched by width, so that little of each
    batch is padding (the model's cost grows with the widest strip in a batch).
    """

    POOL = 8

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        batches: int,
        batch_size: int,
        seed: int,
        cfg: StripConfig | None = None,
    ):
        self.images, self.labels, self.batches, self.batch_size, self.seed = images, labels, batches, batch_size, seed
        self.cfg = cfg or StripConfig()

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        rng = np.random.default_rng([self.seed, worker])
        mine = len(range(worker, self.batches, workers))
        while mine > 0:
            pool = min(self.POOL, mine)
            strips = [make_strip(self.images, self.labels, rng, self.cfg)[1:] for _ in range(pool * self.batch_size)]
            strips = [(s, label) for label, s in strips]
            strips.sort(key=lambda item: item[0].shape[1])
            order = rng.permutation(pool)
            for b in order:
                yield collate_strips(strips[b * self.batch_size : (b + 1) * self.batch_size])
            mine -= pool


def collate_strips(batch: list[tuple[np.ndarray, str]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[str]]:
    """Pad strips to the widest (a multiple of 4, the model's frame width) -> (x uint8 (B,1,H,W), widths,
    targets, labels): ``targets`` concatenates the labels' classes (a digit, or POINT for '.'), as CTC expects."""
    width = max(s.shape[1] for s, _ in batch)
    width = -(-width // 4) * 4
    x = torch.zeros((len(batch), 1, STRIP_HEIGHT, width), dtype=torch.uint8)
    for i, (s, _) in enumerate(batch):
        x[i, 0, :, : s.shape[1]] = torch.from_numpy(s)
    widths = torch.tensor([s.shape[1] for s, _ in batch])
    labels = [label for _, label in batch]
    targets = torch.tensor([CLASS_OF[c] for label in labels for c in label], dtype=torch.long)
    return x, widths, targets, labels


def preview_grid(samples: list[tuple[np.ndarray, str, np.ndarray]], columns: int = 2) -> np.ndarray:
    """A picture of strips: each rendered strip above what the model sees, with its label."""
    cell_w, cell_h = 360, 96
    cells = []
    for rendered, label, strip in samples:
        f = min(cell_w / rendered.shape[1], cell_h / rendered.shape[0])
        small = cv2.resize(rendered, (max(1, round(rendered.shape[1] * f)), max(1, round(rendered.shape[0] * f))))
        top = np.full((cell_h, cell_w), 255, np.uint8)
        top[: small.shape[0], : small.shape[1]] = small
        seen = np.zeros((40, cell_w), np.uint8)
        s = strip[:, :cell_w]
        seen[4 : 4 + s.shape[0], : s.shape[1]] = s
        caption = np.full((22, cell_w), 255, np.uint8)
        cv2.putText(caption, label, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.55, 0, 1, cv2.LINE_AA)
        cells.append(np.pad(np.vstack([caption, top, seen]), 4, constant_values=128))
    while len(cells) % columns:
        cells.append(np.full_like(cells[0], 128))
    rows = [np.hstack(cells[i : i + columns]) for i in range(0, len(cells), columns)]
    return np.vstack(rows)
