"""Property-based tests: random arrays and random bytes through loading, preparing, segmenting and
reading. Only documented errors may come out, and every reading must be well formed."""

import io
import os

import numpy as np
import pytest
from conftest import assert_well_formed
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from digitread.errors import ImageError
from digitread.inference.io import load_image
from digitread.inference.layout import find_lines
from digitread.inference.reader import DigitReader

READER = DigitReader.from_pretrained()
# 40 cases per property in `make test`; DIGITREAD_FUZZ_EXAMPLES=1000 for a longer hunt.
EXAMPLES = int(os.environ.get("DIGITREAD_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

shapes = st.tuples(st.integers(1, 160), st.integers(1, 220))
gray_images = shapes.flatmap(lambda s: arrays(np.uint8, s))
colour_images = shapes.flatmap(lambda s: arrays(np.uint8, (*s, 3)))


def _blobs(draw_shape, seed: int) -> np.ndarray:
    """Paper with random dark strokes: more like writing than uniform noise, so segmentation has work."""
    import cv2

    rng = np.random.default_rng(seed)
    h, w = draw_shape
    image = np.full((h, w), 230, np.uint8)
    for _ in range(rng.integers(0, 12)):
        p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        p2 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.line(image, p1, p2, int(rng.integers(0, 120)), int(rng.integers(1, 6)))
    return image


@FUZZ
@given(gray_images)
def test_any_gray_array_reads_into_a_well_formed_reading(image):
    assert_well_formed(READER.read(image), image.shape)


@FUZZ
@given(colour_images)
def test_any_colour_array_reads_into_a_well_formed_reading(image):
    assert_well_formed(READER.read(image), image.shape)


@FUZZ
@given(shapes.filter(lambda s: min(s) >= 8), st.integers(0, 2**32 - 1))
def test_random_strokes_on_paper_read_into_a_well_formed_reading(shape, seed):
    image = _blobs(shape, seed)
    assert_well_formed(READER.read(image), image.shape)
    prepared, lines = find_lines(image)
    for line in lines:
        for piece in line.pieces:  # every piece lies inside the prepared image, its mask its size
            assert piece.mask.shape == (piece.h, piece.w)
            assert piece.x >= 0 and piece.x2 <= prepared.mask.shape[1]
            assert piece.y >= 0 and piece.y2 <= prepared.mask.shape[0]


@FUZZ
@given(st.binary(max_size=2048))
def test_random_bytes_are_an_image_error_or_a_reading(data):
    try:
        reading = READER.read(data)
    except ImageError:
        return
    assert_well_formed(reading, load_image(data).shape)


@FUZZ
@given(shapes, st.sampled_from(["PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF"]), st.integers(0, 2047))
def test_truncated_files_of_every_format_are_an_image_error_or_a_reading(shape, fmt, cut):
    image = Image.fromarray(np.random.default_rng(cut).integers(0, 256, shape, dtype=np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    data = buffer.getvalue()[: max(0, len(buffer.getvalue()) - cut)]
    try:
        reading = READER.read(data)
    except ImageError:
        return
    assert_well_formed(reading, load_image(data).shape)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@FUZZ
@given(data=st.data())
def test_float_arrays_with_any_values_are_an_image_error_or_a_reading(dtype, data):
    shape = data.draw(shapes)
    image = data.draw(arrays(dtype, shape))  # NaN, infinities, huge and negative values included
    try:
        reading = READER.read(image)
    except ImageError as e:
        assert "NaN" in str(e) or "infinite" in str(e) or "array" in str(e)
        return
    assert_well_formed(reading, image.shape)


def test_huge_negative_floats_load_without_overflow():
    import warnings

    image = np.full((40, 40), -1.7e308)
    image[10:30, 18:22] = 0.9  # a stroke in the 0-1 range beside values near float64's limit
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow in the scaling would raise here
        gray = load_image(image)
    assert gray[20, 20] == 229 and gray[0, 0] == 0


def test_32_bit_images_with_negative_pixels_load_as_black_there():
    from PIL import Image

    image = Image.fromarray(np.array([[-1000, 0, 500]], dtype=np.int32), mode="I")
    assert load_image(image).tolist() == [[0, 0, 255]]  # not wrapped round to a bright grey
