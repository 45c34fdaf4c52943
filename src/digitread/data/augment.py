"""Augmentation of whole batches on tensors: one random affine warp per image (with an elastic
distortion added to its sampling grid), in one grid_sample call; pen width, erasing and noise as
tensor operations. No per-image Python."""

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
        # Pen width: a 3x3 dilation thickens the strokes; cutting away their soft edges thins them (a
        # 3x3 erosion would wipe out MNIST's thinner digits). Each image gets one, the other or neither,
        # and only the images chosen are touched.
        choice = torch.rand(b, generator=generator).to(x.device)
        thick, thin = choice < cfg.stroke / 2, (choice >= cfg.stroke / 2) & (choice < cfg.stroke)
        x = x.clone()
        x[thick] = dilate3x3(x[thick])
        x[thin] = ((x[thin] - 0.45) / 0.55).clamp(0, 1)
    if cfg.rotate or cfg.scale or cfg.translate or cfg.shear or cfg.elastic:
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
        grid = _affine_grid(theta.to(x.dtype).to(x.device), x.shape[2], x.shape[3])
        if cfg.elastic:
            grid = grid + _elastic_field(b, x.shape[2], x.shape[3], cfg.elastic, generator).to(grid)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if cfg.erase:
        x = _erase(x, cfg.erase, generator)
    if cfg.noise:
        x = x + torch.randn(x.shape, generator=generator).to(x.dtype).to(x.device) * cfg.noise
    return x


def dilate3x3(x: torch.Tensor) -> torch.Tensor:
    """``F.max_pool2d(x, 3, stride=1, padding=1)`` for images of non-negative pixels, as the maximum of
    shifted views (rows, then columns): a twentieth of the time of max_pool2d, whose stride-1 CPU
    kernel is slow on single-channel images."""
    p = F.pad(x, (1, 1, 1, 1))  # zeros: the same as max-pool's ignored padding when pixels are >= 0
    rows = torch.maximum(torch.maximum(p[..., :, :-2], p[..., :, 1:-1]), p[..., :, 2:])  # (..., H + 2, W)
    return torch.maximum(torch.maximum(rows[..., :-2, :], rows[..., 1:-1, :]), rows[..., 2:, :])


def _affine_grid(theta: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``F.affine_grid(theta, (B, C, h, w), align_corners=False)``, built by broadcasting the six
    coefficients over one row and one column of pixel centres: half the time of ``affine_grid`` on a
    CPU, whose batched matrix product over every pixel costs as much as the warp itself."""
    xs = (torch.arange(w, dtype=theta.dtype, device=theta.device) * 2 + 1) / w - 1  # pixel centres in [-1, 1]
    ys = (torch.arange(h, dtype=theta.dtype, device=theta.device) * 2 + 1) / h - 1
    t = theta.reshape(-1, 6, 1, 1)
    gx = t[:, 0] * xs.view(1, 1, w) + t[:, 1] * ys.view(1, h, 1) + t[:, 2]  # (B, h, w)
    gy = t[:, 3] * xs.view(1, 1, w) + t[:, 4] * ys.view(1, h, 1) + t[:, 5]
    return torch.stack([gx, gy], -1)  # (B, h, w, 2)


def _elastic_field(b: int, h: int, w: int, pixels: float, generator: torch.Generator) -> torch.Tensor:
    """Smooth random displacements (B, H, W, 2) in grid units, at most ``pixels`` pixels: random
    offsets on a coarse 4x4 lattice, interpolated bicubically to the image (the smoothing of Simard
    et al.'s elastic distortion, without a per-image Gaussian filter)."""
    coarse = (torch.rand(b, 2, 4, 4, generator=generator) * 2 - 1) * pixels
    field = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True)  # (B, 2, H, W) in pixels
    field = field.clamp(-pixels, pixels)  # bicubic interpolation overshoots its lattice by up to a quarter
    scale = torch.tensor([2.0 / w, 2.0 / h]).view(1, 2, 1, 1)  # grid coordinates span 2 over a side
    return (field * scale).permute(0, 2, 3, 1)


def _erase(x: torch.Tensor, share: float, generator: torch.Generator) -> torch.Tensor:
    """Random erasing: in ``share`` of the images, a rectangle of 5-25% of the area, of random shape
    and place, set to the background (0)."""
    b, _, h, w = x.shape
    area = (0.05 + torch.rand(b, generator=generator) * 0.2) * h * w
    aspect = torch.exp((torch.rand(b, generator=generator) * 2 - 1) * math.log(3))
    eh = (area * aspect).sqrt().clamp(1, h)
    ew = (area / aspect).sqrt().clamp(1, w)
    top = torch.rand(b, generator=generator) * (h - eh)
    left = torch.rand(b, generator=generator) * (w - ew)
    chosen = torch.rand(b, generator=generator) < share
    rows = torch.arange(h).view(1, h, 1)
    cols = torch.arange(w).view(1, 1, w)
    inside = (
        (rows >= top.view(b, 1, 1))
        & (rows < (top + eh).view(b, 1, 1))
        & (cols >= left.view(b, 1, 1))
        & (cols < (left + ew).view(b, 1, 1))
        & chosen.view(b, 1, 1)
    )
    return x.masked_fill(inside.unsqueeze(1).to(x.device), 0.0)
