"""DigitClassifier: single-digit images in, digits and confidences out. Hides preprocessing, batching and device."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import nn

from digitread.checkpoint import load_model
from digitread.data.tensors import images_to_tensor, normalize
from digitread.errors import ConfigError, ImageError
from digitread.inference.backends import load_backend
from digitread.inference.io import ImageInput, load_image
from digitread.inference.normalize import normalize_digit
from digitread.inference.results import DigitPrediction
from digitread.runtime import pick_device, prepare_model

DEFAULT_MODEL = "default"


def resolve_model_dir(model: str | Path | None) -> Path:
    """A model folder: ``None`` or ``"default"`` means the model shipped inside the package."""
    if model is None or str(model) == DEFAULT_MODEL:
        return Path(str(resources.files("digitread") / "weights" / DEFAULT_MODEL))
    return Path(model)


class DigitClassifier:
    """Classify images that each hold one digit.

    >>> clf = DigitClassifier.from_pretrained()  # the shipped model
    >>> clf.classify(["seven.png"])[0].digit  # doctest: +SKIP
    7
    """

    def __init__(
        self,
        model: nn.Module,
        device: str | torch.device | None = None,
        batch_size: int = 256,
        backend: str = "auto",
    ):
        """``backend``: what runs the network, ``torch``, ``onnx`` (ONNX Runtime) or ``auto`` (ONNX Runtime
        on the CPU when installed: faster at every batch size measured; see ``inference.backends``)."""
        if getattr(model, "task", "digits") != "digits":
            raise ConfigError(
                f"{getattr(model, 'arch', 'this model')} reads whole strings, not single digits: "
                "use it as the sequence model (--sequence-model, sequence_path=)"
            )
        self.device = pick_device(str(device) if device else None)
        self.model = prepare_model(model, self.device).eval()
        self.backend = load_backend(self.model, backend, self.device)
        self.config = getattr(model, "config", {})
        self.preprocess = self.config.get("preprocess")
        # Temperature scaling fitted on held-out data when the model was trained (1.0: uncalibrated).
        self.temperature = float(self.config.get("calibration", {}).get("temperature", 1.0))
        self.batch_size = batch_size

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, device: str | None = None, **kwargs) -> DigitClassifier:
        return cls(load_model(resolve_model_dir(path)), device=device, **kwargs)

    def probabilities(self, digits: np.ndarray) -> np.ndarray:
        """Class probabilities (N, 10) for uint8 MNIST-style digits (N, 28, 28), white on black."""
        x = images_to_tensor(np.asarray(digits, dtype=np.uint8).reshape(-1, 28, 28))
        batches = range(0, len(x), self.batch_size)
        logits = [self.backend(normalize(x[i : i + self.batch_size], self.preprocess)) for i in batches]
        if not logits:
            return np.zeros((0, 10), np.float32)
        return torch.softmax(torch.cat(logits) / self.temperature, dim=1).numpy()

    def prepare(self, image: ImageInput, name: str | None = None) -> np.ndarray:
        """The 28x28 field the network sees for ``image`` (for inspection and tests)."""
        try:
            return normalize_digit(load_image(image, name), self.preprocess)
        except ImageError as e:
            message = str(e)
            raise ImageError(message if name is None or message.startswith(name) else f"{name}: {message}") from None

    def classify(
        self, images: Sequence[ImageInput], names: Iterable[str | None] | None = None
    ) -> list[DigitPrediction]:
        """One prediction per image, classified in batches."""
        names = list(names) if names is not None else [None] * len(images)
        fields = [self.prepare(img, n) for img, n in zip(images, names, strict=True)]
        return self.classify_fields(fields, names)

    def classify_fields(self, fields: Sequence[np.ndarray], names: Sequence[str | None]) -> list[DigitPrediction]:
        """One prediction per prepared 28x28 field (``prepare``), all classified in batches."""
        if len(fields) == 0:
            return []
        probs = self.probabilities(np.stack(fields))
        return [
            DigitPrediction(int(p.argmax()), float(p.max()), [round(float(v), 6) for v in p], n)
            for p, n in zip(probs, names, strict=True)
        ]
