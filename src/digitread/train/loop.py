"""The training loop, built for speed on a CPU: the whole training set stays in memory as one uint8
tensor, batches are sliced from it and augmented as tensors (no DataLoader, no per-sample Python),
convolutional models run channels_last under bf16 autocast where the hardware has it.

Every epoch ends with an atomic checkpoint (model, optimizer, schedule, random states, history), so
``resume=True`` continues an interrupted run exactly where it stopped.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from digitread._io import atomic_write_json
from digitread.checkpoint import save_model
from digitread.config import RunConfig
from digitread.data.augment import random_affine
from digitread.data.mnist import MnistData
from digitread.data.outliers import make_outliers
from digitread.data.tensors import images_to_tensor, normalize, training_digits
from digitread.errors import ConfigError
from digitread.eval.calibration import calibration_entry
from digitread.runtime import autocast, has_conv, pick_device, predict_logits, prepare_model, set_threads, use_bf16
from digitread.train import distributed
from digitread.train.logging import NullLogger
from digitread.train.optim import build_optimizer, build_schedule
from digitread.train.state import CHECKPOINT_FILE, HISTORY_FILE, RunState, TrainingDiverged, check_finite

__all__ = ["CHECKPOINT_FILE", "HISTORY_FILE", "RUN_CONFIG_FILE", "FitResult", "Probe", "TrainingDiverged", "fit"]

RUN_CONFIG_FILE = "train_config.json"

# Called as probe(model, step, train_seconds) every ``probe_every`` steps, with the model in eval mode
# and the clock stopped: how benchmarks measure the time to reach an accuracy without slowing training.
Probe = Callable[[nn.Module, int, float], None]


@dataclass
class FitResult:
    model: nn.Module
    history: list[dict[str, Any]]
    metrics: dict[str, Any]
    out_dir: Path
    stopped_early: bool = False


def seed_everything(seed: int) -> None:
    """Seed every generator a run touches; call it before the model is built so the init is seeded too."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _accuracy_and_loss(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int, bf16: bool
) -> tuple[float, float]:
    logits = predict_logits(model, x, batch, bf16=bf16)
    loss = nn.functional.cross_entropy(logits, y.to(logits.device)).item()
    acc = (logits.argmax(1).cpu() == y.cpu()).float().mean().item()
    return acc, loss


