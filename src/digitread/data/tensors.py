"""Digit arrays as model input: uint8 white-on-black images -> normalised float batches."""

from __future__ import annotations

import numpy as np
import torch

from digitread.checkpoint import DEFAULT_PREPROCESS
from digitread.data.pen_digits import make_pen_digits


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, 28, 28) -> uint8 tensor (N, 1, 28, 28); kept as uint8 to hold all of MNIST in 47 MB."""
    images = np.ascontiguousarray(images, dtype=np.uint8)
    if not images.flags.writeable:  # arrays parsed straight from file bytes are read-only
        images = images.copy()
    return torch.from_numpy(images).unsqueeze(1)


def training_digits(
    images: np.ndarray, labels: np.ndarray, subset: int, bootstrap: int, pen_digits: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The digits a run trains on, as the run's data settings say: the first ``subset`` of a seeded
    shuffle (0: all), then the ``bootstrap``-th sample drawn with replacement (0: none), then
    ``pen_digits`` pen-drawn digits added. Digit and sequence training share it, so one seed picks the
    same digits for both."""
    if subset:
        keep = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed + 1))[:subset].numpy()
        images, labels = images[keep], labels[keep]
    if bootstrap:
        # Bagging: as many images as there are, drawn with replacement; each k draws its own sample.
        draw = torch.Generator().manual_seed(1_000_003 * bootstrap + seed)
        pick = torch.randint(0, len(labels), (len(labels),), generator=draw).numpy()
        images, labels = images[pick], labels[pick]
    if pen_digits:
        pen_images, pen_labels = make_pen_digits(pen_digits, seed=seed)
        images, labels = np.concatenate([images, pen_images]), np.concatenate([labels, pen_labels])
    return images, labels


def normalize(x: torch.Tensor, preprocess: dict | None = None) -> torch.Tensor:
    """uint8 pixels (or floats in 0-1) -> floats standardised with the model's mean and std."""
    pre = preprocess or DEFAULT_PREPROCESS
    if x.dtype == torch.uint8:
        x = x.float().div_(255.0)
    return (x - pre["mean"]) / pre["std"]
