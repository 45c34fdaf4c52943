"""Adapting a trained digit model to one person's handwriting (or another digit data set):

    digitread finetune default --samples my_digits/ --out runs/mine

Some samples are held out (stratified, seeded) and never trained on; the model is scored on them
before and after. Training comes in two phases, the usual recipe for a few labelled examples: first
the classifier head alone at a higher rate (the features MNIST taught stay as they are), then every
layer at a small rate. BatchNorm keeps the statistics it learned on MNIST (a few dozen images would
only make them noisy), and the samples are augmented with small rotations, shifts and zooms.

Trained on a hundred slanted digits alone, a model forgets the rest: the shipped model fell from 99.6%
to 77.9% on MNIST test. So each batch of samples comes with as many MNIST training digits (replay)
when MNIST is at hand, which keeps what the model knew (docs/training.md has the figures).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from digitread.checkpoint import load_model, save_model
from digitread.config import AugmentConfig
from digitread.data.augment import random_affine
from digitread.data.samples import load_samples
from digitread.data.tensors import images_to_tensor, normalize
from digitread.errors import ConfigError, DataError
from digitread.runtime import predict_logits


@dataclass
class FinetuneConfig:
    holdout: float = 0.25  # share of the samples held out to score the model before and after
    head_epochs: int = 15  # phase 1: the head alone
    epochs: int = 15  # phase 2: every layer
    head_lr: float = 3e-3
    lr: float = 3e-4
    batch_size: int = 32
    weight_decay: float = 1e-4
    label_smoothing: float = 0.05
    augment: bool = True
    replay: bool = True  # mix MNIST training digits into every batch, when MNIST can be found
    seed: int = 0

    def check(self) -> None:
        if not 0 < self.holdout < 1:
            raise ConfigError(f"--holdout is a share of the samples, between 0 and 1; got {self.holdout}")
        if self.head_epochs < 0 or self.epochs < 0 or self.head_epochs + self.epochs == 0:
            raise ConfigError("give at least one epoch of training (--head-epochs, --epochs)")
        if min(self.head_lr, self.lr) <= 0 or self.batch_size < 1:
            raise ConfigError("learning rates and the batch size must be positive")


AUGMENT = AugmentConfig(rotate=8, translate=0.08, scale=0.08)


def _head(model: nn.Module) -> nn.Linear:
    """The classifier: the last linear layer, which maps features to the ten digits."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears or linears[-1].out_features != 10:
        raise ConfigError(f"{model.arch}: no classifier head (a last linear layer to 10 digits) to fine-tune")
    return linears[-1]


def _split(labels: np.ndarray, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    n = len(labels)
    held = max(1, round(share * n))
    if n - held < 1:
        raise DataError(f"{n} samples are too few to hold {held} out and still train; bring more")
    counts = np.bincount(labels, minlength=10)
    classes = int((counts > 0).sum())
    # sklearn can stratify only with at least one sample of each class on each side
    stratify = labels if counts[counts > 0].min() >= 2 and held >= classes and n - held >= classes else None
    train, hold = train_test_split(np.arange(n), test_size=held, stratify=stratify, random_state=seed)
    return np.sort(train), np.sort(hold)


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, preprocess: dict) -> float:
    return float((predict_logits(model, x, 500, preprocess).argmax(1) == y).float().mean())


