"""Make the example images the README shows, drawn here from OpenCV's script font with pen jitter, on
paper of varying shade, in varying ink colours and both polarities (no data set is used):

    examples/digits/digit_N.png     one digit per image, for `digitread predict`
    examples/numbers/*.png          numbers as people write them on forms (one in a row of printed
                                    boxes), meters and boards

    python examples/make_examples.py      # rewrites both folders, deterministically for one set of
                                          # library versions: today's (OpenCV 5.1) draw the older
                                          # images differently, so the committed ones
                                          # stay as first drawn; boxes_20931.png is today's
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

OUT = Path(__file__).parent / "digits"
NUMBERS = Path(__file__).parent / "numbers"


def draw_digit(digit: int, rng: np.random.Generator, size: int = 96) -> np.ndarray:
    ink = np.zeros((size, size), np.uint8)
    scale = rng.uniform(2.0, 2.6)
    thickness = int(rng.integers(3, 6))
    font = cv2.FONT_HERSHEY_SCRIPT_SIMPLEX
    (w, h), _ = cv2.getTextSize(str(digit), font, scale, thickness)
    origin = ((size - w) // 2 + int(rng.integers(-6, 7)), (size + h) // 2 + int(rng.integers(-6, 7)))
    cv2.putText(ink, str(digit), origin, font, scale, 255, thickness, cv2.LINE_AA)
    # A slight slant and rotation, as a hand would give.
    angle, shear = rng.uniform(-12, 12), rng.uniform(-0.2, 0.2)
    m = cv2.getRotationMatrix2D((size / 2, size / 2), angle, 1.0)
    m[0, 1] += shear
    return cv2.warpAffine(ink, m, (size, size), flags=cv2.INTER_LINEAR)


def on_paper(ink: np.ndarray, rng: np.random.Generator, dark_board: bool) -> np.ndarray:
    alpha = ink.astype(np.float32)[..., None] / 255.0
    if dark_board:  # chalk on a board
        paper = np.array([40, 60, 45], np.float32) + rng.normal(0, 6, ink.shape + (3,))
        pen = np.array([235, 235, 225], np.float32)
    else:
        paper = np.array([238, 236, 228], np.float32) * rng.uniform(0.85, 1.0) + rng.normal(0, 5, ink.shape + (3,))
        pen = np.array(rng.choice([[30, 30, 40], [20, 40, 150], [150, 30, 30]]), np.float32)  # BGR: black, red, blue
    image = paper * (1 - alpha) + pen * alpha
    return np.clip(image, 0, 255).astype(np.uint8)


def draw_number(text: str, rng: np.random.Generator, height: int = 60, ruled: bool = False) -> np.ndarray:
    """``text`` in script digits, each with its own jitter, on one ink canvas."""
    font = cv2.FONT_HERSHEY_SCRIPT_SIMPLEX
    scale = height / 22
    thickness = int(rng.integers(3, 6))
    width = int(len(text) * height * 0.9) + 2 * height
    ink = np.zeros((height * 3, width), np.uint8)
    x = height
    for ch in text:
        (w, _), _ = cv2.getTextSize(ch, font, scale, thickness)
        y = int(height * 2 + rng.integers(-height // 10, height // 10 + 1))
        cv2.putText(ink, ch, (x, y), font, scale * rng.uniform(0.9, 1.1), 255, thickness, cv2.LINE_AA)
        x += w + int(rng.integers(-2, height // 5))
    ink = ink[:, : x + height]
    m = cv2.getRotationMatrix2D((ink.shape[1] / 2, ink.shape[0] / 2), rng.uniform(-3, 3), 1.0)
    m[0, 1] += rng.uniform(-0.15, 0.15)
    ink = cv2.warpAffine(ink, m, (ink.shape[1], ink.shape[0]))
    if ruled:
        cv2.line(ink, (0, int(height * 2.2)), (ink.shape[1], int(height * 2.2)), 110, 2)
    return ink


def draw_boxes(text: str, rng: np.random.Generator, height: int = 56) -> np.ndarray:
    """A form's comb field: a printed row of boxes in blue, one script digit in each, the page
    turned a little as a phone photo would."""
    font = cv2.FONT_HERSHEY_SCRIPT_SIMPLEX
    box_w, box_h = int(height * 1.1), int(height * 1.35)
    margin = height
    h, w = box_h + 2 * margin, len(text) * box_w + 2 * margin
    ink = np.zeros((h, w), np.uint8)
    printed = np.zeros((h, w), np.uint8)
    for i in range(len(text) + 1):
        cv2.line(printed, (margin + i * box_w, margin), (margin + i * box_w, margin + box_h), 255, 2)
    for y in (margin, margin + box_h):
        cv2.line(printed, (margin, y), (margin + len(text) * box_w, y), 255, 2)
    thickness = int(rng.integers(3, 5))
    for i, ch in enumerate(text):
        scale = height / 28 * rng.uniform(0.9, 1.05)
        (cw, ch_h), _ = cv2.getTextSize(ch, font, scale, thickness)
        x = margin + i * box_w + (box_w - cw) // 2 + int(rng.integers(-4, 5))
        y = margin + (box_h + ch_h) // 2 + int(rng.integers(-4, 5))
        cv2.putText(ink, ch, (x, y), font, scale, 255, thickness, cv2.LINE_AA)
    m = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(1.0, 2.0), 1.0)
    ink, printed = (cv2.warpAffine(a, m, (w, h)) for a in (ink, printed))
    paper = np.array([240, 238, 232], np.float32) + rng.normal(0, 4, (h, w, 3))
    blue_print = np.array([150, 110, 60], np.float32)  # BGR: a form's blue
    pen = np.array([30, 30, 40], np.float32)
    image = paper * (1 - printed[..., None] / 255.0) + blue_print * (printed[..., None] / 255.0)
    image = image * (1 - ink[..., None] / 255.0) + pen * (ink[..., None] / 255.0)
    return np.clip(image, 0, 255).astype(np.uint8)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2026)
    for digit in range(10):
        image = on_paper(draw_digit(digit, rng), rng, dark_board=digit in (3, 8))
        cv2.imwrite(str(OUT / f"digit_{digit}.png"), image)
    NUMBERS.mkdir(parents=True, exist_ok=True)
    numbers = {
        "meter_4096": ("4096", False, False),
        "score_87": ("87", False, True),
        "amount_1250": ("1250", True, False),
        "temperature_-12.5": ("-12.5", False, False),
        "form_507318": ("507318", True, False),
    }
    for name, (text, ruled, board) in numbers.items():
        image = on_paper(draw_number(text, rng, ruled=ruled), rng, dark_board=board)
        cv2.imwrite(str(NUMBERS / f"{name}.png"), image)
    cv2.imwrite(str(NUMBERS / "boxes_20931.png"), draw_boxes("20931", rng))  # drawn last: the others stay as they were
    print(f"wrote 10 images to {OUT} and {len(numbers) + 1} to {NUMBERS}")


if __name__ == "__main__":
    main()
