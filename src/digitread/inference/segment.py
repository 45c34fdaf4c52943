"""Find the characters in an ink mask: components, merged strokes, lines, marks, and split candidates.

Works on the binary mask from ``preprocess`` and returns boxes plus pixel masks; deciding what each
piece is (and where to cut touching digits) is left to the reader, which has the classifier.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from digitread.inference.preprocess import ink_lean

DOTS = ("dot", "comma")  # the marks that may be a decimal point or a thousands separator
# A thin piece (THIN_RULE times taller than wide) RULE_HEIGHT times taller than the writing is a rule.
THIN_RULE = 6
RULE_HEIGHT = 1.8
# ...and stood upright as scanned: leaning at most RULE_LEAN (sideways pixels per pixel of height).
RULE_LEAN = 0.2


@dataclass
class Piece:
    """A candidate character: its box (x, y, w, h) in working coordinates and its own ink mask (h, w)."""

    x: int
    y: int
    w: int
    h: int
    mask: np.ndarray
    # "digit", or a mark: "dot", "comma" (a pen's, reaching below the line), "dash", "fence" (after a
    # number), "point" (read by a model)
    kind: str = "digit"

    @property
    def x2(self) -> int:
        return self.x + self.w

    @property
    def y2(self) -> int:
        return self.y + self.h

    @property
    def cy(self) -> float:
        return self.y + self.h / 2


@dataclass
class Line:
    pieces: list[Piece] = field(default_factory=list)
    height: float = 0.0  # typical digit height on this line

    @property
    def baseline(self) -> float:
        """Where the writing stands: the median foot of the line's digits (of all its pieces if none is one)."""
        digits = [p for p in self.pieces if p.kind == "digit"] or self.pieces
        return float(np.median([p.y2 for p in digits]))


def _components(mask: np.ndarray) -> list[Piece]:
    # Labelled within the ink's bounding box only: OpenCV's statistics cost grows with the whole image,
    # and a photo is mostly paper (a fifth of the time on a 1280x960 photo with one number).
    x0, y0, width, height = cv2.boundingRect(mask)
    if width == 0:
        return []
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask[y0 : y0 + height, x0 : x0 + width], connectivity=8)
    pieces = []
    for i in range(1, count):
        x, y, w, h, _area = stats[i]
        ink = (labels[y : y + h, x : x + w] == i).astype(np.uint8) * 255
        pieces.append(Piece(int(x) + x0, int(y) + y0, int(w), int(h), ink))
    return pieces


def _union(a: Piece, b: Piece) -> Piece:
    x, y = min(a.x, b.x), min(a.y, b.y)
    x2, y2 = max(a.x2, b.x2), max(a.y2, b.y2)
    mask = np.zeros((y2 - y, x2 - x), np.uint8)
    for p in (a, b):
        region = mask[p.y - y : p.y2 - y, p.x - x : p.x2 - x]
        np.maximum(region, p.mask, out=region)
    return Piece(x, y, x2 - x, y2 - y, mask, a.kind)


def _x_overlap(a: Piece, b: Piece) -> float:
    """Horizontal overlap as a share of the narrower piece."""
    overlap = min(a.x2, b.x2) - max(a.x, b.x)
    return max(0, overlap) / max(1, min(a.w, b.w))


def _y_overlap(a: Piece, b: Piece) -> float:
    """Vertical overlap as a share of the shorter piece."""
    overlap = min(a.y2, b.y2) - max(a.y, b.y)
    return max(0, overlap) / max(1, min(a.h, b.h))


def _belong_together(a: Piece, b: Piece, height: float) -> bool:
    """Stacked (a 5's detached bar over its body, a broken stroke) or a small fragment inside another's
    columns; two digits side by side overlap vertically almost fully and are left apart."""
    if _x_overlap(a, b) <= 0.5 or max(a.y2, b.y2) - min(a.y, b.y) > 1.3 * height:
        return False
    small, large = (a, b) if a.w * a.h < b.w * b.h else (b, a)
    if _looks_like_a_point(small, large, height):
        return False
    return _y_overlap(a, b) < 0.3 or small.mask.sum() < 0.15 * large.mask.sum()


