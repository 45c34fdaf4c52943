"""Load any image Pillow reads as a uint8 grayscale array: EXIF rotation applied, alpha flattened on white."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from digitread.errors import ImageError

# Refuse absurd images before their pixels are decoded (a 100,000 x 100,000 PNG header is a few bytes).
MAX_PIXELS = 50_000_000
MAX_FILE_BYTES = 50 * 1024 * 1024
# The formats phones, scanners and browsers make. Pillow knows more (EPS, PSD, ...), and some of them
# hand the file to outside programs (EPS to Ghostscript): those are refused before any decoding.
FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF", "PPM")  # JPEG covers the MPO files phones make
# The file names those formats go by, for picking images out of a folder.
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm"}

ImageInput = str | Path | bytes | np.ndarray | Image.Image

# A damaged EXIF block costs only the rotation it may hold (``_upright``): Pillow's warnings about it
# ("Corrupt EXIF", "Tag data larger than file", "Truncated File Read", "Metadata Warning, tag 271 had too
# many entries", ...) would land on stderr amid the readings, once per file. Its TIFF tag parser, which
# reads every EXIF block, warns of nothing else; those warnings are silenced for the whole process (a
# filter set around each call would race between the service's threads).
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.TiffImagePlugin")
warnings.filterwarnings("ignore", message=r"(Possibly )?[Cc]orrupt EXIF", category=UserWarning)


def _open(source: str | Path | bytes, name: str) -> Image.Image:
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"{name}: file not found")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ImageError(f"{name}: file is larger than {MAX_FILE_BYTES // 2**20} MB")
        source = path.read_bytes()
    if len(source) == 0:
        raise ImageError(f"{name}: empty file")
    try:
        image = Image.open(io.BytesIO(source), formats=FORMATS)
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image in a format digitread reads ({', '.join(FORMATS)})") from None
    except Image.DecompressionBombError as e:
        raise ImageError(f"{name}: image too large ({e})") from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:  # a format's reader choking on a damaged header
        raise ImageError(f"{name}: corrupt or truncated image ({e})") from None
    return image


def _check_size(width: int, height: int, name: str) -> None:
    """Refuse empty images, and images over the pixel limit before their pixels are decoded."""
    if width == 0 or height == 0:
        raise ImageError(f"{name}: image has no pixels ({width}x{height})")
    if width * height > MAX_PIXELS:
        raise ImageError(f"{name}: {width}x{height} pixels is over the limit of {MAX_PIXELS:,}")


def _upright(image: Image.Image) -> Image.Image:
    """``image`` turned as its EXIF orientation says, or as stored when its EXIF block cannot be parsed:
    the pixels are what is read. (Pixels that cannot be decoded fail again, and are reported, when read.)"""
    try:
        return ImageOps.exif_transpose(image) or image
    except Exception:  # noqa: BLE001 - a damaged EXIF block fails in Pillow's parser in many ways
        # (struct.error, TypeError, AttributeError, ... from one changed byte): it costs only the rotation
        return image


def _to_gray(image: Image.Image) -> np.ndarray:
    image = _upright(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.maximum(np.asarray(image, dtype=np.float64), 0)  # 32-bit images can hold negatives
        hi = arr.max() if arr.size else 0
        return (arr * (255.0 / hi)).astype(np.uint8) if hi > 0 else np.zeros(arr.shape, np.uint8)
    if image.mode == "F":
        return _array_to_gray(np.asarray(image), "image")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.asarray(image.convert("L"), dtype=np.uint8)


def _array_to_gray(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        if arr.dtype == np.uint8:  # OpenCV's conversion: same weights, ten times faster than a float product
            return cv2.cvtColor(np.ascontiguousarray(arr[..., :3]), cv2.COLOR_RGB2GRAY)
        arr = arr[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2 or arr.size == 0:
        raise ImageError(f"{name}: expected a 2-D grayscale or HxWx3 array, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise ImageError(f"{name}: array of {arr.dtype} is not an image")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise ImageError(f"{name}: array holds NaN or infinite values")
    hi = arr.max()
    scale = 255.0 if hi <= 1.0 else 255.0 / hi if hi > 255 else 1.0  # floats in 0-1, 0-255, or wider ints
    # Negatives are clipped before scaling: a huge negative value times 255 would overflow float64.
    np.maximum(arr, 0, out=arr)
    return np.clip(arr * scale, 0, 255).astype(np.uint8)


def load_image(source: ImageInput, name: str | None = None) -> np.ndarray:
    """A uint8 grayscale (H, W) array from a path, bytes, a PIL image or a numpy array.

    >>> load_image("photo.jpg").dtype  # doctest: +SKIP
    dtype('uint8')
    """
    name = name or (str(source) if isinstance(source, str | Path) else type(source).__name__)
    if isinstance(source, np.ndarray):
        if source.ndim >= 2:
            _check_size(source.shape[1], source.shape[0], name)
        return _array_to_gray(source, name)
    image = source if isinstance(source, Image.Image) else _open(source, name)
    _check_size(image.width, image.height, name)
    try:
        image.seek(0)  # first frame of animations
        return _to_gray(image)
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise ImageError(f"{name}: corrupt or truncated image ({e})") from None