def _train(model, x, y, params, lr, epochs, cfg: FinetuneConfig, preprocess, gen, log, replay=None) -> None:
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    for epoch in range(1, epochs + 1):
        model.train()
        for m in model.modules():  # keep MNIST's BatchNorm statistics: a few images would only add noise
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
        order = torch.randperm(len(y), generator=gen)
        total = 0.0
        for i in range(0, len(y), cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            xb, yb = x[idx], y[idx]
            if replay is not None:  # as many digits MNIST taught it as there are samples in the batch
                pick = torch.randint(0, len(replay[1]), (len(idx),), generator=gen)
                xb, yb = torch.cat([xb, replay[0][pick]]), torch.cat([yb, replay[1][pick]])
            xb = xb.float().div_(255.0)
            if cfg.augment:
                xb = random_affine(xb, AUGMENT, gen)
            loss = loss_fn(model(normalize(xb, preprocess)), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        log(epoch, total / len(y))


def _mnist_replay(data_dir: str | None) -> tuple[torch.Tensor, torch.Tensor, Any] | None:
    """MNIST's training digits, if they are on this machine (never downloaded for this); with the data."""
    from digitread.data.mnist import load_mnist

    try:
        data = load_mnist(data_dir, val_size=0, seed=0, download=False)
    except DataError:
        return None
    return images_to_tensor(data.train.images), torch.from_numpy(data.train.labels), data


def finetune(
    base: str | Path,
    samples: str | Path,
    out: str | Path,
    cfg: FinetuneConfig | None = None,
    log=None,
    data_dir: str | None = None,
) -> dict[str, Any]:
    """Fine-tune the model folder ``base`` on the labelled ``samples`` and save it to ``out``; returns the
    metrics written to ``out/config.json`` (held-out accuracy before and after, among others)."""
    from digitread.inference.io import load_image
    from digitread.inference.normalize import normalize_digit
    from digitread.inference.predictor import resolve_model_dir

    cfg = cfg or FinetuneConfig()
    cfg.check()
    log = log or (lambda phase, epoch, loss: None)
    base_dir = resolve_model_dir(base)
    model = load_model(base_dir)
    if model.arch == "digit_ensemble":
        raise ConfigError("fine-tune each member of an ensemble, then build the ensemble again")
    preprocess = model.config.get("preprocess")
    head = _head(model)

    fields, labels, problems = load_samples(samples, lambda p: normalize_digit(load_image(p, str(p)), preprocess))
    train_idx, hold_idx = _split(labels, cfg.holdout, cfg.seed)
    x, y = images_to_tensor(fields), torch.from_numpy(labels)
    x_train, y_train, x_hold, y_hold = x[train_idx], y[train_idx], x[hold_idx], y[hold_idx]
    before = _accuracy(model, x_hold, y_hold, preprocess)

    found = _mnist_replay(data_dir) if cfg.replay else None
    replay = found[:2] if found else None
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    for p in model.parameters():
        p.requires_grad_(False)
    for p in head.parameters():
        p.requires_grad_(True)
    _train(
        model,
        x_train,
        y_train,
        list(head.parameters()),
        cfg.head_lr,
        cfg.head_epochs,
        cfg,
        preprocess,
        gen,
        lambda e, loss: log("head", e, loss),
        replay,
    )
    for p in model.parameters():
        p.requires_grad_(True)
    _train(
        model,
        x_train,
        y_train,
        list(model.parameters()),
        cfg.lr,
        cfg.epochs,
        cfg,
        preprocess,
        gen,
        lambda e, loss: log("all", e, loss),
        replay,
    )
    model.eval()
    after = _accuracy(model, x_hold, y_hold, preprocess)

    metrics = {
        "holdout_accuracy_before": before,
        "holdout_accuracy_after": after,
        "samples": len(labels),
        "trained_on": len(train_idx),
        "held_out": len(hold_idx),
        "unreadable_samples": len(problems),
        "base_test_accuracy": model.config.get("metrics", {}).get("test_accuracy"),
        "replay": replay is not None,
    }
    if found:  # what it still knows of MNIST, on the test set it never trained on
        x_test, y_test = images_to_tensor(found[2].test.images), torch.from_numpy(found[2].test.labels)
        metrics["test_accuracy"] = _accuracy(model, x_test, y_test, preprocess)
    extra = {
        "finetuned_from": str(base_dir),
        "finetune": dataclasses.asdict(cfg),
        # The base's temperature is kept: too few held-out samples to fit a new one honestly.
        **({"calibration": model.config["calibration"]} if "calibration" in model.config else {}),
    }
    dataset = {"name": "samples", "folder": str(samples), "count": len(labels)}
    save_model(model, out, metrics=metrics, preprocess=preprocess, dataset=dataset, extra=extra)
    return {**metrics, "out": str(out), "problems": problems}
