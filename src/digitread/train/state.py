"""What a training run carries from epoch to epoch, and its atomic checkpoint: shared by every task's loop."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from digitread._io import atomic_write_json
from digitread.checkpoint import load_checkpoint, save_checkpoint
from digitread.errors import DigitreadError

CHECKPOINT_FILE = "checkpoint.safetensors"
HISTORY_FILE = "history.json"


class TrainingDiverged(DigitreadError):
    """The loss became NaN or infinite."""


def check_finite(loss: float, epoch: int, step: int, lr: float, out_dir: Path) -> None:
    if not math.isfinite(loss):
        raise TrainingDiverged(
            f"loss became {loss} at epoch {epoch}, step {step}: lower --lr (now {lr}); "
            f"the last good checkpoint is kept in {out_dir / CHECKPOINT_FILE}"
        )


@dataclass
class RunState:
    """Progress and the best validation epoch so far; ``best_score`` is saved as ``best_acc``."""

    epoch: int = 0
    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_score: float = -1.0
    best_model: dict[str, torch.Tensor] | None = None
    bad_epochs: int = 0
    train_seconds: float = 0.0

    def should_stop(self, patience: int) -> bool:
        return bool(patience) and self.bad_epochs >= patience

    def end_epoch(self, record: dict[str, Any], model: nn.Module, score: float | None) -> None:
        """Count the epoch; keep a copy of the weights when ``score`` (validation) is the best yet."""
        self.epoch = record["epoch"]
        self.history.append(record)
        if score is None:
            return
        if score > self.best_score:
            self.best_score, self.bad_epochs = score, 0
            self.best_model = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            self.bad_epochs += 1

    def keep_weights(self, model: nn.Module, keep: str, score_key: str) -> float | None:
        """End the run on the weights ``keep`` names: ``best``, the best validation epoch's (loaded into
        ``model``), or ``last``, the final epoch's (already in it). Returns their validation score
        (``score_key`` of the epoch's record; None for a run without validation)."""
        if keep == "last" or self.best_model is None:
            return self.history[-1].get(score_key) if self.history else None
        model.load_state_dict(self.best_model)
        return self.best_score

    def save(self, out_dir: Path, model: nn.Module, optimizer, schedule, **extra: Any) -> None:
        """The checkpoint (everything ``--resume`` needs) and history.json, each written atomically."""
        save_checkpoint(
            out_dir / CHECKPOINT_FILE,
            {
                "epoch": self.epoch,
                "step": self.step,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "history": self.history,
                "best_acc": self.best_score,
                "bad_epochs": self.bad_epochs,
                "train_seconds": self.train_seconds,
                **extra,
                **({"best_model": self.best_model} if self.best_model is not None else {}),
            },
        )
        atomic_write_json(out_dir / HISTORY_FILE, self.history)

    @classmethod
    def resume(cls, out_dir: Path, model: nn.Module, optimizer, schedule) -> tuple[RunState, dict[str, Any]]:
        """Restore model, optimizer, schedule and the torch random state; the raw checkpoint is returned
        too, for what only one loop keeps (its own generators)."""
        saved = load_checkpoint(out_dir / CHECKPOINT_FILE)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        _match_parameter_layouts(optimizer)
        schedule.load_state_dict(saved["schedule"])
        torch.set_rng_state(saved["torch_rng"])
        state = cls(
            saved["epoch"],
            saved["step"],
            saved["history"],
            saved["best_acc"],
            saved.get("best_model"),
            saved["bad_epochs"],
            saved["train_seconds"],
        )
        return state, saved


def _match_parameter_layouts(optimizer: torch.optim.Optimizer) -> None:
    """Give the optimizer's per-parameter tensors their parameter's memory layout again. A checkpoint
    stores them contiguous; a channels_last convolution's moments must be channels_last, as the fused
    Adam kernels read a parameter, its gradient and its moments as flat memory in one order."""
    for param, state in optimizer.state.items():
        for key, value in state.items():
            if torch.is_tensor(value) and value.shape == param.shape and value.stride() != param.stride():
                state[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)
