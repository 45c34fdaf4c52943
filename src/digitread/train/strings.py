"""Training a sequence model (task ``strings``): synthetic number strips in, CTC loss out.

Strips are made on the fly from MNIST *training* digits by worker processes while the model trains
(``data.strips``); validation strips come from the held-out validation digits, with a fixed seed,
so every epoch is judged on the same strips. Each epoch draws its own seeded stream, and ends
with an atomic checkpoint, so ``resume=True`` continues an interrupted run where it stopped. At the
end a temperature is fitted on the validation strips so that a string's probability means what it
says.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from digitread.checkpoint import save_model
from digitread.config import RunConfig
from digitread.data.mnist import MnistData
from digitread.data.strips import StripConfig, StripStream, collate_strips, make_strips
from digitread.data.tensors import training_digits
from digitread.errors import DigitreadError
from digitread.inference.ctc import greedy_decode, string_log_probs
from digitread.inference.sequence import STRIP_INPUT, strip_lengths, strip_log_probs, strip_tensor
from digitread.models.crnn import BLANK, frame_width, reads_points
from digitread.runtime import autocast
from digitread.train.logging import NullLogger
from digitread.train.loop import FitResult, start_run
from digitread.train.optim import build_optimizer, build_schedule
from digitread.train.state import RunState, check_finite

VAL_SEED = 1_000_003  # validation strips: seed VAL_SEED + the training seed, the same every epoch
POINT_CHANCE = 0.3  # strips with a decimal point, for a model with a point class


def strips_for(points: bool) -> StripConfig:
    """The strips a model (or an ensemble) learns from and is judged on: with their points labelled, and
    decimal points drawn in, when it reads points (``models.crnn.reads_points``)."""
    return StripConfig(points=True, decimal_point=POINT_CHANCE) if points else StripConfig()


def _val_batches(strips: list[tuple[np.ndarray, str, np.ndarray]], size: int = 200):
    for i in range(0, len(strips), size):
        yield collate_strips([(s, label) for _, label, s in strips[i : i + size]])


def evaluate_strips(
    model: nn.Module, strips: list[tuple[np.ndarray, str, np.ndarray]], temperature: float = 1.0
) -> dict[str, Any]:
    """Exact-string accuracy, CTC loss and per-strip (confidence, correct) for greedy decoding."""
    model.eval()
    correct, losses, confidences, hits = 0, [], [], []
    for x, widths, _, labels in _val_batches(strips):
        log_probs, lengths = strip_log_probs(model, x, widths)
        log_probs = (log_probs / temperature).log_softmax(2)
        probs = log_probs.exp().numpy()
        texts = [greedy_decode(p[:n]).text for p, n in zip(probs, lengths.tolist(), strict=True)]
        losses.extend((-string_log_probs(log_probs, lengths, labels)).tolist())
        confidences.extend(string_log_probs(log_probs, lengths, texts).exp().tolist())
        for text, label in zip(texts, labels, strict=True):
            hits.append(text == label)
            correct += text == label
    # A label CTC cannot align within its strip's columns (a long number squeezed into a short strip)
    # has an infinite loss: it would make the mean infinite and history.json invalid JSON ("Infinity").
    finite = [loss for loss in losses if np.isfinite(loss)]
    return {
        "exact": correct / len(strips),
        "loss": float(np.mean(finite)) if finite else None,
        "unalignable": len(losses) - len(finite),
        "confidences": np.array(confidences),
        "correct": np.array(hits),
    }


def fit_strip_temperature(model: nn.Module, strips) -> float:
    """The temperature minimising the validation strings' negative log-likelihood (a 1-D search)."""
    model.eval()
    batches = [(strip_log_probs(model, x, w), labels) for x, w, _, labels in _val_batches(strips)]

    def nll(t: float) -> float:
        return float(
            np.mean(
                [(-string_log_probs((lp / t).log_softmax(2), n, labels)).mean().item() for (lp, n), labels in batches]
            )
        )

    grid = np.exp(np.linspace(np.log(0.5), np.log(4.0), 22))
    return float(min(grid, key=nll))


