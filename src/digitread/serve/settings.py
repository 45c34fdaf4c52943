"""ServeSettings: everything the HTTP service can be told, from flags or from DIGITREAD_* variables.

Several uvicorn workers each build their own app in their own process, so the settings travel to them
through the environment: ``to_env`` writes them, ``from_env`` reads them back.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass

from digitread.errors import ConfigError
from digitread.inference import io as image_io

MODES = ("auto", "segment", "sequence")
BACKENDS = ("auto", "torch", "onnx")  # inference.backends.BACKENDS, kept here so settings import no torch


@dataclass(frozen=True)
class ServeSettings:
    model: str | None = None  # digit model folder; None: the shipped one
    sequence_model: str | None = None  # sequence model folder; None: the shipped one
    mode: str = "auto"
    min_confidence: float = 0.5  # digits below it are marked uncertain and get alternatives on the page
    max_request_bytes: int = 32 * 2**20  # a whole request body, a batch included
    max_image_bytes: int = 10 * 2**20  # one image file, after base64 decoding
    max_pixels: int = image_io.MAX_PIXELS  # width x height, checked from the header before decoding
    max_batch: int = 16  # images in one /v1/read/batch request
    inference_threads: int = 2  # readings run at once; more requests wait their turn in a queue
    # PyTorch threads inside one reading. One: parallelism comes from readings side by side
    # (inference_threads), and a thread team never waits on a member the OS has parked while other
    # processes hold the cores (see "Threads" in docs/service.md).
    torch_threads: int = 1
    # What runs the models: onnx (ONNX Runtime), torch, or auto: ONNX Runtime when installed (docs/speed.md).
    # Its sessions take their thread count from torch_threads.
    backend: str = "auto"
    feedback_db: str = "sqlite:///digitread-feedback.db"  # any SQLAlchemy URL; SQLite: beside the server

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"unknown reading mode {self.mode!r}; choose {', '.join(MODES)}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"unknown backend {self.backend!r}; choose {', '.join(BACKENDS)}")
        counts = ["max_request_bytes", "max_image_bytes", "max_pixels", "max_batch"]
        counts += ["inference_threads", "torch_threads"]
        for name in counts:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        # The image loader refuses anything over its own limit; a higher limit here could never be served.
        if self.max_pixels > image_io.MAX_PIXELS:
            raise ConfigError(f"max_pixels can be at most {image_io.MAX_PIXELS:,}, got {self.max_pixels:,}")
        if not 0 <= self.min_confidence <= 1:
            raise ConfigError(f"min_confidence must be between 0 and 1, got {self.min_confidence}")

    @staticmethod
    def env_name(field: str) -> str:
        return f"DIGITREAD_{field.upper()}"

    def to_env(self) -> dict[str, str]:
        """The variables ``from_env`` reads back; unset optional fields are left out."""
        return {
            self.env_name(f.name): str(getattr(self, f.name))
            for f in dataclasses.fields(self)
            if getattr(self, f.name) is not None
        }

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> ServeSettings:
        """Defaults, then ``DIGITREAD_<FIELD>`` variables, then ``overrides``."""
        environ = os.environ if environ is None else environ
        values: dict = {}
        for f in dataclasses.fields(cls):
            raw = environ.get(cls.env_name(f.name))
            if raw is None or raw == "":
                continue
            kind = type(f.default) if f.default is not None else str
            try:
                values[f.name] = kind(raw)
            except ValueError:
                raise ConfigError(f"{cls.env_name(f.name)}={raw!r} is not a valid {kind.__name__}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
