"""Request and response bodies of the HTTP API; the OpenAPI document at /docs is generated from them."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

# A number as people write it: digits, a leading minus, one decimal point or comma; lines joined by newlines.
NUMBER_PATTERN = r"^-?[0-9]+([.,][0-9]+)?(\n-?[0-9]+([.,][0-9]+)?)*$"


class ImageIn(BaseModel):
    """One image as text: base64, or a data URL such as canvas.toDataURL() gives."""

    image: str = Field(description="base64 of the image file, or a data:image/...;base64,... URL")
    name: str | None = Field(None, max_length=200, description="echoed back as the reading's source")


class BatchIn(BaseModel):
    images: list[ImageIn] = Field(description="the images, read together")


class FeedbackIn(ImageIn):
    number: str = Field(max_length=64, pattern=NUMBER_PATTERN, description="the number the image really shows")


Row = Annotated[list[Annotated[float, Field(ge=0, le=255)]], Field(min_length=28, max_length=28)]


class PixelsIn(BaseModel):
    """A digit already in MNIST form: 28 rows of 28 values, white ink (255) on black (0)."""

    pixels: Annotated[list[Row], Field(min_length=28, max_length=28)]


class DigitOut(BaseModel):
    char: str = Field(description="a digit, or a '-' or '.' mark")
    confidence: float
    box: tuple[int, int, int, int] = Field(description="x, y, width, height in the image's pixels")
    alternatives: list[tuple[str, float]] = Field(description="the next likeliest digits, with their probabilities")
    uncertain: bool = Field(description="confidence is below the service's threshold")


class LineOut(BaseModel):
    text: str
    value: int | float | None
    confidence: float
    box: tuple[int, int, int, int]
    path: str = Field(description="which reader read the line: segment (digit by digit) or sequence (whole)")
    digits: list[DigitOut]


class ReadingOut(BaseModel):
    source: str | None
    text: str = Field(description="the number read; several lines are joined by newlines")
    value: int | float | None = Field(description="the number, when exactly one line was read")
    confidence: float = Field(description="the chance that every digit is right")
    width: int = Field(description="image width in pixels (the boxes' frame)")
    height: int
    digits: list[DigitOut]
    lines: list[LineOut]


class BatchOut(BaseModel):
    readings: list[ReadingOut]


class ClassifyOut(BaseModel):
    digit: int
    confidence: float
    probabilities: list[float] = Field(description="ten probabilities, for digits 0 to 9")


class FeedbackOut(BaseModel):
    id: int
    number: str = Field(description="the corrected number, as stored")
    read: str = Field(description="what the service reads in the image")


class ModelOut(BaseModel):
    mode: str
    digit_model: dict = Field(description="architecture, metrics and calibration of the digit classifier")
    sequence_model: dict | None = Field(
        description="the same for the sequence model, when the mode uses one (an ensemble: task and members)"
    )
    limits: dict
    runtime: dict = Field(description="threads and backends (torch or onnx) this server process reads with")


class Health(BaseModel):
    status: str
    version: str


class ErrorOut(BaseModel):
    error: str = Field(description="a short machine-readable code, e.g. too_many_pixels")
    detail: str = Field(description="what went wrong, for people")
