"""Augmentation of whole batches on tensors: one random affine warp per image, in one grid_sample call."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from digitread.config import AugmentConfig


def random_affine(x: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Rotate, scale and shift each image of ``x`` (B, C, H, W) by its own random amounts, then add noise."""
    b = x.shape[0]

    def uniform(limit: float) -> torch.Tensor:
        return (torch.rand(b, generator=generator) * 2 - 1) * limit

    if cfg.rotate or cfg.scale or cfg.translate:
        angle = uniform(math.radians(cfg.rotate))
        zoom = 1 + uniform(cfg.scale)
        # affine_grid maps output to input coordinates in [-1, 1], so a shift of t image sides is 2t.
        tx, ty = uniform(2 * cfg.translate), uniform(2 * cfg.translate)
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)  # (B, 2, 3)
        grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if cfg.noise:
        x = x + torch.randn(x.shape, generator=generator).to(x.dtype) * cfg.noise
    return x