def _looks_like_a_point(small: Piece, large: Piece, height: float) -> bool:
    """A decimal point or comma tucked under a slanted digit: small, compact, solid, and in the bottom part
    of the digit's rows or below them (a detached bar sits higher; a broken-off arc is not solid)."""
    compact = max(small.w, small.h) <= 0.3 * height and small.h <= 2.5 * small.w
    return compact and small.y >= large.y + 0.6 * large.h and _solidity(small.mask) >= 0.75


def _solidity(mask: np.ndarray) -> float:
    """Ink over the area of its convex hull: about 1 for a dab or a comma, far less for an arc."""
    points = cv2.findNonZero(mask)
    hull = cv2.contourArea(cv2.convexHull(points)) if points is not None and len(points) >= 3 else 0.0
    return float(np.count_nonzero(mask)) / max(hull, float(np.count_nonzero(mask)), 1.0)


def _merge_strokes(pieces: list[Piece], height: float) -> list[Piece]:
    """Join pieces that belong to one character (see ``_belong_together``).

    The pieces are scanned left to right and the first pair that belongs together is joined, as often
    as one is left. A join keeps the left piece's place in the order, so the scan goes on from there
    rather than from the start: only a piece before it can have gained a partner, the new union, and
    only one near enough to reach it. A page of grain or texture (thousands of specks) is joined in
    well under a second this way; starting over after every join took seconds (10.8 s for one
    1024x768 image of grain)."""
    pieces.sort(key=lambda p: p.x)
    widest = max((p.w for p in pieces), default=0)
    i = 0
    while i < len(pieces):
        a = pieces[i]
        j = next((j for j in _reach(pieces, i) if _belong_together(a, pieces[j], height)), None)
        if j is None:
            i += 1
            continue
        pieces[i] = _union(a, pieces.pop(j))
        widest = max(widest, pieces[i].w)
        while (k := _earlier_partner(pieces, i, widest, height)) is not None:
            pieces[k] = _union(pieces[k], pieces.pop(i))
            widest, i = max(widest, pieces[k].w), k
    return pieces


def _reach(pieces: list[Piece], i: int):
    """Indices of the pieces after ``pieces[i]`` (sorted by left edge) that start within its columns."""
    x2 = pieces[i].x2
    for j in range(i + 1, len(pieces)):
        if pieces[j].x > x2:
            return
        yield j


def _earlier_partner(pieces: list[Piece], i: int, widest: int, height: float) -> int | None:
    """The first piece before ``pieces[i]`` that reaches its left edge and belongs with it, or None. A
    piece starting more than ``widest`` columns before it cannot reach it."""
    union = pieces[i]
    k = i
    while k > 0 and pieces[k - 1].x >= union.x - widest:
        k -= 1
    reaching = (k for k in range(k, i) if pieces[k].x2 >= union.x)
    return next((k for k in reaching if _belong_together(pieces[k], union, height)), None)


def _group_lines(pieces: list[Piece], height: float) -> list[list[Piece]]:
    """Pieces whose vertical centres lie within about half a digit height share a line."""
    lines: list[list[Piece]] = []
    centres: list[float] = []  # each line's, changed only when it gains a piece
    for p in sorted(pieces, key=lambda p: p.cy):
        k = next((k for k, centre in enumerate(centres) if abs(p.cy - centre) < 0.6 * height), None)
        if k is None:
            lines.append([p])
            centres.append(p.cy)
            continue
        line = lines[k]
        line.append(p)
        centres[k] = float(np.median([q.cy for q in line if q.h > 0.5 * height] or [q.cy for q in line]))
    return [sorted(line, key=lambda p: p.x) for line in lines]


def _drop_rules(pieces: list[Piece], shear: float = 0.0) -> list[Piece]:
    """Without thin upright strokes far taller than the writing: pieces of ruled lines, page edges and
    scanner margins that line removal left behind (broken, or shorter than the image).

    The writing is judged on the pieces that could be digits: not thin, not dash-shaped, and strokes
    rather than dabs (several pen widths tall). Points, dashes and specks do not count, so a 1 beside a
    decimal point or a speck stays; with nothing to judge by (a crop of 1s), thin pieces stay. A thin
    stroke that leaned as scanned, before the writing's slant (``shear``) was taken out, stays too: rules
    and page edges stand upright on the page, a 1 written as a long '/' stands upright only once the
    slant is out. (Judging thinness as scanned instead drops upright 1s in slanted writing.) Thinness
    is judged upright, so the lean matters for small shears: past about 0.2 an upright rule is no
    longer thin once the slant is out.
    """
    if not any(p.w * THIN_RULE < p.h for p in pieces):
        return pieces
    writing = [q.h for q in pieces if q.w * THIN_RULE >= q.h and q.w <= 1.5 * q.h and q.h >= 1.5 * _pen_width(q)]
    if not writing:
        return pieces
    tallest = max(writing)
    height = float(np.median([h for h in writing if h >= 0.3 * tallest]))

    def is_rule(p: Piece) -> bool:
        return p.w * THIN_RULE < p.h and p.h > RULE_HEIGHT * height and abs(ink_lean(p.mask) + shear) <= RULE_LEAN

    return [p for p in pieces if not is_rule(p)]


