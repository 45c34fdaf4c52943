"""Bounds on what a client may send: request bodies, image files, pixels, formats and base64 text.

Each refusal is an ``ApiError`` with the status a client can act on: 413 when something is too big,
415 for a file that is no image format served here, 422 for a corrupt image or malformed text.
"""

from __future__ import annotations

import base64
import binascii
import io
import re

import numpy as np
from PIL import Image, UnidentifiedImageError

from digitread.errors import ImageError
from digitread.inference.io import FORMATS, load_image
from digitread.serve.errors import ApiError, error_response
from digitread.serve.settings import ServeSettings

_DATA_URL = re.compile(r"^data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^,;]*)*?)(?P<b64>;base64)?,", re.ASCII)
_WHITESPACE = re.compile(r"\s+")


class BodyLimit:
    """ASGI middleware: refuse a request body over ``max_bytes`` with 413, whether its length is declared
    (refused before any of it is read) or it arrives in chunks (refused once the count passes the limit)."""

    def __init__(self, app, max_bytes: int, on_refuse=None):
        self.app = app
        self.max_bytes = max_bytes
        self.on_refuse = on_refuse or (lambda code: None)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            self.on_refuse("request_too_large")
            response = error_response(413, "request_too_large", self._message())
            await response(scope, receive, send)
            return
        received = 0

        async def counted_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Raised inside the app's read of the body; the app's ApiError handler answers it.
                    raise ApiError(413, "request_too_large", self._message())
            return message

        await self.app(scope, counted_receive, send)

    def _message(self) -> str:
        return f"request body is over the limit of {self.max_bytes:,} bytes"


def decode_base64(text: str, what: str, settings: ServeSettings) -> bytes:
    """The bytes of plain base64 or of a ``data:image/png;base64,...`` URL (what canvas.toDataURL gives)."""
    match = _DATA_URL.match(text)
    if match:
        if not match.group("b64"):
            raise ApiError(422, "malformed_base64", f"{what}: a data URL must be base64-encoded (';base64,')")
        text = text[match.end() :]
    text = _WHITESPACE.sub("", text)
    if len(text) // 4 * 3 > settings.max_image_bytes + 2:  # refuse before decoding
        raise ApiError(413, "image_too_large", _too_large(what, settings))
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(422, "malformed_base64", f"{what}: not valid base64") from None
    if not data:
        raise ApiError(422, "empty_image", f"{what}: the image is empty")
    return data


def open_image(data: bytes, what: str, settings: ServeSettings) -> Image.Image:
    """Pillow's lazy handle on ``data``: only the header is read, and its size is checked before decoding."""
    if len(data) > settings.max_image_bytes:
        raise ApiError(413, "image_too_large", _too_large(what, settings))
    if not data:
        raise ApiError(422, "empty_image", f"{what}: the image is empty")
    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)
    except UnidentifiedImageError:
        message = f"{what}: not an image in a format served here ({_formats()})"
        raise ApiError(415, "unsupported_image", message) from None
    except Image.DecompressionBombError:
        # Pillow's own guard, for sizes far past any limit here (billions of pixels).
        message = f"{what}: the image has far more pixels than the limit of {settings.max_pixels:,}"
        raise ApiError(413, "too_many_pixels", message) from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:  # a known format whose header is broken
        raise ApiError(422, "corrupt_image", f"{what}: corrupt image header ({e})") from None
    width, height = image.size
    if width * height > settings.max_pixels:
        raise ApiError(
            413,
            "too_many_pixels",
            f"{what}: {width}x{height} pixels is over the limit of {settings.max_pixels:,}; scale it down",
        )
    return image


def decode_gray(image: Image.Image, what: str) -> np.ndarray:
    """Decode the pixels (the costly part, after every check) into the reader's grayscale array."""
    try:
        return load_image(image, what)
    except ImageError as e:
        raise ApiError(422, "corrupt_image", str(e)) from None
    except Exception as e:  # noqa: BLE001 - decoders raise many kinds of error on hostile bytes; all mean corrupt
        raise ApiError(422, "corrupt_image", f"{what}: corrupt image ({type(e).__name__})") from None


def _too_large(what: str, settings: ServeSettings) -> str:
    return f"{what}: the image file is over the limit of {settings.max_image_bytes:,} bytes"


def _formats() -> str:
    return ", ".join(FORMATS)
