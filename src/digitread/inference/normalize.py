"""One digit, any image -> the 28x28 field MNIST models expect (the MNIST conventions, done right):
white ink on black, the ink's bounding box fitted into 20x20 keeping its aspect ratio, and the
centre of mass moved to the centre of the 28x28 field.
"""

from __future__ import annotations

import cv2
import numpy as np

from digitread.errors import ImageError


def ink_on_black(gray: np.ndarray) -> np.ndarray:
    """Make ink bright and background dark, finding the polarity from the image's border.

    The border of a one-digit image is almost all background, so if it is brighter than the middle of
    the image's range the ink is dark (pen on paper) and the image is inverted.
    """
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if np.median(border) > (int(gray.min()) + int(gray.max())) / 2:
        gray = 255 - gray
    return gray


def ink_percentile(ink: np.ndarray, q: float) -> float | None:
    """``np.percentile(ink[ink > 0], q)`` (linear interpolation) from a histogram of the uint8 pixels:
    the same number at a fraction of the cost, which matters for the dozens of crops of every photo."""
    counts = np.bincount(ink.ravel(), minlength=256)
    counts[0] = 0
    n = int(counts.sum())
    if n == 0:
        return None
    position = q / 100 * (n - 1)
    below = int(position)
    cumulative = np.cumsum(counts)
    lo = int(np.searchsorted(cumulative, below + 1))
    hi = int(np.searchsorted(cumulative, min(below + 2, n)))
    return lo + (hi - lo) * (position - below)


def saturate_ink(ink: np.ndarray) -> np.ndarray:
    """Stretch uint8 ink so its typical stroke pixel is 255, as in MNIST, where strokes have a saturated
    core and soft edges; a field whose strokes are grey reads as a different, fainter kind of digit."""
    core = ink_percentile(ink, 60)
    if core is None:
        return ink
    lut = np.clip(np.arange(256, dtype=np.float32) * (255.0 / max(core, 1.0)), 0, 255).astype(np.uint8)
    return lut[ink]


def clean_background(ink: np.ndarray) -> np.ndarray:
    """Set the background to exactly 0 (Otsu's threshold) and saturate the ink's strokes."""
    lo, hi = int(ink.min()), int(ink.max())
    if hi - lo < 16:
        return np.zeros_like(ink)  # flat image: no ink to find
    blurred = cv2.GaussianBlur(ink, (3, 3), 0) if min(ink.shape) >= 3 else ink
    threshold, _ = cv2.threshold(blurred, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    out = ink.astype(np.float32) - threshold
    out[out < 0] = 0
    return saturate_ink(out.astype(np.uint8)) if out.max() > 0 else np.zeros_like(ink)


def fit_digit(ink: np.ndarray, size: int = 28, box: int = 20) -> np.ndarray:
    """Crop the ink, scale it to fit ``box`` x ``box`` keeping aspect ratio, and centre its mass in ``size``."""
    x, y, w, h = cv2.boundingRect(ink)  # of the non-zero pixels
    if w == 0:
        raise ImageError("no ink found: the image looks blank")
    crop = ink[y : y + h, x : x + w]
    scale = box / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    digit = cv2.resize(crop, (nw, nh), interpolation=interp).astype(np.float32)
    mass = digit.sum()
    if mass <= 0:
        raise ImageError("no ink found: the image looks blank")
    cy = (digit.sum(axis=1) * np.arange(nh)).sum() / mass
    cx = (digit.sum(axis=0) * np.arange(nw)).sum() / mass
    # Translate so the centre of mass lands on the field's centre; warpAffine does sub-pixel shifts.
    shift = np.float32([[1, 0, (size - 1) / 2 - cx], [0, 1, (size - 1) / 2 - cy]])
    field = cv2.warpAffine(digit, shift, (size, size), flags=cv2.INTER_LINEAR, borderValue=0)
    return np.clip(field, 0, 255).astype(np.uint8)


def normalize_digit(gray: np.ndarray, preprocess: dict | None = None) -> np.ndarray:
    """A uint8 (28, 28) MNIST-style digit from a grayscale image of one digit.

    >>> normalize_digit(load_image("seven.png")).shape  # doctest: +SKIP
    (28, 28)
    """
    pre = preprocess or {}
    ink = clean_background(ink_on_black(gray))
    return fit_digit(ink, pre.get("size", 28), pre.get("digit_box", 20))


def thicken_strokes(field: np.ndarray, min_width: float = 2.0) -> np.ndarray:
    """Dilate a 28x28 digit whose strokes are thinner than MNIST's (fine pens, big scans scaled down).

    The stroke width is estimated as twice the median distance-to-background along the stroke's
    ridge; MNIST digits measure about 2.5-3.5 pixels at this size.
    """
    binary = (field > 64).astype(np.uint8)
    if binary.sum() == 0:
        return field
    distance = cv2.distanceTransform(binary, cv2.DIST_L2, 3)
    ridge = distance[(distance >= cv2.dilate(distance, np.ones((3, 3), np.uint8))) & (binary > 0)]
    width = 2 * _median(ridge) if ridge.size else 0.0
    if width >= min_width:
        return field
    return cv2.dilate(field, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))


def _median(values: np.ndarray) -> float:
    """``np.median`` of a 1-D array, without its overhead (called for every crop of every photo)."""
    n = values.size
    middle = n // 2
    if n % 2:
        return float(np.partition(values, middle)[middle])
    part = np.partition(values, (middle - 1, middle))
    return float(part[middle - 1 : middle + 1].mean())  # in the array's dtype, as np.median does