# Pieces narrower than UNDERLINED_ASPECT of their height are not looked at for an underline. Low: a
# short number written narrow, over its underline and a cross hanging under it, makes a piece taller
# than wide. Under WIDE_UNDERLINED the ink under the line must then be a cross (an open 4 is as narrow,
# its bar an underline and its two arms two digits above it; its stem goes on down, one stroke wide).
UNDERLINED_ASPECT = 0.3
WIDE_UNDERLINED = 0.8


def without_underline(line: Line) -> Line | None:
    """``line`` with a pen underline taken out of its pieces, and the ink under the underline left out;
    None when no piece holds one.

    A row number underlined by hand (often with a cross under the line) is one piece: the line joins
    the digits and the cross, so the piece is twice the digits' height and its strip shrinks them. An
    underline is the widest run of long horizontal strokes (an opening a quarter of the piece wide,
    so a slightly tilted line counts) in a piece's lower part, across most of its width and thin. A
    digit's own strokes can look the same (a 4's bar, the foot of a wide 2), so this is only a second
    view of the line, which the reader takes when the sequence model reads it more surely than an
    unsure reading of the line as it is (``DigitReader._read_whole``).
    """
    pieces, found = [], False
    for piece in line.pieces:
        cut = _cut_underline(piece)
        found |= cut is not None
        # Copies of the pieces left whole: they are judged again below, and ``line`` must keep its own
        # (the digit-by-digit reading of the same line may still come).
        pieces.extend(cut or [replace(piece)])
    if not found:
        return None
    tallest = max(p.h for p in pieces)
    height = float(np.median([p.h for p in pieces if p.h >= 0.5 * tallest]))
    pieces.sort(key=lambda p: p.x)
    _judge_kinds(pieces, height)  # what the cut left may be marks (a point after the number)
    return Line(pieces, height)


# A full stop or comma after a number: a mark past the last digit, open (no loop), and either small
# (STOP_SIZE line heights or less each way) or reaching STOP_DROP line heights below the line. A last
# digit written small stands on the line and is larger, or has a loop (a small 0).
STOP_SIZE = 0.3
STOP_DROP = 0.1


def without_trailing_stops(line: Line) -> Line | None:
    """``line`` without the full stops and commas after its number; None when it ends in none.

    Read with the number, a stop changes how the sequence models read the digit before it (a cheque's
    "741." read 746, "6.740," read 6749: the strip's last columns hold the digit and the stop together),
    and they read a stop as a 1. Left out of the strip, they are not; but a small last digit can pass
    for a stop, so this is only another view of the line (``DigitReader._read_whole``)."""
    digits = [p for p in line.pieces if p.kind == "digit"]
    if not digits:
        return None
    end, baseline = max(p.x2 for p in digits), line.baseline

    def is_stop(p: Piece) -> bool:
        if p.kind not in DOTS or p.x < end or _has_loop(p.mask):
            return False
        return max(p.w, p.h) <= STOP_SIZE * line.height or p.y2 >= baseline + STOP_DROP * line.height

    kept = [p for p in line.pieces if not is_stop(p)]
    return Line(kept, line.height) if len(kept) < len(line.pieces) else None


