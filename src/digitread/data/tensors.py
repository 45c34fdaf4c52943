"""Digit arrays as model input: uint8 white-on-black images -> normalised float batches."""

from __future__ import annotations

import numpy as np
import torch

from digitread.checkpoint import DEFAULT_PREPROCESS


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, 28, 28) -> uint8 tensor (N, 1, 28, 28); kept as uint8 to hold all of MNIST in 47 MB."""
    images = np.ascontiguousarray(images, dtype=np.uint8)
    if not images.flags.writeable:  # arrays parsed straight from file bytes are read-only
        images = images.copy()
    return torch.from_numpy(images).unsqueeze(1)


def normalize(x: torch.Tensor, preprocess: dict | None = None) -> torch.Tensor:
    """uint8 pixels (or floats in 0-1) -> floats standardised with the model's mean and std."""
    pre = preprocess or DEFAULT_PREPROCESS
    if x.dtype == torch.uint8:
        x = x.float().div_(255.0)
    return (x - pre["mean"]) / pre["std"]
