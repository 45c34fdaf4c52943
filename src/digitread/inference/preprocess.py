"""A photo or scan -> bright ink on a black background, and a clean binary mask of that ink.

Steps, each for a reason:
- polarity: the background is whatever most pixels are (paper or board), so the side of Otsu's
  threshold holding most pixels is background (when that is close, the light side is paper if it
  is solid, not strokes); dark ink on light paper is inverted.
- even lighting: a white top-hat (ink minus its morphological opening) removes shadows, gradients
  and paper texture wider than a pen stroke; background nearly as dark as ink (a scanner's black
  margin) is left out altogether.
- binarise: Otsu on the top-hat, with a floor so that a blank page's noise is not called ink (a
  second look at an image read empty binarises at that floor, and an image read unsure is read again
  above and below Otsu's threshold: ``threshold_scale``).
- ruled lines: horizontal and vertical runs far longer than a digit are found by opening with long
  thin kernels and removed from the mask (underlines, grid lines, page and scanner edges); so are the
  teeth of a comb field (a form's row of boxes, one digit in each) and its line, even askew.
- slant: handwriting leans; the shear that makes the ink's column profile peakiest (strokes most
  vertical) is undone, so digits stand upright, separate better and look like MNIST's.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Work at a size where a digit is tens of pixels tall: bigger photos are scaled down first (speed),
# tiny crops scaled up (morphology needs a few pixels per stroke).
MAX_SIDE = 1024
MIN_SIDE = 64
MIN_CONTRAST = 24  # grey levels between ink and paper below which nothing is called ink
# Background this far from the paper's level towards full ink (0-1) is no paper: not read (``_solid``).
SOLID = 0.7


@dataclass(frozen=True)
class Comb:
    """Where a comb field's teeth stand: the centre of its first place, its pitch, how many places it
    has, and the rows its teeth span (pixels of the image it was found in)."""

    first: float
    pitch: float
    places: int
    top: float
    bottom: float
    height: float  # a tooth's typical height

    def scaled(self, factor: float) -> Comb:
        return Comb(
            self.first * factor,
            self.pitch * factor,
            self.places,
            self.top * factor,
            self.bottom * factor,
            self.height * factor,
        )


@dataclass
class Prepared:
    ink: np.ndarray  # uint8, ink bright on black, lighting evened out
    mask: np.ndarray  # uint8 0/255, ink after line removal
    scale: float  # working size / original size: divide boxes by it to map back
    inverted: bool  # True when the original had dark ink on a light background
    original_shape: tuple[int, int] = (0, 0)  # (height, width) of the image given
    shear: float = 0.0  # x_upright = x + shear * (y - shear_y0) + shear_pad, undone by ``to_original``
    shear_y0: float = 0.0
    shear_pad: int = 0
    comb: Comb | None = None  # a comb field's teeth taken out, in the original image's pixels
    # How far the writing's lines tilt (degrees, ``estimate_tilt``; 0 when level or in doubt), and for an
    # image turned level before it was prepared (``layout.find_lines``), the 2x3 map from the turned
    # image's pixels back to the original's.
    tilt: float = 0.0
    unrotate: np.ndarray | None = None

    def to_original(self, x: int, y: int, w: int, h: int) -> tuple[int, int, int, int]:
        """A box in working (upright) coordinates -> (x, y, w, h) in the original image."""
        xs = [xx - self.shear_pad - self.shear * (yy - self.shear_y0) for yy in (y, y + h) for xx in (x, x + w)]
        corners = np.array([[min(xs), y], [max(xs), y], [min(xs), y + h], [max(xs), y + h]], np.float64) / self.scale
        if self.unrotate is not None:  # the turned box's corners, boxed again in the original
            corners = corners @ self.unrotate[:, :2].T + self.unrotate[:, 2]
        height, width = self.original_shape
        x0, x1 = _clip(corners[:, 0].min(), width), _clip(corners[:, 0].max(), width)
        y0, y1 = _clip(corners[:, 1].min(), height), _clip(corners[:, 1].max(), height)
        return x0, y0, max(1, x1 - x0), max(1, y1 - y0)


def _clip(value: float, limit: int) -> int:
    """Round and keep inside [0, limit - 1] so every box lies inside the image."""
    return int(min(max(round(value), 0), max(limit - 1, 0)))


def working_scale(shape: tuple[int, int], zoom: float = 1.0) -> float:
    """The factor ``prepare`` scales an image of ``shape`` by, ``zoom`` times larger where MAX_SIDE allows."""
    h, w = shape
    scale = 1.0
    if max(h, w) > MAX_SIDE:
        scale = MAX_SIDE / max(h, w)
    elif min(h, w) < MIN_SIDE:
        scale = min(MIN_SIDE / min(h, w), MAX_SIDE / max(h, w))
    return max(scale, min(scale * zoom, MAX_SIDE / max(h, w)))


def _working_size(gray: np.ndarray, zoom: float = 1.0) -> tuple[np.ndarray, float]:
    h, w = gray.shape
    scale = working_scale(gray.shape, zoom)
    if scale != 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        # Area averaging only where it matters: for mild reductions bilinear is as good and ten times faster.
        interpolation = cv2.INTER_AREA if scale < 0.5 else cv2.INTER_LINEAR if scale < 1 else cv2.INTER_CUBIC
        gray = cv2.resize(gray, size, interpolation=interpolation)
    return gray, scale


def stroke_kernel(shape: tuple[int, int]) -> int:
    """An odd kernel size wider than any pen stroke and narrower than lighting changes, for an image of
    ``shape``: a sixth of its shorter side, within 9-61 pixels."""
    return int(np.clip(min(shape) // 6, 9, 61)) | 1


def ink_is_dark(gray: np.ndarray) -> bool:
    """True when the background is lighter than the ink (pen on paper), False for chalk on a board.

    The background is the side of Otsu's threshold holding most pixels, unless that is in doubt: a scan
    with a black margin or the dark beyond the page's edge can leave the paper under half the image
    (while the ink of a chalk board is rarely a quarter of it). Between a quarter and a half, the light
    side is paper if its largest piece is solid, mostly kept by an opening far wider than a pen stroke
    (chalk strokes are not), and holds no minority far brighter than its bulk (the lighter half of an
    unevenly lit board is solid too, and holds the chalk: ``BRIGHT_MINORITY``)."""
    _, light = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    share = cv2.countNonZero(light) / light.size
    if share >= 0.5 or share < 0.25:
        return share >= 0.5
    _, labels, stats, _ = cv2.connectedComponentsWithStats(light, connectivity=8)
    largest = np.where(labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA])), 255, 0).astype(np.uint8)
    k = stroke_kernel(gray.shape)
    solid = cv2.morphologyEx(largest, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (2 * k, 2 * k)))
    if cv2.countNonZero(solid) < 0.5 * cv2.countNonZero(largest):
        return False
    return not _bright_minority(gray, light)


# Chalk on a board lit unevenly: Otsu's threshold splits the board into a darker and a lighter half,
# and the lighter half is as solid as paper, but it holds the chalk, a minority far brighter than the
# half's bulk; paper's brightest pixels are paper. The light side is chalk and board when its 99th
# percentile stands above its median by more than this many times the step between the two sides'
# medians (generated photos of 1 and 4-8 digits, boards and paper, with and without a black margin:
# 95 in 100 boards 1.65 and up, 95 in 100 papers 0.26 and below; 0: a solid light side is paper).
BRIGHT_MINORITY = 1.0


def _bright_minority(gray: np.ndarray, light: np.ndarray) -> bool:
    """Whether the light side of Otsu's threshold (``light``, 255) holds a minority far brighter than its
    bulk (``BRIGHT_MINORITY``)."""
    if not BRIGHT_MINORITY:
        return False
    lit = np.bincount(gray[light > 0], minlength=256)
    dim = np.bincount(gray[light == 0], minlength=256)
    lit_median, top, dim_median = _quantile(lit, 0.5), _quantile(lit, 0.99), _quantile(dim, 0.5)
    return top - lit_median > BRIGHT_MINORITY * max(lit_median - dim_median, 1)


def _quantile(histogram: np.ndarray, q: float) -> int:
    """The grey level below which a share ``q`` of a histogram's pixels lie (nearest rank)."""
    return int(np.searchsorted(np.cumsum(histogram), q * histogram.sum()))