def _cut_underline(piece: Piece) -> list[Piece] | None:
    """The parts of ``piece`` above its underline (see ``without_underline``), or None."""
    if piece.kind != "digit" or piece.w < 16 or piece.h < 12 or piece.w < UNDERLINED_ASPECT * piece.h:
        return None
    run = max(6, piece.w // 4)
    long_runs = cv2.morphologyEx(piece.mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (run, 1)))
    long_runs[: int(0.4 * piece.h)] = 0
    count, labels, stats, _ = cv2.connectedComponentsWithStats(long_runs, connectivity=8)
    if count < 2:
        return None
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_WIDTH]))
    x, y, w, h, area = stats[k]
    if w < 0.7 * piece.w or area / w > 0.12 * piece.h:
        return None
    if piece.w < WIDE_UNDERLINED * piece.h:
        # Narrow, so taller than an underlined number alone: what hangs under the line must be a cross
        # as wide as a good part of it, not one stroke going on down (the stem of an open 4 under its bar).
        below = np.nonzero(piece.mask[y + h + 1 :].any(axis=0))[0]
        if len(below) == 0 or below[-1] - below[0] + 1 < 0.3 * w:
            return None
    underline = cv2.dilate((labels == k).astype(np.uint8) * 255, np.ones((3, 3), np.uint8))
    rest = cv2.bitwise_and(piece.mask, cv2.bitwise_not(underline))
    middle = y + h / 2
    parts = [
        q
        for q in _components(rest)
        if q.y + q.h / 2 < middle and cv2.countNonZero(q.mask) >= 0.03 * cv2.countNonZero(piece.mask)
    ]
    if not parts:
        return None
    # A number's underline leaves two or more digits above it, side by side; the base of a 2 or the
    # foot of a 1 leaves one (a lone digit's underline is left alone: it looks just like them).
    if sum(q.h >= 0.5 * max(r.h for r in parts) for q in parts) < 2:
        return None
    for q in parts:
        q.x, q.y = q.x + piece.x, q.y + piece.y
    return parts


def _pen_width(piece: Piece) -> float:
    """The widest stroke in a piece: twice the largest distance from ink to background."""
    padded = np.pad((piece.mask > 0).astype(np.uint8), 1)
    return 2.0 * float(cv2.distanceTransform(padded, cv2.DIST_L2, 3).max())


def segment(mask: np.ndarray, shear: float = 0.0) -> list[Line]:
    """Lines of candidate characters, top to bottom, each left to right; ``shear`` is the slant that
    ``preprocess.prepare`` took out of the mask (rules are told from writing by how they stood before)."""
    pieces = _drop_rules(_components(mask), shear)
    if not pieces:
        return []
    tallest = max(p.h for p in pieces)
    # Specks: tiny next to the tallest piece. What is left of the small pieces may be marks.
    pieces = [p for p in pieces if p.h >= 0.08 * tallest or p.w >= 0.2 * tallest]
    big = [p.h for p in pieces if p.h >= 0.4 * tallest]
    height = float(np.median(big)) if big else float(tallest)
    pieces = _merge_strokes(pieces, height)
    lines = []
    for group in _group_lines(pieces, height):
        tall = [p.h for p in group if p.h >= 0.5 * height]
        if not tall:
            continue  # a line of specks and marks only
        line_height = float(np.median(tall))
        _judge_kinds(group, line_height)
        lines.append(Line(group, line_height))
    return lines


def _judge_kinds(pieces: list[Piece], line_height: float) -> None:
    """What each of a line's pieces is: a digit, or a mark by its size and shape (``_kind``); then the
    marks only a line shows: a fence after the number, a pen's comma."""
    for p in pieces:
        p.kind = _kind(p, line_height)
    _raised_tail(pieces, line_height)
    _pen_commas(pieces, line_height)


# A piece after a number, under RAISED_TAIL_HEIGHT of the line's height, whose foot is RAISED_TAIL_LIFT
# line heights above the line and the foot of the digit before it, is a fence, not a digit. Checked on
# the validation sets of bench/validation.py: no reading right before is lost. They read the same at a
# lift of 0.15; the larger lift calls fewer pieces fences.
RAISED_TAIL_HEIGHT = 0.65
RAISED_TAIL_LIFT = 0.25