def start_run(
    model: nn.Module,
    cfg: RunConfig,
    out_dir: str | Path,
    device: str | None,
    group: distributed.Group = distributed.SINGLE,
) -> tuple[Path, torch.device, bool, nn.Module]:
    """What every training run does first: the run folder with its settings, threads, device,
    precision, and the model moved there. Returns (out_dir, device, bf16, model)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if group.is_main:
        atomic_write_json(out_dir / RUN_CONFIG_FILE, cfg.to_dict())
    set_threads(distributed.threads_for(group, cfg.train.threads))
    dev = pick_device(distributed.device_for(group, device))
    bf16 = use_bf16(cfg.train.precision, model, dev)
    return out_dir, dev, bf16, prepare_model(model, dev)


def fit(
    model: nn.Module,
    data: MnistData,
    cfg: RunConfig,
    out_dir: str | Path,
    logger: NullLogger | None = None,
    resume: bool = False,
    progress: bool = True,
    device: str | None = None,
    probe: Probe | None = None,
    probe_every: int = 0,
) -> FitResult:
    """Train ``model`` on ``data`` as ``cfg`` says, writing checkpoints and the final model folder to ``out_dir``.

    >>> result = fit(create_model("cnn_small"), load_mnist(), RunConfig(), "runs/demo")  # doctest: +SKIP
    """
    tc, ac = cfg.train, cfg.augment
    # Under torchrun: one process of several, each with its share of every batch (train/distributed.py).
    group = distributed.join(device)
    logger = logger if logger is not None and group.is_main else NullLogger()
    progress = progress and group.is_main
    out_dir, dev, bf16, model = start_run(model, cfg, out_dir, device, group)
    channels_last = has_conv(model)
    preprocess = getattr(model, "config", {}).get("preprocess")

    # One generator draws the batch order and the augmentation; several processes share the order
    # through the sampler and each draws its own augmentation.
    gen = torch.Generator().manual_seed(tc.seed + 1_000_003 * group.rank)
    d = cfg.data
    images, labels = training_digits(
        data.train.images, data.train.labels, d.train_subset, d.bootstrap, d.pen_digits, tc.seed
    )
    x_train, y_train = images_to_tensor(images), torch.from_numpy(np.ascontiguousarray(labels))
    x_train, y_train = x_train.to(dev), y_train.to(dev)
    n = len(y_train)
    batch = min(tc.batch_size, n)
    steps_per_epoch = n // batch  # whole batches only: BatchNorm dislikes a final batch of a few images
    share = distributed.share_of_batch(batch, group)
    sampler = None
    if group.active:
        from torch.utils.data import DistributedSampler

        sampler = DistributedSampler(range(n), group.world, group.rank, shuffle=True, seed=tc.seed, drop_last=True)
        steps_per_epoch = min(steps_per_epoch, len(sampler) // share)
    if tc.limit_batches:
        steps_per_epoch = min(steps_per_epoch, tc.limit_batches)
    x_val = images_to_tensor(data.val.images) if data.val is not None else None
    y_val = torch.from_numpy(data.val.labels) if data.val is not None else None

    x_outliers = None
    if tc.outliers > 0:
        # A quarter-batch of fragments and pairs of training digits rides along with every batch.
        outliers = make_outliers(
            data.train.images, 20000, seed=tc.seed, letters=tc.outlier_letters, marks=tc.outlier_marks
        )
        x_outliers = images_to_tensor(outliers).to(dev)
    # The compiled module shares the model's parameters; only the training forward pass goes through it.
    forward = model
    if group.active:
        from torch.nn.parallel import DistributedDataParallel

        forward = DistributedDataParallel(model)  # averages the gradients across processes in backward
    forward = torch.compile(forward) if tc.compile else forward
    optimizer = build_optimizer(model, tc)
    schedule = build_schedule(optimizer, tc, tc.epochs * steps_per_epoch)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=tc.label_smoothing)

    run = RunState()
    if resume:
        run, saved = RunState.resume(out_dir, model, optimizer, schedule)
        if group.active and len(saved.get("generators", [])) != group.world:
            raise ConfigError(
                f"{out_dir} was trained by {len(saved.get('generators', [None]))} process(es): resume it with as many"
            )
        if not group.active and "generator" not in saved:
            processes = len(saved.get("generators", []))
            raise ConfigError(f"{out_dir} was trained by {processes} processes: resume it under torchrun with as many")
        gen.set_state(saved["generators"][group.rank] if group.active else saved["generator"])
        logger.message(f"resuming {out_dir} after epoch {run.epoch} (step {run.step})")

    stopped_early = False
    wall_start = time.perf_counter()
    for epoch in range(run.epoch + 1, tc.epochs + 1):
        if run.should_stop(tc.patience):
            stopped_early = True
            break
        model.train()
        if sampler is not None:
            sampler.set_epoch(epoch)
            order = torch.tensor(list(sampler), device=dev)  # this process's part of the epoch
        else:
            order = torch.randperm(n, generator=gen).to(dev)
        loss_sum = torch.zeros((), device=dev)
        correct = torch.zeros((), device=dev, dtype=torch.long)
        seen = 0
        bar = tqdm(
            total=steps_per_epoch, desc=f"epoch {epoch}/{tc.epochs}", disable=not progress, leave=False, unit="batch"
        )
        t0 = time.perf_counter()
        paused = 0.0  # seconds spent in the probe this epoch, kept off the training clock
        for i in range(steps_per_epoch):
            idx = order[i * share : (i + 1) * share]
            xb = x_train[idx].float().div_(255.0)  # (B, 1, 28, 28) in 0-1
            n_out = 0
            if x_outliers is not None:
                n_out = len(idx) // 4
                pick = torch.randint(0, len(x_outliers), (n_out,), generator=gen).to(dev)
                xb = torch.cat([xb, x_outliers[pick].float().div_(255.0)])  # (B + B/4, 1, 28, 28)
            if ac.enabled:
                xb = random_affine(xb, ac, gen)
            xb = normalize(xb, preprocess)
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            yb = y_train[idx]
            with autocast(dev, bf16):
                logits = forward(xb).float()  # (B [+ B/4 outliers], 10)
            if n_out:
                # Outlier exposure: cross-entropy to the uniform distribution on the fragments.
                outlier_loss = -torch.log_softmax(logits[-n_out:], dim=1).mean()
                logits = logits[:-n_out]
                loss = loss_fn(logits, yb) + tc.outliers * outlier_loss
            else:
                loss = loss_fn(logits, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            run.step += 1
            loss_sum += loss.detach() * len(idx)
            correct += (logits.detach().argmax(1) == yb).sum()
            seen += len(idx)
            if i % 25 == 0 or i == steps_per_epoch - 1:
                running = (loss_sum / seen).item()
                # Every process stops together: one that stopped alone would leave the others waiting.
                running = distributed.worst(running, group)
                check_finite(running, epoch, run.step, tc.lr, out_dir)
                bar.set_postfix(loss=f"{running:.4f}", acc=f"{(correct / seen).item():.4f}", refresh=False)
                logger.log_scalars(run.step, {"loss": loss.item(), "lr": schedule.get_last_lr()[0]})
            bar.update(1)
            if probe is not None and probe_every and run.step % probe_every == 0 and group.is_main:
                stopped = time.perf_counter()
                model.eval()
                with torch.inference_mode():
                    probe(model, run.step, run.train_seconds + stopped - t0 - paused)
                model.train()
                paused += time.perf_counter() - stopped
        bar.close()
        epoch_seconds = time.perf_counter() - t0 - paused
        run.train_seconds += epoch_seconds
        record: dict[str, Any] = {
            "epoch": epoch,
            "train_loss": (loss_sum / max(seen, 1)).item(),
            "train_acc": (correct / max(seen, 1)).item(),
            "lr": schedule.get_last_lr()[0],
            "seconds": round(epoch_seconds, 3),
        }
        if x_val is not None and group.is_main:
            record["val_acc"], record["val_loss"] = _accuracy_and_loss(model, x_val, y_val, tc.eval_batch_size, bf16)
        record = distributed.broadcast(record, group)  # every process keeps rank 0's record, so all stop alike
        run.end_epoch(record, model, record.get("val_acc"))
        generators = distributed.gather(gen.get_state(), group)
        if group.is_main:
            generator = {"generators": generators} if group.active else {"generator": generators[0]}
            run.save(out_dir, model, optimizer, schedule, **generator)
        logger.log_epoch(epoch, record)

    val_accuracy = run.keep_weights(model, tc.keep, "val_acc")
    if not group.is_main:  # rank 0 evaluates and saves; the others wait for it, then end
        distributed.leave(group)
        return FitResult(model.eval(), run.history, {"steps": run.step}, out_dir, stopped_early)
    metrics: dict[str, Any] = {
        "epochs_run": len(run.history),
        "steps": run.step,
        "train_seconds": round(run.train_seconds, 2),
        "wall_seconds_this_session": round(time.perf_counter() - wall_start, 2),
        **({"processes": group.world} if group.active else {}),
    }
    calibration = None
    if x_val is not None:
        metrics["val_accuracy"] = val_accuracy
        val_logits = predict_logits(model, x_val, tc.eval_batch_size).cpu()
        calibration = calibration_entry(val_logits, y_val, f"validation split ({len(y_val)} images)")
    x_test = images_to_tensor(data.test.images)
    metrics["test_accuracy"], metrics["test_loss"] = _accuracy_and_loss(
        model, x_test, torch.from_numpy(data.test.labels), tc.eval_batch_size, bf16=False
    )
    model = model.to(memory_format=torch.contiguous_format)
    save_model(
        model.cpu(),
        out_dir,
        metrics=metrics,
        dataset={
            "name": "mnist",
            "checksums": data.checksums,
            "train_images": n,
            "val_images": len(data.val or []),
            "split": data.split,  # an ensemble calibrates on images none of its members trained on
        },
        extra={"train": cfg.to_dict(), **({"calibration": calibration} if calibration else {})},
    )
    logger.message(
        f"test accuracy {metrics['test_accuracy']:.4f} after {len(run.history)} epochs, "
        f"{metrics['train_seconds']:.1f} s of training; model saved to {out_dir}"
    )
    distributed.leave(group)
    return FitResult(model.eval(), run.history, metrics, out_dir, stopped_early)