def fit_strings(
    model: nn.Module,
    data: MnistData,
    cfg: RunConfig,
    out_dir: str | Path,
    logger: NullLogger | None = None,
    resume: bool = False,
    progress: bool = True,
    device: str | None = None,
) -> FitResult:
    """Train a CTC sequence model on synthetic strips as ``cfg`` says; the final model goes to ``out_dir``."""
    from digitread.eval.calibration import calibration_error

    tc = cfg.train
    logger = logger or NullLogger()
    out_dir, dev, bf16, model = start_run(model, cfg, out_dir, device)
    if data.val is None:
        raise DigitreadError("the strings task needs validation digits: set --val-size above 0")
    d = cfg.data
    train_images, train_labels = training_digits(
        data.train.images, data.train.labels, d.train_subset, d.bootstrap, d.pen_digits, tc.seed
    )
    strips = strips_for(reads_points(model))
    logger.message(f"making {tc.val_strips} validation strips from the validation digits")
    val = make_strips(data.val.images, data.val.labels, tc.val_strips, seed=VAL_SEED + tc.seed, cfg=strips)
    # Validation keeps the plain strips, so every run's val_exact is measured on the same kind of strip.
    train_strips = dataclasses.replace(
        strips, small=cfg.data.small_strips, touching=cfg.data.touching_strips, pen_commas=cfg.data.pen_commas
    )

    steps_per_epoch = tc.strips_per_epoch // tc.batch_size
    if tc.limit_batches:
        steps_per_epoch = min(steps_per_epoch, tc.limit_batches)
    optimizer = build_optimizer(model, tc)
    schedule = build_schedule(optimizer, tc, tc.epochs * steps_per_epoch)
    ctc = nn.CTCLoss(blank=BLANK, zero_infinity=True)

    run = RunState()
    if resume:
        run, _ = RunState.resume(out_dir, model, optimizer, schedule)
        logger.message(f"resuming {out_dir} after epoch {run.epoch} (step {run.step})")

    stopped_early = False
    wall_start = time.perf_counter()
    for epoch in range(run.epoch + 1, tc.epochs + 1):
        if run.should_stop(tc.patience):
            stopped_early = True
            break
        model.train()
        stream = StripStream(
            train_images, train_labels, steps_per_epoch, tc.batch_size, seed=tc.seed * 10_007 + epoch, cfg=train_strips
        )
        loader = torch.utils.data.DataLoader(
            stream, batch_size=None, num_workers=tc.workers, prefetch_factor=8 if tc.workers else None
        )
        bar = tqdm(
            total=steps_per_epoch, desc=f"epoch {epoch}/{tc.epochs}", disable=not progress, leave=False, unit="batch"
        )
        t0, loss_sum, seen = time.perf_counter(), 0.0, 0
        for i, (x, widths, targets, labels) in enumerate(loader):
            if i >= steps_per_epoch:
                break
            xb = strip_tensor(x.to(dev)).contiguous(memory_format=torch.channels_last)
            lengths = strip_lengths(widths, x.shape[-1], frame_width(model))
            with autocast(dev, bf16):
                logits = model(xb, lengths).float()  # (B, T, classes)
            log_probs = logits.log_softmax(2).transpose(0, 1)  # (T, B, classes), as CTCLoss wants
            loss = ctc(log_probs, targets.to(dev), lengths, torch.tensor([len(t) for t in labels]))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)  # CTC gives the odd huge gradient early on
            optimizer.step()
            schedule.step()
            run.step += 1
            loss_sum += loss.item() * len(labels)
            seen += len(labels)
            if i % 25 == 0 or i == steps_per_epoch - 1:
                running = loss_sum / seen
                check_finite(running, epoch, run.step, tc.lr, out_dir)
                bar.set_postfix(loss=f"{running:.4f}", refresh=False)
                logger.log_scalars(run.step, {"loss": loss.item(), "lr": schedule.get_last_lr()[0]})
            bar.update(1)
        bar.close()
        epoch_seconds = time.perf_counter() - t0
        run.train_seconds += epoch_seconds
        result = evaluate_strips(model, val)
        record: dict[str, Any] = {
            "epoch": epoch,
            "train_loss": loss_sum / max(seen, 1),
            "val_exact": result["exact"],
            "val_loss": result["loss"],
            "val_unalignable": result["unalignable"],
            "lr": schedule.get_last_lr()[0],
            "seconds": round(epoch_seconds, 3),
        }
        run.end_epoch(record, model, result["exact"])
        run.save(out_dir, model, optimizer, schedule)
        logger.log_epoch(epoch, record)

    val_exact = run.keep_weights(model, tc.keep, "val_exact")
    model = model.to(memory_format=torch.contiguous_format).cpu()
    temperature = fit_strip_temperature(model, val)
    before, after = evaluate_strips(model, val), evaluate_strips(model, val, temperature)
    calibration = {
        "temperature": round(temperature, 4),
        "fitted_on": f"{tc.val_strips} synthetic strips of validation digits",
        "ece_before": round(calibration_error(before["confidences"], before["correct"]), 4),
        "ece_after": round(calibration_error(after["confidences"], after["correct"]), 4),
    }
    metrics: dict[str, Any] = {
        "epochs_run": len(run.history),
        "steps": run.step,
        "train_seconds": round(run.train_seconds, 2),
        "wall_seconds_this_session": round(time.perf_counter() - wall_start, 2),
        "val_exact": val_exact,
    }
    save_model(
        model,
        out_dir,
        metrics=metrics,
        preprocess={"task": "strings", **STRIP_INPUT, "frame_width": frame_width(model)},
        dataset={"name": "mnist", "checksums": data.checksums, "train_digits": len(train_labels)},
        extra={"task": "strings", "train": cfg.to_dict(), "calibration": calibration, "strips": vars(train_strips)},
    )
    logger.message(
        f"validation strips read exactly: {metrics['val_exact']:.4f} after {len(run.history)} epochs, "
        f"{metrics['train_seconds']:.1f} s of training; model saved to {out_dir}"
    )
    return FitResult(model.eval(), run.history, metrics, out_dir, stopped_early)
