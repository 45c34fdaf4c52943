"""Printed lines taken out before segmentation: ruled lines a little askew, and the teeth of comb fields."""

import cv2
import numpy as np
import pytest

from digitread.inference import preprocess
from digitread.inference.preprocess import prepare


def _components(mask: np.ndarray) -> list[tuple[int, int, int, int]]:
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    return [tuple(int(v) for v in stats[i, :4]) for i in range(1, count)]


def _page(width: int = 600, height: int = 200) -> np.ndarray:
    return np.full((height, width), 235, np.uint8)


def _comb(page: np.ndarray, x0: int, pitch: int, boxes: int, top: int, bottom: int, width: int = 2) -> list[int]:
    """A comb's baseline and teeth drawn on ``page``; the teeth's x positions."""
    cv2.line(page, (x0, bottom), (x0 + boxes * pitch, bottom), 60, width)
    xs = [x0 + i * pitch for i in range(boxes + 1)]
    for x in xs:
        cv2.line(page, (x, top), (x, bottom), 60, width)
    return xs


@pytest.mark.parametrize("comb", [1, 0])
def test_the_teeth_of_a_comb_field_are_taken_out_and_its_digits_stay(monkeypatch, comb):
    monkeypatch.setattr(preprocess, "COMB_TEETH", comb)
    page = _page()
    teeth = _comb(page, x0=100, pitch=60, boxes=6, top=60, bottom=130)
    for i in (0, 1, 3, 5):
        cv2.circle(page, (130 + 60 * i, 95), 16, 30, 3)  # 0s in four boxes
    cv2.line(page, (270, 75), (270, 118), 30, 3)  # an upright 1 in the middle of a box stays
    cv2.circle(page, (395, 95), 18, 30, 3)  # a 0 written over the tooth at x=400
    mask = prepare(page).mask
    pieces = _components(mask)
    on_teeth = [p for p in pieces if any(p[0] <= x <= p[0] + p[2] for x in teeth) and p[2] < 10]
    ones = [p for p in pieces if p[0] <= 270 <= p[0] + p[2] and p[3] > 35]
    if comb:
        assert not on_teeth and len(ones) == 1
        # The 0 over a tooth keeps its ring, without the tooth's run above and below it.
        over = [p for p in pieces if p[0] <= 395 <= p[0] + p[2]]
        assert len(over) == 1 and over[0][3] < 45
    else:
        assert len(on_teeth) >= 5


def test_a_comb_two_degrees_askew_goes_with_its_line_and_a_lone_askew_line_stays():
    page = _page()
    m = cv2.getRotationMatrix2D((300, 100), 2.0, 1.0)
    comb = np.full_like(page, 255)
    teeth = _comb(comb, x0=100, pitch=60, boxes=6, top=70, bottom=130)
    for i in (0, 2, 4):
        cv2.circle(comb, (130 + 60 * i, 100), 15, 30, 3)
    comb = cv2.warpAffine(comb, m, (600, 200), borderValue=255)
    pieces = _components(prepare(np.minimum(page, comb)).mask)
    # The line falls a pixel every 29: only its Hough segment finds it; the three 0s are all that is left.
    assert len(pieces) == 3 and all(25 <= w <= 40 for _, _, w, _ in pieces), (pieces, teeth)
    lone = page.copy()
    cv2.line(lone, (0, 100), (599, 121), 60, 1)
    cv2.circle(lone, (300, 80), 20, 30, 4)
    assert max(w for _, _, w, _ in _components(prepare(lone).mask)) > 240  # a pen's underline, say: it stays


def test_strokes_at_no_regular_pitch_are_not_a_comb():
    page = _page()
    cv2.line(page, (40, 130), (560, 130), 60, 2)
    for x in (120, 205, 330, 345):  # upright strokes on the line, no pitch fitting three places
        cv2.line(page, (x, 80), (x, 128), 30, 3)
    mask = prepare(page).mask
    assert sum(h > 35 for _, _, _, h in _components(mask)) == 4