def _raised_tail(pieces: list[Piece], line_height: float) -> None:
    """Mark as fences the small pieces at the end of a line that float above it: the '=', '-' or '~'
    that fences a cheque amount is written at mid-height or higher (a plain '-' is short enough to be
    a dash already; a wavy or joined one is not), and read as a digit it adds one (a 5 or a 7). A last
    digit written small (a cheque's zeros) still stands on the line."""
    digits = [p for p in pieces if p.kind == "digit"]
    if len(digits) < 2:
        return
    baseline = float(np.median([p.y2 for p in digits]))
    while len(digits) >= 2:
        last, before = digits[-1], digits[-2]
        # Above the line and above the digit before it: a 9's tail below the line does not lift the line,
        # and raised cents ("12 with 55 written high") stand at the height of the digit before them.
        foot = min(baseline, before.y2)
        if last.h >= RAISED_TAIL_HEIGHT * line_height or last.y2 > foot - RAISED_TAIL_LIFT * line_height:
            return
        # Ink under it is the rest of a digit that broke apart (a 7's bar over the specks of its stem);
        # a loop is a small raised 0 (cents written high); the marks are open strokes.
        if _has_loop(last.mask) or any(p is not last and p.y >= last.cy and _x_overlap(p, last) > 0 for p in pieces):
            return
        last.kind = "fence"
        digits.pop()


# A digit-sized piece whose top is COMMA_TOP line heights or more below the digits' tops and whose foot
# is COMMA_DROP line heights or more below their feet, and which is narrow and open, is a comma written
# with a pen, not a digit (COMMA_DROP = 0: no piece is). Pieces under digit size are dots already;
# judging them so too changed nothing on the validation sets.
COMMA_TOP = 0.45
COMMA_DROP = 0.15


def _pen_commas(pieces: list[Piece], line_height: float) -> None:
    """Mark as commas the commas a pen draws between or after digits: a stroke from about the middle of
    the digits down below the line, tall enough to pass for a digit, which both readers took for a 1 (a
    thousands comma made "467,770" 4677170). A digit stands on the line (a 9's or 4's tail goes below
    it, but from the top); a small last digit too."""
    if not COMMA_DROP:
        return
    digits = [p for p in pieces if p.kind == "digit"]
    if len(digits) < 3:
        return
    top, foot = float(np.median([p.y for p in digits])), float(np.median([p.y2 for p in digits]))
    for p in digits:
        low = p.y >= top + COMMA_TOP * line_height and p.y2 >= foot + COMMA_DROP * line_height
        if low and p.w <= 0.5 * p.h and not _has_loop(p.mask):
            p.kind = "comma"


def _has_loop(mask: np.ndarray) -> bool:
    """Whether the ink encloses some background (a 0, the bowl of a 6): a hole of a few pixels or more."""
    contours, hierarchy = cv2.findContours((mask > 0).astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return False
    return any(h[3] >= 0 and cv2.contourArea(c) >= 4 for c, h in zip(contours, hierarchy[0], strict=True))


def _kind(p: Piece, line_height: float) -> str:
    if p.h >= 0.45 * line_height:
        return "digit"
    if p.w >= 1.5 * p.h and p.w >= 0.25 * line_height:
        return "dash"
    return "dot"


def split_candidates(piece: Piece, parts: int) -> list[list[Piece]]:
    """Ways to cut a wide piece into ``parts`` pieces at columns where little ink crosses.

    Around each evenly spaced cut position, the column with the least ink nearby is tried, so a
    handful of candidates per part count are returned for the classifier to score.
    """
    profile = (piece.mask > 0).sum(axis=0).astype(np.float32)
    smooth = np.convolve(profile, np.ones(3) / 3, mode="same")
    window = max(2, piece.w // (parts * 3))
    candidates = []
    seen: set[tuple[int, ...]] = set()
    for jitter in (0.0, -0.15, 0.15):
        cuts = []
        for k in range(1, parts):
            centre = int(piece.w * (k / parts + jitter / parts))
            lo, hi = max(1, centre - window), min(piece.w - 1, centre + window)
            if hi <= lo:
                break
            cuts.append(lo + int(np.argmin(smooth[lo:hi])))
        key = tuple(sorted(cuts))
        if len(cuts) != parts - 1 or len(set(cuts)) != len(cuts) or key in seen:
            continue
        seen.add(key)
        edges = [0, *key, piece.w]
        parts_list = []
        for a, b in zip(edges, edges[1:], strict=False):
            sub = piece.mask[:, a:b]
            rows = np.nonzero(sub.any(axis=1))[0]
            if b - a < 2 or len(rows) == 0:
                break
            top, bottom = int(rows[0]), int(rows[-1]) + 1
            parts_list.append(Piece(piece.x + a, piece.y + top, b - a, bottom - top, sub[top:bottom].copy()))
        if len(parts_list) == parts:
            candidates.append(parts_list)
    return candidates
