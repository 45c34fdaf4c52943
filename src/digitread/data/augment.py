"""Augmentation of whole batches on tensors: one random affine warp per image, in one grid_sample call."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from digitread.config import AugmentConfig


def random_affine(x: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Rotate, shear, scale and shift each image of ``x`` (B, C, H, W) by its own random amounts, make some
    strokes thicker or thinner, then add noise."""
    b = x.shape[0]

    def uniform(limit: float) -> torch.Tensor:
        return (torch.rand(b, generator=generator) * 2 - 1) * limit

    if cfg.stroke:
        # Pen width: a 3x3 max-pool dilates the strokes; cutting away their soft edges thins them (a
        # 3x3 erosion would wipe out MNIST's thinner digits). Each image gets one, the other or neither.
        choice = torch.rand(b, generator=generator).to(x.device)
        thick = F.max_pool2d(x, 3, stride=1, padding=1)
        thin = ((x - 0.45) / 0.55).clamp(0, 1)
        pick = choice.view(b, 1, 1, 1)
        x = torch.where(pick < cfg.stroke / 2, thick, torch.where(pick < cfg.stroke, thin, x))
    if cfg.rotate or cfg.scale or cfg.translate or cfg.shear:
        angle = uniform(math.radians(cfg.rotate))
        zoom = 1 + uniform(cfg.scale)
        # Drawn only when asked for, so runs without shear keep the random stream they had before it.
        shear = uniform(cfg.shear) if cfg.shear else torch.zeros(b)
        # affine_grid maps output to input coordinates in [-1, 1], so a shift of t image sides is 2t.
        tx, ty = uniform(2 * cfg.translate), uniform(2 * cfg.translate)
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        # Rotation-and-zoom, then a horizontal shear: x' = x + shear * y.
        theta = torch.stack(
            [torch.stack([cos + shear * sin, -sin + shear * cos, tx], 1), torch.stack([sin, cos, ty], 1)], 1
        )
        grid = F.affine_grid(theta.to(x.dtype).to(x.device), list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if cfg.noise:
        x = x + torch.randn(x.shape, generator=generator).to(x.dtype).to(x.device) * cfg.noise
    return x
