"""Running a model on this hardware: device, threads, precision, memory format and batched prediction."""

from __future__ import annotations

import contextlib
import os

import torch
from torch import nn

from digitread.data.tensors import normalize


def pick_device(name: str | None = None) -> torch.device:
    """``name`` if given, else CUDA when present, else the CPU."""
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def available_cores() -> int:
    """The cores this process may use (containers often see more CPUs than they get)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def set_threads(threads: int = 0) -> None:
    # PyTorch defaults to one thread per physical core; honour an explicit choice, and cap at the
    # cores this process may use.
    available = available_cores()
    torch.set_num_threads(max(1, min(threads or available, available)))


def has_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def cpu_has_bf16() -> bool:
    try:
        return bool(torch.backends.cpu.get_cpu_capability() in ("AVX512", "AVX512_BF16", "AMX")) and bool(
            torch.cpu._is_avx512_bf16_supported()
        )
    except (AttributeError, RuntimeError):
        return False


def use_bf16(precision: str, model: nn.Module, device: torch.device) -> bool:
    """bf16 autocast: where asked, or under ``auto`` for convolutional models on hardware with native bf16.

    MLPs and LSTMs here are too small for bf16 to pay for its casts (measured: no gain), so ``auto``
    keeps them in fp32.
    """
    if precision == "bf16":
        return True
    if precision == "fp32":
        return False
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported() and has_conv(model)
    return has_conv(model) and cpu_has_bf16()


def prepare_model(model: nn.Module, device: torch.device) -> nn.Module:
    """Move to ``device``; convolutional models go channels_last, which oneDNN runs markedly faster."""
    model = model.to(device)
    if has_conv(model):
        model = model.to(memory_format=torch.channels_last)
    return model


def autocast(device: torch.device, enabled: bool):
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


@torch.inference_mode()
def predict_logits(
    model: nn.Module,
    images: torch.Tensor,
    batch_size: int = 1000,
    preprocess: dict | None = None,
    bf16: bool = False,
) -> torch.Tensor:
    """Logits (N, 10) in float32 for uint8 images (N, 1, 28, 28), in batches, with the model in eval mode."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    conv = has_conv(model)
    out = []
    for start in range(0, len(images), batch_size):
        x = normalize(images[start : start + batch_size].to(device), preprocess)
        if conv:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, bf16):
            out.append(model(x).float())
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, 10)
