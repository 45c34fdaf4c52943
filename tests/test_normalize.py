import io

import cv2
import numpy as np
import pytest
from PIL import Image

from digitread.errors import ImageError
from digitread.inference.io import load_image
from digitread.inference.normalize import fit_digit, ink_on_black, normalize_digit


def _drawn_seven(dark_on_light: bool = True, size=(120, 90)) -> np.ndarray:
    """A '7' drawn with strokes in the upper-left part of a larger page."""
    ink = np.zeros(size, np.uint8)
    cv2.line(ink, (10, 15), (50, 15), 255, 5)
    cv2.line(ink, (50, 15), (25, 80), 255, 5)
    return 255 - ink if dark_on_light else ink


def test_dark_ink_on_light_paper_is_inverted_and_light_ink_is_kept():
    assert ink_on_black(_drawn_seven(True))[0, 0] == 0
    assert ink_on_black(_drawn_seven(False))[0, 0] == 0


@pytest.mark.parametrize("dark_on_light", [True, False])
def test_digit_fits_20x20_box_with_mass_centred_in_28x28(dark_on_light):
    field = normalize_digit(_drawn_seven(dark_on_light))
    assert field.shape == (28, 28) and field.dtype == np.uint8
    ys, xs = np.nonzero(field > 0)
    height, width = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
    assert max(height, width) in (20, 21, 22)  # 20 plus at most a pixel of interpolation each side
    assert height > width  # the aspect ratio of a tall 7 is kept
    mass = field.astype(float)
    cy = (mass.sum(1) * np.arange(28)).sum() / mass.sum()
    cx = (mass.sum(0) * np.arange(28)).sum() / mass.sum()
    assert abs(cy - 13.5) < 0.6 and abs(cx - 13.5) < 0.6


def test_a_blank_image_is_an_image_error():
    with pytest.raises(ImageError, match="blank"):
        normalize_digit(np.full((40, 40), 200, np.uint8))
    with pytest.raises(ImageError):
        fit_digit(np.zeros((10, 10), np.uint8))


def _png(image: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kw)
    return buffer.getvalue()


def test_alpha_is_flattened_on_white():
    rgba = Image.new("RGBA", (20, 20), (0, 0, 0, 0))  # transparent black: reads as white paper
    rgba.putpixel((5, 5), (0, 0, 0, 255))
    gray = load_image(_png(rgba))
    assert gray[0, 0] == 255 and gray[5, 5] == 0


def test_16_bit_palette_and_gif_images_load_as_uint8():
    arr16 = (np.arange(400, dtype=np.uint16).reshape(20, 20) * 100).astype(np.uint16)
    for image in (Image.fromarray(arr16), Image.new("P", (20, 20), 3), Image.new("L", (20, 20), 9)):
        for fmt in ("PNG", "GIF", "TIFF", "BMP") if image.mode != "I;16" else ("PNG", "TIFF"):
            gray = load_image(_png(image, fmt))
            assert gray.dtype == np.uint8 and gray.shape == (20, 20)


def test_exif_rotation_is_applied():
    image = Image.new("L", (40, 20), 255)  # landscape
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    gray = load_image(_png(image, "JPEG", exif=exif.tobytes()))
    assert gray.shape == (40, 20)


@pytest.mark.parametrize(("at", "value"), [(11, 0), (11, 26), (13, 11)])
def test_an_exif_block_pillow_chokes_on_costs_only_the_rotation(at, value):
    """One changed byte in the EXIF block makes Pillow's parser raise struct.error, TypeError and
    AttributeError in turn: the image is still read, as stored."""
    exif = Image.Exif()
    exif[0x0112], exif[0x010F], exif[0x8769] = 6, "maker", {0x9003: "2020:01:01"}
    data = bytearray(_png(Image.new("L", (20, 20), 200), "JPEG", exif=exif.tobytes()))
    data[data.find(b"Exif") + 6 + at] = value
    assert load_image(bytes(data)).shape == (20, 20)


@pytest.mark.parametrize(
    ("offset", "patch"),
    [
        (8, b"\xff\x0f"),  # the first directory's entry count: far more entries than the block holds
        (13, b"\x0b"),  # Pillow: "Metadata Warning, tag 271 had too many entries"
        (26, b"\x0b"),  # Pillow: "Tag data larger than file. Skipping tag 274"
        (18, b"\x0b"),  # Pillow: "Truncated File Read"
    ],
)
def test_a_damaged_exif_block_is_read_past_quietly(tmp_path, offset, patch):
    """Pillow warns of a damaged EXIF block on stderr (and may still find the orientation in it); the
    image must load, and nothing land on stderr amid the command line's readings."""
    import subprocess
    import sys

    exif = Image.Exif()
    exif[0x0112], exif[0x010F], exif[0x8769] = 6, "maker", {0x9003: "2020:01:01"}
    data = bytearray(_png(Image.new("L", (40, 20), 200), "JPEG", exif=exif.tobytes()))
    at = data.find(b"Exif") + 6 + offset  # into the TIFF block after "Exif\0\0"
    data[at : at + len(patch)] = patch
    (tmp_path / "bad_exif.jpg").write_bytes(bytes(data))
    script = "import sys; from digitread.inference.io import load_image; print(sorted(load_image(sys.argv[1]).shape))"
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "bad_exif.jpg")], capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, "[20, 40]", "")


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"", "empty"), (b"<html>hello</html>", "not an image"), (b"\x89PNG\r\n\x1a\n" + b"\x00" * 30, "image")],
)
def test_unreadable_bytes_are_image_errors(data, message):
    with pytest.raises(ImageError, match=message):
        load_image(data)


def test_arrays_are_checked():
    with pytest.raises(ImageError, match="NaN"):
        load_image(np.array([[np.nan, 1.0]]))
    with pytest.raises(ImageError, match="expected a 2-D"):
        load_image(np.zeros((2, 2, 2, 2)))
    assert load_image(np.ones((3, 3), np.float32)).max() == 255


def test_the_fast_crop_statistics_equal_numpys():
    from digitread.inference.normalize import _median, ink_percentile

    rng = np.random.default_rng(0)
    for _ in range(300):
        ink = rng.integers(0, 256, rng.integers(1, 60, 2)).astype(np.uint8)
        ink[rng.random(ink.shape) < rng.random()] = 0
        values = ink[ink > 0]
        expected = float(np.percentile(values, 60)) if values.size else None
        assert ink_percentile(ink, 60) == expected
        ridge = rng.random(rng.integers(1, 40)).astype(np.float32)
        assert _median(ridge) == float(np.median(ridge))
