import numpy as np
import pytest

from digitread.data.outliers import make_outliers
from digitread.data.synth import SynthConfig, make_comb_fields, make_numbers


def _digits(n: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Stand-in digit images (bars of varying width) so these tests need no data set."""
    rng = np.random.default_rng(0)
    images = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        w = int(rng.integers(3, 14))
        images[i, 4:24, 14 - w // 2 : 14 + w // 2 + 1] = 255
    return images, np.arange(n) % 10


def test_synthetic_numbers_are_seeded_and_labelled():
    images, labels = _digits()
    a = make_numbers(images, labels, 5, seed=3)
    b = make_numbers(images, labels, 5, seed=3)
    assert all(np.array_equal(x, y) and s == t for (x, s), (y, t) in zip(a, b, strict=True))
    cfg = SynthConfig(min_digits=4, max_digits=6)
    for image, text in make_numbers(images, labels, 20, seed=1, cfg=cfg):
        assert image.ndim == 3 and image.dtype == np.uint8
        assert 4 <= sum(c.isdigit() for c in text) <= 6
        assert set(text) <= set("0123456789.-")


def test_comb_fields_are_seeded_rows_of_printed_boxes_with_a_digit_in_each():
    images, labels = _digits()
    a = make_comb_fields(images, labels, 6, seed=4)
    b = make_comb_fields(images, labels, 6, seed=4)
    assert all(np.array_equal(x, y) and s == t for (x, s), (y, t) in zip(a, b, strict=True))
    for image, text in make_comb_fields(images, labels, 20, seed=2):
        assert image.ndim == 3 and image.dtype == np.uint8 and text.isdigit() and 3 <= len(text) <= 8
        gray = image.mean(axis=2)
        assert gray.min() < gray.max() - 60  # ink and print stand out from the paper


def test_outliers_are_normalised_fields_of_fragments_and_pairs():
    images, _ = _digits()
    out = make_outliers(images, 40, seed=0)
    assert out.shape == (40, 28, 28) and out.dtype == np.uint8
    assert (out.reshape(40, -1).max(1) > 0).all()
    assert np.array_equal(out, make_outliers(images, 40, seed=0))


def test_outliers_may_be_drawn_crosses_and_ticks_without_changing_the_others():
    images, _ = _digits()
    marks = make_outliers(images, 40, seed=0, marks=1.0)
    assert marks.shape == (40, 28, 28) and (marks.reshape(40, -1).max(1) > 0).all()
    assert np.array_equal(marks, make_outliers(images, 40, seed=0, marks=1.0))
    assert not np.array_equal(marks, make_outliers(images, 40, seed=0))
    # No marks asked for, no extra random draw: runs made before marks existed are made again alike.
    assert np.array_equal(make_outliers(images, 40, seed=0, marks=0.0), make_outliers(images, 40, seed=0))


def test_pen_digits_are_seeded_labelled_fields_that_a_digit_model_reads():
    from digitread.data.pen_digits import STYLES, make_pen_digits
    from digitread.inference.predictor import DigitClassifier

    images, labels = make_pen_digits(600, seed=5)
    assert images.shape == (600, 28, 28) and images.dtype == np.uint8
    assert np.array_equal(np.bincount(labels), np.full(10, 60)) and set(STYLES) == set(range(10))
    assert (images.reshape(600, -1).max(1) >= 180).all()  # strong strokes on black, as MNIST
    again, _ = make_pen_digits(600, seed=5)
    assert np.array_equal(images, again) and not np.array_equal(images, make_pen_digits(600, seed=6)[0])
    # The drawings are digits: a model trained on MNIST (and pen digits) reads nearly all of them.
    read = DigitClassifier.from_pretrained().probabilities(images).argmax(1)
    assert (read == labels).mean() >= 0.9


@pytest.mark.parametrize("style, loop_share", [("_two_loop_top", 0.0), ("_two_big_loop", 0.3)])
def test_a_2_with_a_looped_top_has_a_closed_loop_above_and_a_foot_below(style, loop_share):
    import cv2

    from digitread.data import pen_digits

    rng = np.random.default_rng(3)
    looped = 0
    for _ in range(40):
        # draw_pen_digit picks one of the 2's styles at random; this one is asked for by hand.
        digit = pen_digits.draw_pen_digit(2, rng, styles=[getattr(pen_digits, style)])
        ink = (digit > 80).astype(np.uint8)
        contours, hierarchy = cv2.findContours(ink, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
        holes = [] if hierarchy is None else [c for c, h in zip(contours, hierarchy[0], strict=True) if h[3] >= 0]
        rows = np.nonzero(ink.any(axis=1))[0]
        foot = ink[rows[-3:]].any(axis=0)
        # The big loop is what the cheques' 2s have: its hole spans a good part of the digit's height.
        big = any(cv2.boundingRect(c)[3] >= loop_share * np.ptp(rows) for c in holes)
        looped += big and foot.sum() >= 0.5 * np.ptp(np.nonzero(ink.any(axis=0))[0])
    assert looped >= 34, looped


def test_a_1_with_a_hooked_flag_hangs_its_flag_a_third_down_bowing_up():
    from digitread.data.pen_digits import _one_hook

    rng = np.random.default_rng(4)
    for _ in range(20):
        (stroke,) = _one_hook(rng)  # one pen stroke: the flag's end up to the top, then down the stem
        top = int(np.argmin(stroke[:, 1]))
        end, tip, foot = stroke[0], stroke[top], stroke[-1]
        assert end[0] < tip[0] - 0.15 and end[1] > tip[1] + 0.2  # left of the top and well below it
        assert foot[1] > 0.9 and abs(foot[0] - tip[0]) < 0.1  # the stem runs straight down
        # A curve, not a straight flag (which the 7's corner resembles less): it bows up over its chord.
        middle = stroke[top // 2]
        chord_y = end[1] + (tip[1] - end[1]) * (middle[0] - end[0]) / (tip[0] - end[0])
        assert middle[1] < chord_y - 0.03