def ink_lean(mask: np.ndarray) -> float:
    """How far the ink of ``mask`` leans: sideways pixels per pixel of height (positive: its top to the
    right), from its second moments."""
    m = cv2.moments((mask > 0).astype(np.uint8), binaryImage=True)
    return -m["mu11"] / m["mu02"] if m["mu02"] > 0 else 0.0


def remove_lines(
    mask: np.ndarray, min_width: int, min_height: int, known: Comb | None = None
) -> tuple[np.ndarray, Comb | None]:
    """``mask`` without horizontal runs of ``min_width`` pixels or vertical runs of ``min_height``, and
    without the teeth of a comb field standing on a horizontal one (``comb_teeth``, which ``known``
    helps); and that comb, if any.

    Lines are long, so on big images they are looked for at a quarter of the resolution (the cost of an
    opening grows with the kernel's length) and the result scaled back up.
    """
    h, w = mask.shape
    factor = 4 if min(h, w) >= 256 else 1
    small = mask if factor == 1 else cv2.resize(mask, (w // factor, h // factor), interpolation=cv2.INTER_AREA)
    small = np.where(small > 0, 255, 0).astype(np.uint8)

    def full_size(small_mask: np.ndarray) -> np.ndarray:
        return small_mask if factor == 1 else cv2.resize(small_mask, (w, h), interpolation=cv2.INTER_NEAREST)

    found = []
    for kernel in ((max(3, min_width // factor), 1), (1, max(3, min_height // factor))):
        element = cv2.getStructuringElement(cv2.MORPH_RECT, kernel)
        found.append(full_size(cv2.morphologyEx(small, cv2.MORPH_OPEN, element)))
    horizontal, vertical = found
    lines = cv2.bitwise_or(horizontal, vertical)
    comb = None
    if COMB_TEETH:
        # A comb's line may lean (a form photographed askew); it goes with its teeth. Other leaning
        # lines stay: taking every one out read fewer validation numbers (pen underlines, whose cut
        # takes digits' feet; docs/reading.md).
        comb_line = max(25, int(COMB_LINE * w))
        tilted = full_size(tilted_lines(small, max(3, comb_line // factor)))
        rules = cv2.bitwise_or(horizontal, tilted)
        teeth, comb = comb_teeth(mask, rules, 2 + factor, known) if cv2.countNonZero(rules) else (rules, None)
        if cv2.countNonZero(teeth):
            # Each tooth was found standing clear of its line (a band around the line left out): it
            # is taken out down to the line, so no stub of it stays to pass for a point.
            teeth = cv2.dilate(teeth, cv2.getStructuringElement(cv2.MORPH_RECT, (1, 7)))
            lines = cv2.bitwise_or(lines, cv2.bitwise_or(teeth, tilted))
    lines = cv2.dilate(lines, np.ones((3, 3), np.uint8))
    cleaned = cv2.bitwise_and(mask, cv2.bitwise_not(lines))
    # Strokes that crossed a line were cut by its removal: a small vertical closing rejoins them.
    return cv2.morphologyEx(cleaned, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (1, 5))), comb


# A form photographed or scanned a little askew tilts its printed lines: a line one pixel thick that
# falls a pixel every 20 has no long horizontal run for the opening to find. A comb field's line is
# found as a straight segment (Hough) within TILT_DEGREES of horizontal, across COMB_LINE of the width.
TILT_DEGREES = 5.0
TILT_MAX_INK = 0.15  # share of the image inked above which no line is looked for


def tilted_lines(mask: np.ndarray, min_length: int) -> np.ndarray:
    """The ink of ``mask`` on straight lines at least ``min_length`` long that lean at most TILT_DEGREES
    from horizontal: a mask (255 on the lines), as thick as each line's ink."""
    out = np.zeros_like(mask)
    if cv2.countNonZero(mask) > TILT_MAX_INK * mask.size:
        return out  # grain or clutter, not a page with lines: Hough's cost grows with the ink
    # A line that long is a piece that wide: Hough looks at those pieces only (most images have none).
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    wide = 1 + np.flatnonzero(stats[1:, cv2.CC_STAT_WIDTH] >= min_length)
    if not len(wide):
        return out
    mask = np.where(np.isin(labels, wide), mask, 0).astype(np.uint8)
    votes = max(10, min_length // 2)
    segments = cv2.HoughLinesP(mask, 1, np.pi / 360, threshold=votes, minLineLength=min_length, maxLineGap=2)
    for x1, y1, x2, y2 in segments.reshape(-1, 4).tolist() if segments is not None else []:
        if x1 != x2 and abs(y2 - y1) <= np.tan(np.radians(TILT_DEGREES)) * abs(x2 - x1):
            ink = _line_ink(mask, (x1, y1), (x2, y2), out)
            if ink is not None:
                out = cv2.bitwise_or(out, ink)
    return out


def _line_ink(mask: np.ndarray, a: tuple[int, int], b: tuple[int, int], covered: np.ndarray) -> np.ndarray | None:
    """The ink of ``mask`` on the straight line through segment ``a``-``b``, as far as the line's ink goes;
    None when it is not a thin line, or when ``covered`` (lines already found) holds its middle."""
    h, w = mask.shape
    (x1, y1), (x2, y2) = sorted((a, b))
    if covered[(y1 + y2) // 2, (x1 + x2) // 2]:
        return None  # Hough gives one line as several overlapping segments
    slope = (y2 - y1) / (x2 - x1)
    limit = max(4, (x2 - x1) // 12)  # thicker is a band of ink, not a line: a word in bold letters, far away
    xs = np.arange(w)
    centre = np.round(y1 + (xs - x1) * slope).astype(int)
    # Ink per column within ``limit`` + 2 rows of the line: its thickness where nothing else crosses it.
    offsets = np.arange(-limit - 2, limit + 3)
    rows = centre[None, :] + offsets[:, None]
    band = np.where((rows >= 0) & (rows < h), mask[np.clip(rows, 0, h - 1), xs[None, :]], 0) > 0
    counts = band.sum(axis=0)
    on_segment = counts[x1 : x2 + 1]
    if not on_segment.any():
        return None
    thickness = int(np.median(on_segment[on_segment > 0]))
    if thickness > limit:
        return None
    # Hough keeps the straight part it was sure of; the line goes on as far as its ink does, across gaps
    # of a few columns: ink within half its thickness and a pixel of where it would run.
    near = band[limit + 2 - (thickness // 2 + 1) : limit + 3 + thickness // 2 + 1].any(axis=0)
    left, right = _reach(near, x1, -1), _reach(near, x2, 1)
    zone = np.zeros_like(mask)
    cv2.line(zone, (left, int(centre[left])), (right, int(centre[right])), 255, thickness + 2)
    return cv2.bitwise_and(mask, zone)


def _reach(inked: np.ndarray, x: int, step: int, gap: int = 3) -> int:
    """From column ``x``, the last column in direction ``step`` (+1 or -1) that ``inked`` reaches across
    gaps of at most ``gap`` columns."""
    ahead = inked[x + 1 :] if step > 0 else inked[:x][::-1]
    # The first run of more than ``gap`` columns without ink ends the line.
    run = np.convolve(~ahead, np.ones(gap + 1, int), mode="valid") if len(ahead) > gap else np.zeros(0, int)
    stop = int(np.argmax(run == gap + 1)) if (run == gap + 1).any() else len(ahead)
    last = np.flatnonzero(ahead[:stop])
    distance = int(last[-1]) + 1 if len(last) else 0
    return x + step * distance


def _fitted_pitch(run: list, pitch: float) -> float:
    """The pitch that best fits all the teeth of ``run`` (least squares over their places), not only
    the two it was measured between: a comb's far places are found from it."""
    centres = np.array(sorted(c[0] + c[2] / 2 for c in run))
    steps = np.round((centres - centres[0]) / pitch)
    if steps[-1] == 0:
        return pitch
    return float(np.polyfit(steps, centres, 1)[0])


def _run_with_touched_teeth(rest: np.ndarray, near: np.ndarray, clear: list) -> tuple[list, float]:
    """``_regular_run`` of the teeth standing clear (``clear``) and of the upright runs in ``rest`` as
    tall as one of them and touching a line (label -1): teeth that digits touch. The run must hold
    COMB_MIN_CLEAN clear teeth."""
    best: list = []
    best_pitch = 0.0
    for height in sorted({c[3] for c in clear})[:4]:
        upright = cv2.morphologyEx(
            rest, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (1, max(3, int(0.7 * height))))
        )
        _, _, stats, _ = cv2.connectedComponentsWithStats(upright, connectivity=8)
        thin = stats[1:][2 * stats[1:, cv2.CC_STAT_WIDTH] <= stats[1:, cv2.CC_STAT_HEIGHT]]
        if len(clear) + len(thin) > COMB_MAX_CANDIDATES:
            continue  # grain or texture, not a comb: the search's cost grows as the cube of the count
        touched = []
        for x, y, w, h, _ in thin:
            overlaps = any(c[0] < x + w and x < c[0] + c[2] for c in clear)
            if not overlaps and (near[y + h - 1, x : x + w].any() or near[y, x : x + w].any()):
                touched.append((int(x), int(y), int(w), int(h), -1))
        run, pitch = _regular_run(clear + touched)
        if sum(c[4] > 0 for c in run) >= COMB_MIN_CLEAN and len(run) > len(best):
            best, best_pitch = run, pitch
    return best, best_pitch


def _regular_run(candidates: list[tuple[int, int, int, int, int]]) -> tuple[list, float]:
    """The largest set of ``candidates`` (x, y, w, h, label) alike in height and foot that stand a whole
    number of pitches apart, and that pitch: each candidate and each distance to a later one is tried
    as the comb's start and pitch. A box is at least half as wide as its tooth is tall, and at most
    eight times (short teeth rising from a baseline)."""
    best: list = []
    best_pitch = 0.0
    for anchor in candidates:
        centre, height, foot = anchor[0] + anchor[2] / 2, anchor[3], anchor[1] + anchor[3]
        alike = [c for c in candidates if _alike(c, height, foot)]
        for other in alike:
            pitch = other[0] + other[2] / 2 - centre
            if not 0.5 * height <= pitch <= 8 * height:
                continue
            on_place: dict[int, tuple[float, tuple]] = {}  # a place on the comb -> its nearest candidate
            for c in alike:
                step = (c[0] + c[2] / 2 - centre) / pitch
                off = abs(step - round(step))
                if off <= COMB_PITCH_TOLERANCE and off < on_place.get(round(step), (1.0, None))[0]:
                    on_place[round(step)] = (off, c)
            on = [c for _, c in on_place.values()]
            if len(on) > len(best) or (len(on) == len(best) and pitch > best_pitch):
                best, best_pitch = on, pitch
    return best, best_pitch


def _alike(tooth: tuple[int, int, int, int, int], height: float, foot: float) -> bool:
    """Whether ``tooth`` (x, y, w, h, label) is as tall as ``height`` and stands at ``foot``, within a
    fifth of its height and a few pixels (teeth are printed alike; a page askew moves their feet)."""
    return abs(tooth[3] - height) <= 0.2 * height + 2 and abs(tooth[1] + tooth[3] - foot) <= 0.15 * height + 2


# A comb field (a form's row of boxes, one digit in each) prints short upright teeth between its
# boxes on a horizontal line. Line removal takes the line; the teeth, no taller than the digits, would
# be read as 1s. Teeth are found as at least COMB_MIN_TEETH thin upright strokes touching a horizontal
# line, alike in height and foot, at a regular pitch (a whole number of pitches apart, within
# COMB_PITCH_TOLERANCE: a tooth a digit touches is not found as one, but its place on the comb is).
COMB_TEETH = 1
# A comb's line need only span this share of the image's width (other lines, 0.4): a comb field in a
# wider scan (beside a black margin, on a form). On the validation comb fields 0.15, 0.25 and 0.4 read
# 77.0, 78.67 and 78.33%; every other validation set and real scan alike.
COMB_LINE = 0.25
COMB_MIN_TEETH = 3
COMB_PITCH_TOLERANCE = 0.15
COMB_LEAN = 0.1  # sideways pixels per pixel of height: a page turned 5 degrees leans its teeth 0.09
# Teeth that digits touch are part of the digits' pieces, so a short comb, or one written across,
# may show fewer than COMB_MIN_TEETH teeth standing clear. Then upright runs as tall as a clear tooth
# and touching the line count as teeth too, when COMB_MIN_CLEAN clear ones are among them (0: only
# clear teeth make a comb; at 1, strokes of numbers on printed lines passed for combs). Past the
# outermost teeth found, the comb goes on while its places hold upright ink (COMB_EXTEND; 0: one
# place either side); its pitch is fitted to all its teeth found (COMB_REFIT; 0: the distance
# between two of them). A later look at the image (enlarged, or at another threshold) takes out the
# comb the first look found where it finds too few teeth itself, or a pitch off by more than
# COMB_AGREE (COMB_KNOWN).
COMB_MIN_CLEAN = 2
COMB_MAX_CANDIDATES = 48  # more upright strokes than this on lines: no comb is looked for among them
COMB_EXTEND = 1
COMB_REFIT = 1
COMB_KNOWN = 1
COMB_AGREE = 0.05


def comb_teeth(
    mask: np.ndarray, horizontal: np.ndarray, reach: int = 2, known: Comb | None = None
) -> tuple[np.ndarray, Comb | None]:
    """The pixels of ``mask`` that are teeth of a comb standing on (or hanging from) the horizontal
    lines ``horizontal`` (255 where a line is), and the comb: an empty mask and None when there is no
    comb. ``reach``: how many rows from a line a tooth's end may stop (lines found at a coarser
    resolution are blockier). ``known``: the comb a first look at the same image found (scaled to
    this one), used where this look finds too few teeth or another pitch: enlarged, more digits touch
    the teeth, and pieces of the lines left over join them to each other."""
    known = known if COMB_KNOWN else None
    teeth = np.zeros_like(mask)
    rest = cv2.bitwise_and(mask, cv2.bitwise_not(cv2.dilate(horizontal, np.ones((5, 5), np.uint8))))
    near = cv2.dilate(horizontal, cv2.getStructuringElement(cv2.MORPH_RECT, (3, 4 * reach + 1)))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(rest, connectivity=8)
    candidates = []
    heights, widths = stats[:, cv2.CC_STAT_HEIGHT], stats[:, cv2.CC_STAT_WIDTH]
    for i in 1 + np.flatnonzero((heights[1:] >= 4) & (2 * widths[1:] <= heights[1:])):  # thin and upright
        x, y, w, h, _ = stats[i]
        # Printed upright: a tooth stands square to its line, which leans as little as the page does;
        # handwritten 1s lean as their writer's hand does.
        if abs(ink_lean(labels[y : y + h, x : x + w] == i)) > COMB_LEAN:
            continue
        # It touches a line at its foot or its head.
        if near[y + h - 1, x : x + w].any() or near[y, x : x + w].any():
            candidates.append((int(x), int(y), int(w), int(h), i))
    alike, pitch = _regular_run(candidates)
    if COMB_MIN_CLEAN and len(alike) < COMB_MIN_TEETH and COMB_MIN_CLEAN <= len(candidates) <= COMB_MAX_CANDIDATES:
        alike, pitch = _run_with_touched_teeth(rest, near, candidates)
    if COMB_REFIT and len(alike) >= 2:
        pitch = _fitted_pitch(alike, pitch)
    agrees = known is None or abs(pitch - known.pitch) <= COMB_AGREE * known.pitch
    own = len(alike) >= COMB_MIN_TEETH and agrees
    if own:
        height = float(np.median([c[3] for c in alike]))
        top, bottom = int(min(c[1] for c in alike)), int(max(c[1] + c[3] for c in alike))
        for x, y, w, h, i in alike:
            if i > 0:  # a tooth standing clear; one a digit touches is taken at its place, below
                teeth[y : y + h, x : x + w][labels[y : y + h, x : x + w] == i] = 255
        found = sorted(c[0] + c[2] / 2 for c in alike if c[4] > 0)
        first, last = min(c[0] + c[2] / 2 for c in alike), max(c[0] + c[2] / 2 for c in alike)
    elif known is not None:
        pitch, height, top, bottom = known.pitch, known.height, int(known.top), int(np.ceil(known.bottom))
        found, first, last = [], known.first, known.first + (known.places - 1) * known.pitch
    else:
        return teeth, None
    # A tooth a digit touches is part of the digit's piece: at each place on the comb without a found
    # tooth, only the ink in long upright runs is taken.
    upright = cv2.morphologyEx(
        mask[top:bottom], cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (1, max(3, int(0.7 * height))))
    )
    band = max(2, int(0.06 * pitch)) + (0 if own else 2)  # a known comb's places are a coarser look's

    def take(centre: float) -> bool:
        """Take the upright ink at the comb place ``centre``; whether there was any."""
        a, b = max(0, int(centre) - band), max(0, int(centre) + band + 1)
        ink = upright[:, a:b]
        teeth[top:bottom, a:b] = np.maximum(teeth[top:bottom, a:b], ink)
        return bool(ink.any())

    span = int(round((last - first) / pitch))
    for k in range(span + 1):
        if not found or min(abs(first + k * pitch - c) for c in found) >= 0.5 * pitch:
            take(first + k * pitch)
    # Beyond the found teeth the comb goes on while its places hold upright ink: the first box's
    # edge and the next may both be touched by digits (a 5 written across both).
    ends = [0, 0]
    for side, (start, step) in enumerate(((first, -pitch), (last, pitch))):
        for k in range(1, 1 + max(1, COMB_EXTEND * (span + 1))):
            centre = start + k * step
            if not (0 <= centre < mask.shape[1] and take(centre)) or not COMB_EXTEND:
                break
            ends[side] = k
    comb = Comb(first - ends[0] * pitch, pitch, span + 1 + sum(ends), top, bottom, height)
    return teeth, comb


SHEARS = np.linspace(-0.6, 0.6, 13)


def _shear(image: np.ndarray, s: float, y0: float, interpolation: int) -> np.ndarray:
    h, w = image.shape
    pad = int(abs(s) * h) + 1  # room for the leaning strokes on either side
    m = np.float32([[1, s, pad - s * y0], [0, 1, 0]])
    return cv2.warpAffine(image, m, (w + 2 * pad, h), flags=interpolation, borderValue=0), pad


def estimate_slant(mask: np.ndarray) -> float:
    """The shear that makes the mask's strokes most vertical (largest sum of squared column sums).

    Each shear moves every row sideways by a whole number of pixels, so the column sums of the sheared
    mask are a weighted histogram of the ink pixels' shifted columns: one ``bincount`` per shear
    instead of warping the image 13 times.
    """
    small = mask
    if max(mask.shape) > 400:
        f = 400 / max(mask.shape)
        small = cv2.resize(mask, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
    ys, xs = np.nonzero(small)
    if ys.size == 0:
        return 0.0
    weights = small[ys, xs].astype(np.float64)
    rows = np.arange(small.shape[0]) - small.shape[0] / 2
    scores = []
    for s in SHEARS:
        shift = np.floor(s * rows + 0.5).astype(np.int64)
        columns = np.bincount(xs + shift[ys] - shift.min(), weights=weights)
        scores.append(float(np.dot(columns, columns)))
    return float(SHEARS[int(np.argmax(scores))])


# Photos are taken askew: a number's line may climb or fall across the picture. Turned level first,
# its digits stand upright in one line again. The tilt is the angle, in whole degrees under TILT_LIMIT
# either way, whose projection of the ink across the lines is peakiest; it is believed from TILT_MIN
# degrees, when that projection beats the level one by TILT_GAIN and the ink lies along a line
# (TILT_LINE): a lone digit has no line to measure, and its strokes can make a peak at any angle.
# Chosen on validation photos turned up to 20 degrees (bench/validation.py's "tilted") against the
# other validation sets: (4, 1.2, 2) turned 18 of 400 strips and 20 of 600 single digits that were not
# askew, and read 5 and 4 fewer right; (5, 1.3, 3) turns 4 and 1 of them and reads them as before
# (once its peak at the search's edge is refused: TILT_LIMIT), and as many tilted photos as
# (4, 1.3, 3). TILT_MIN 0: never turned.
TILT_LIMIT = 30
TILT_MIN = 5.0
TILT_GAIN = 1.3
TILT_LINE = 3.0  # times as far along the line as across it (three digits or more)


def estimate_tilt(mask: np.ndarray) -> float:
    """How many degrees the lines of ink in ``mask`` fall to the right (negative: climb); 0 under
    TILT_MIN, at the search's edge (TILT_LIMIT), or where no line is clear (TILT_GAIN, TILT_LINE). The
    ink's points are projected, not the image turned."""
    x0, y0, w, h = cv2.boundingRect(mask)  # the ink's box: a photo is mostly paper
    if not TILT_MIN or w == 0:
        return 0.0
    small = mask[y0 : y0 + h, x0 : x0 + w]
    if max(w, h) > 200:  # a degree still moves a line's ends by 3 pixels or more
        f = 200 / max(w, h)  # a box one pixel thin stays one pixel thin
        small = cv2.resize(small, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    ys, xs = np.nonzero(small)
    # From the ink's centre of mass no point is further than the diagonal: each angle's band holds that
    # much either side.
    reach = int(np.hypot(*small.shape)) + 2
    points = (xs - xs.mean(), ys - ys.mean(), small[ys, xs].astype(np.float32), reach)
    # Every third degree, then the two either side of the best: the peak is several degrees wide.
    coarse = np.arange(-TILT_LIMIT, TILT_LIMIT + 1, 3)
    near = coarse[int(np.argmax(_projection_scores(points, coarse)))] + np.array([-2, -1, 0, 1, 2])
    near = near[np.abs(near) <= TILT_LIMIT]
    scores = _projection_scores(points, np.append(near, 0))
    best = int(np.argmax(scores[:-1]))
    # A peak at the edge of the search is no line's: its ink would be peakier still beyond it.
    if not TILT_MIN <= abs(near[best]) < TILT_LIMIT or scores[best] < TILT_GAIN * scores[-1]:
        return 0.0
    # A line is far longer than it is tall; a lone digit's strokes can make any angle's peak.
    a = np.radians(near[best])
    x, y, weights, _ = points
    along, across = x * np.cos(a) + y * np.sin(a), y * np.cos(a) - x * np.sin(a)
    spread_along = np.sqrt(np.average(along**2, weights=weights))
    spread_across = np.sqrt(np.average(across**2, weights=weights))
    return float(near[best]) if spread_along >= TILT_LINE * spread_across else 0.0


def _projection_scores(points: tuple, angles: np.ndarray) -> np.ndarray:
    """For each angle (degrees), the sum of squares of the ink's profile across lines at that angle.
    Every angle's rows are put in a band of their own, so one ``bincount`` counts them all."""
    x, y, weights, reach = points
    band = 2 * reach + 1
    radians = np.radians(angles.astype(np.float32))
    rows = np.floor(np.outer(y, np.cos(radians)) - np.outer(x, np.sin(radians)) + 0.5).astype(np.int64)
    rows += (np.arange(len(angles)) * band + reach)[None, :]
    counts = np.bincount(rows.ravel(), weights=np.repeat(weights, len(angles)), minlength=band * len(angles))
    return (counts.reshape(len(angles), band) ** 2).sum(axis=1)


def turn_level(gray: np.ndarray, tilt: float) -> tuple[np.ndarray, np.ndarray]:
    """``gray`` turned by ``tilt`` degrees so its lines lie level, on a canvas that holds it all (corners
    filled with the border's median grey), and the 2x3 map from the turned image's pixels back. An
    image far larger than the working size is shrunk first (no look reads it larger than MAX_SIDE):
    turning a 50-megapixel photo whole would cost a second and twice its memory."""
    original_h, original_w = gray.shape
    if max(original_h, original_w) > 2 * MAX_SIDE:
        f = 2 * MAX_SIDE / max(original_h, original_w)
        size = (max(1, round(original_w * f)), max(1, round(original_h * f)))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    h, w = gray.shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), tilt, 1.0)  # counter-clockwise as seen: a falling line rises
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    width, height = int(np.ceil(h * sin + w * cos)), int(np.ceil(h * cos + w * sin))
    m[0, 2] += width / 2 - w / 2
    m[1, 2] += height / 2 - h / 2
    border = int(np.median(np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])))
    turned = cv2.warpAffine(gray, m, (width, height), flags=cv2.INTER_LINEAR, borderValue=border)
    back = cv2.invertAffineTransform(m)  # to the (shrunk) image's pixels, then to the original's
    return turned, back * np.array([[original_w / w], [original_h / h]])


def _background(ink: np.ndarray, k: int) -> np.ndarray:
    """The morphological opening of ``ink`` with a ``k``-wide disc: the background without strokes.

    The background is smooth, so for wide kernels it is estimated at a quarter of the resolution and
    scaled back up: the same result for the strokes at a fraction of the cost on big photos.
    """
    factor = 4 if k >= 21 else 1
    if factor == 1:
        return cv2.morphologyEx(ink, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    h, w = ink.shape
    small = cv2.resize(ink, (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_AREA)
    ks = max(3, k // factor) | 1
    background = cv2.morphologyEx(small, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (ks, ks)))
    return cv2.resize(background, (w, h), interpolation=cv2.INTER_LINEAR)


def _solid(background: np.ndarray, k: int) -> np.ndarray | None:
    """Where the background is nearly as dark as ink can be (on the ink-bright scale): a scanner's black
    margin, the dark beyond a page's edge. Its edges and grain would otherwise pass for strokes; it
    gets a border of a quarter kernel, as the opening rounds its corners. None where there is none.
    The paper's level is the median of the background's paper side (below Otsu's threshold of the
    background), not of the whole: a margin can be wider than the page."""
    threshold, _ = cv2.threshold(background, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    paper_side = background[background <= threshold]
    paper = float(np.median(paper_side)) if paper_side.size else float(np.median(background))
    solid = background > paper + SOLID * (255 - paper)
    if not solid.any():
        return None
    return cv2.dilate(solid.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_RECT, (k // 2 | 1, k // 2 | 1))) > 0


def prepare(
    gray: np.ndarray,
    zoom: float = 1.0,
    writing: float = 0.0,
    threshold_scale: float = 1.0,
    comb: Comb | None = None,
    tilt: bool = True,
) -> Prepared:
    """Polarity, lighting, binarisation and line removal for a whole image; ``zoom`` > 1 works at a
    larger size than usual (small writing, see ``layout.find_lines``), where the digits will be about
    ``writing`` pixels tall. ``threshold_scale`` times Otsu's threshold binarises (never below the
    contrast floor; 0: at the floor): below 1 for faint writing that bolder ink elsewhere put under it,
    above 1 for strokes pale paper glued together (``DigitReader.read_many``). ``comb``: a comb field
    an earlier look at the image found (``Prepared.comb``). ``tilt`` False: the writing's tilt is not
    measured (an image already turned level, ``layout.find_lines``)."""
    work, scale = _working_size(gray, zoom)
    inverted = ink_is_dark(work)
    ink = 255 - work if inverted else work.copy()
    h, w = ink.shape
    k = stroke_kernel(ink.shape)  # the top-hat's kernel
    # Where strokes meet, a thick pen makes a blob wider than the stroke (the crossing of a bold 4): a
    # kernel narrower than that hollows it out and cuts the digit; 0.42 of the digit height is wider.
    k = max(k, int(0.42 * writing) | 1)
    background = _background(ink, k)
    flat = cv2.GaussianBlur(cv2.subtract(ink, background), (3, 3), 0)
    solid = _solid(background, k)
    if solid is not None:
        flat[solid] = 0
    if int(flat.max()) < MIN_CONTRAST:
        return Prepared(flat, np.zeros_like(flat), scale, inverted, gray.shape)
    threshold, _ = cv2.threshold(flat, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    threshold = max(threshold * threshold_scale, MIN_CONTRAST * 0.6)
    _, mask = cv2.threshold(flat, threshold, 255, cv2.THRESH_BINARY)  # 255 where flat > threshold
    # A line is far longer than a digit: across 40% of the width, or 85% of the height (a 1 can be
    # almost as tall as a tight crop, so vertical lines must be longer still).
    known = comb.scaled(scale) if comb is not None else None
    mask, comb = remove_lines(mask, max(25, int(0.4 * w)), max(25, int(0.85 * h)), known)
    comb = comb.scaled(1 / scale) if comb is not None else None
    # Measured before the slant is taken out (a shear bends a tilted line's angle); a comb field found
    # is level enough to have been found (within TILT_DEGREES), and its boxes' digits make no line.
    tilted = estimate_tilt(mask) if tilt and comb is None else 0.0
    s = estimate_slant(mask)
    if s == 0.0:
        return Prepared(flat, mask, scale, inverted, gray.shape, comb=comb, tilt=tilted)
    y0 = h / 2
    mask, pad = _shear(mask, s, y0, cv2.INTER_NEAREST)
    flat, _ = _shear(flat, s, y0, cv2.INTER_LINEAR)
    return Prepared(
        flat, mask, scale, inverted, gray.shape, shear=s, shear_y0=y0, shear_pad=pad, comb=comb, tilt=tilted
    )