def test_a_regular_run_is_found_among_strokes_off_the_pitch():
    def tooth(x: int, h: int = 40) -> tuple[int, int, int, int, int]:
        return (x, 100 - h, 3, h, x)

    candidates = [tooth(10), tooth(70), tooth(95), tooth(130), tooth(250), tooth(160, h=15)]
    run, pitch = preprocess._regular_run(candidates)
    assert sorted(c[0] for c in run) == [10, 70, 130, 250] and pitch == pytest.approx(60, abs=1)


@pytest.mark.parametrize("extend", [1, 0])
def test_the_comb_goes_on_past_its_found_teeth_where_digits_touch_them(monkeypatch, extend):
    monkeypatch.setattr(preprocess, "COMB_EXTEND", extend)
    page = _page()
    _comb(page, x0=100, pitch=60, boxes=6, top=60, bottom=130)
    # A wide 0 written across the first two teeth: neither is found as a tooth of its own, and the
    # first stands two places before the first found one.
    cv2.ellipse(page, (130, 95), (40, 18), 0, 0, 360, 30, 3)
    tall = [p for p in _components(prepare(page).mask) if p[3] > 60]  # a tooth is 70 rows, the 0 39
    assert (not tall) == bool(extend), tall


@pytest.mark.parametrize("clear", [2, 0])
def test_a_comb_with_two_teeth_standing_clear_is_found(monkeypatch, clear):
    monkeypatch.setattr(preprocess, "COMB_MIN_CLEAN", clear)
    page = _page()
    _comb(page, x0=100, pitch=60, boxes=6, top=60, bottom=130)
    for x in (130, 250):  # wide 0s across both edges of their boxes
        cv2.ellipse(page, (x, 95), (34, 18), 0, 0, 360, 30, 3)
    cv2.ellipse(page, (400, 95), (20, 18), 0, 0, 360, 30, 3)  # a 0 over the sixth tooth
    tall = [p for p in _components(prepare(page).mask) if p[3] > 60]  # a tooth is 70 rows, a 0 39
    assert (not tall) == bool(clear), tall


def test_a_comb_an_earlier_look_found_is_taken_out_where_digits_touch_every_tooth():
    page = _page()
    _comb(page, x0=100, pitch=60, boxes=6, top=60, bottom=130)
    for x in (130, 250, 370):
        cv2.ellipse(page, (x, 95), (34, 18), 0, 0, 360, 30, 3)
    first_look = preprocess.Comb(first=100, pitch=60, places=7, top=60, bottom=130, height=70)
    assert any(p[3] > 60 for p in _components(prepare(page).mask))  # one tooth clear: no comb
    assert not any(p[3] > 60 for p in _components(prepare(page, comb=first_look).mask))
    # Enlarged, the comb is found where the first look's places say, scaled.
    assert any(p[3] > 60 * 1.5 for p in _components(prepare(page, zoom=1.5, writing=40).mask))
    enlarged = prepare(page, zoom=1.5, writing=40, comb=first_look)
    assert not any(p[3] > 60 * 1.5 for p in _components(enlarged.mask))
    assert enlarged.comb is not None and enlarged.comb.pitch == pytest.approx(60, abs=1)


def test_a_combs_pitch_is_fitted_to_all_its_teeth():
    # Measured between two teeth a pixel off, the pitch puts a long comb's far places out by more
    # than a tooth's width; fitted to all of them, it does not.
    run = [(x, 40, 3, 60, i) for i, x in enumerate((10, 61, 110, 160), start=1)]
    assert preprocess._fitted_pitch(run, 51.0) == pytest.approx(49.9, abs=0.05)
    assert preprocess._fitted_pitch(run[:1], 51.0) == 51.0


def test_grain_is_not_searched_for_combs_stroke_by_stroke(monkeypatch):
    # Uniform noise has thousands of short upright strokes on the lines its rows make; a search among
    # them (its cost the cube of their count) took 10 seconds an image. Only the clear pieces are tried.
    sizes = []
    real_run = preprocess._regular_run
    monkeypatch.setattr(preprocess, "_regular_run", lambda c: (sizes.append(len(c)), real_run(c))[1])
    grain = np.random.default_rng(0).integers(0, 256, (960, 1280), dtype=np.uint8)
    prepare(grain)
    assert sizes and max(sizes) <= preprocess.COMB_MAX_CANDIDATES, sizes
