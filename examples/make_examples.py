"""Make the example images the README shows: one handwritten-style digit per image, drawn here from
OpenCV's script font with pen jitter, on paper of varying shade, in varying ink colours and both polarities.

    python examples/make_examples.py      # rewrites examples/digits/*.png, deterministically
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

OUT = Path(__file__).parent / "digits"


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


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2026)
    for digit in range(10):
        image = on_paper(draw_digit(digit, rng), rng, dark_board=digit in (3, 8))
        cv2.imwrite(str(OUT / f"digit_{digit}.png"), image)
    print(f"wrote 10 images to {OUT}")


if __name__ == "__main__":
    main()
