"""Photos taken askew: the writing's tilt is found, the image read turned level, its boxes given in the
image as it came."""

import cv2
import numpy as np
import pytest

from digitread.data.synth import SynthConfig, make_comb_fields, make_numbers
from digitread.inference import preprocess
from digitread.inference.preprocess import estimate_tilt, turn_level
from digitread.inference.reader import DigitReader


@pytest.fixture(scope="module")
def reader():
    return DigitReader.from_pretrained()


def _turned(image: np.ndarray, degrees: float, fill: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``image`` turned ``degrees`` counter-clockwise as seen, on a canvas that holds it all, and the map
    of its pixels into the turned image."""
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    size = (int(np.ceil(h * sin + w * cos)), int(np.ceil(h * cos + w * sin)))
    m[0, 2] += size[0] / 2 - w / 2
    m[1, 2] += size[1] / 2 - h / 2
    fill_value = (fill,) * 3 if image.ndim == 3 else fill
    return cv2.warpAffine(image, m, size, flags=cv2.INTER_LINEAR, borderValue=fill_value), m


def _line_of_ink() -> np.ndarray:
    mask = np.zeros((120, 520), np.uint8)
    cv2.putText(mask, "4096 1285", (20, 80), cv2.FONT_HERSHEY_SIMPLEX, 2.0, 255, 5)
    return mask


@pytest.mark.parametrize("degrees", [-25, -12, -6, 6, 12, 25])
def test_the_tilt_of_a_line_of_writing_is_found(degrees):
    turned, _ = _turned(_line_of_ink(), degrees)
    # Turned counter-clockwise, the line climbs to the right: it falls by minus that many degrees.
    assert estimate_tilt(turned) == pytest.approx(-degrees, abs=1)
    level, _ = turn_level(turned, estimate_tilt(turned))
    assert abs(estimate_tilt(level)) <= 1  # turned level, no tilt is left to find


def test_level_writing_a_small_tilt_and_a_lone_digit_are_left_as_they_are():
    assert estimate_tilt(_line_of_ink()) == 0.0
    assert estimate_tilt(_turned(_line_of_ink(), 2)[0]) == 0.0  # under TILT_MIN
    digit = np.zeros((100, 100), np.uint8)
    cv2.putText(digit, "7", (25, 80), cv2.FONT_HERSHEY_SIMPLEX, 2.5, 255, 6)
    for degrees in (-20, 15):  # a lone digit has no line to measure: its peak barely beats level
        assert estimate_tilt(_turned(digit, degrees)[0]) == 0.0
    assert estimate_tilt(np.zeros((50, 50), np.uint8)) == 0.0
    corner = np.zeros((300, 300), np.uint8)  # ink heaped in one corner, a speck in the far one
    corner[-60:, -60:] = 255
    corner[0, 0] = 255
    assert estimate_tilt(corner) == 0.0
    for shape in ((1, 600), (3, 5000), (5000, 1)):  # ink one pixel thin: a ruled line's leftover
        assert estimate_tilt(np.full(shape, 255, np.uint8)) == 0.0


def test_a_big_photo_is_turned_shrunk_and_still_mapped_to_its_own_pixels():
    big = np.zeros((3000, 4000), np.uint8)
    big[1500, 2000] = 255  # a point whose place the map must find again
    turned, back = turn_level(big, 12.0)
    assert max(turned.shape) <= 2 * preprocess.MAX_SIDE * 1.5  # shrunk to twice the working size, then turned
    y, x = np.unravel_index(int(np.argmax(turned)), turned.shape)
    assert back @ np.array([x, y, 1.0]) == pytest.approx([2000, 1500], abs=4)


def test_a_peak_at_the_edge_of_the_search_is_no_line():
    # Turned 35 degrees, the line's peak lies beyond the search's 30: no tilt is believed.
    assert estimate_tilt(_turned(_line_of_ink(), 35)[0]) == 0.0


def test_a_comb_field_found_is_not_turned(reader, mnist):
    # Two of the benchmark's comb fields of three digits: the digits in their boxes, with what is left
    # of the teeth, make a line 11 and 14 degrees off level; turned, the comb was lost.
    fields = make_comb_fields(mnist.test.images, mnist.test.labels, 217, seed=2033)
    for image, text in (fields[160], fields[216]):
        prepared = preprocess.prepare(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
        assert prepared.comb is not None and prepared.tilt == 0.0
        assert reader.read(image).text == text


def test_a_tilted_photo_is_read_and_boxed_in_the_image_as_given(reader, mnist):
    # Six test digits 40 pixels apart on paper, the photo turned 15 degrees: each digit's box must hold
    # where that digit's centre went.
    paper = np.full((120, 420), 235, np.uint8)
    picks = range(6)  # the test set's first six digits
    labels, centres = [], []
    for k, i in enumerate(picks):
        digit = cv2.resize(mnist.test.images[i], (56, 56))
        x, y = 40 + 56 * k, 30
        paper[y : y + 56, x : x + 56] = np.minimum(paper[y : y + 56, x : x + 56], 235 - digit)
        labels.append(str(int(mnist.test.labels[i])))
        centres.append((x + 28, y + 28))
    photo, m = _turned(paper, 15, fill=235)
    reading = reader.read(photo)
    assert reading.text == "".join(labels)
    for digit, (cx, cy) in zip(reading.digits, centres, strict=True):
        tx, ty = m @ np.array([cx, cy, 1.0])
        x, y, w, h = digit.box
        assert x <= tx <= x + w and y <= ty <= y + h


def test_photos_taken_askew_are_read_turned_level(reader, mnist, monkeypatch):
    photos = make_numbers(mnist.test.images, mnist.test.labels, 40, seed=5, cfg=SynthConfig(rotation=20.0))

    def right() -> int:
        texts = [r.text for r in reader.read_many([image for image, _ in photos])]
        return sum(t == e for t, (_, e) in zip(texts, photos, strict=True))

    turned = right()
    monkeypatch.setattr(preprocess, "TILT_MIN", 0.0)
    assert turned >= right() + 8, "turning tilted photos level should read many more of them"
