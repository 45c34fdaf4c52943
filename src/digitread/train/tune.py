"""Hyperparameter search with Optuna:

    digitread tune --model cnn_small --trials 30 --timeout 1800 --out runs/tune

Each trial trains the model on a short schedule and is scored by its best validation accuracy (never
the test set). TPE proposes the settings by default (random or grid search on request), and poor
trials are stopped after an epoch or two by a median pruner. The study lives in SQLite
(``OUT/study.db``), so a search that stops resumes where it was with the same command. The best
settings are written as a recipe (``OUT/best.json``, usable as ``digitread train --recipe
OUT/best.json``), with a table (``OUT/trials.csv``) and a plot (``OUT/trials.png``) of every trial.
"""

from __future__ import annotations

import copy
import csv
import io
import math
from pathlib import Path
from typing import Any

from digitread._io import atomic_write, atomic_write_bytes, atomic_write_json
from digitread.config import RunConfig
from digitread.errors import ConfigError
from digitread.train.logging import NullLogger

SAMPLERS = ("tpe", "random", "grid")
# What is searched, and the grid's values for --sampler grid.
GRID = {"lr": [1e-3, 3e-3, 1e-2], "batch_size": [128, 256], "augment": [0.0, 1.0]}


def _suggest(trial, grid: bool) -> dict[str, Any]:
    if grid:
        return {
            "lr": trial.suggest_categorical("lr", GRID["lr"]),
            "batch_size": trial.suggest_categorical("batch_size", GRID["batch_size"]),
            "augment": trial.suggest_categorical("augment", GRID["augment"]),
        }
    return {
        "lr": trial.suggest_float("lr", 3e-4, 3e-2, log=True),
        "weight_decay": trial.suggest_float("weight_decay", 1e-5, 1e-1, log=True),
        "dropout": trial.suggest_float("dropout", 0.0, 0.5),
        "label_smoothing": trial.suggest_float("label_smoothing", 0.0, 0.2),
        "batch_size": trial.suggest_categorical("batch_size", [64, 128, 256]),
        "augment": trial.suggest_float("augment", 0.0, 1.0),
    }


def apply(base: RunConfig, params: dict[str, Any]) -> RunConfig:
    """``base`` with a trial's settings; ``augment`` scales rotation (10 degrees), shift and zoom (0.1)."""
    cfg = copy.deepcopy(base)
    for key in ("lr", "weight_decay", "dropout", "label_smoothing", "batch_size"):
        if key in params:
            setattr(cfg.train, key, params[key])
    if "augment" in params:
        a = params["augment"]
        cfg.augment.rotate, cfg.augment.translate, cfg.augment.scale = 10 * a, 0.1 * a, 0.1 * a
    return cfg


class _Reporter(NullLogger):
    """Tells Optuna each epoch's validation accuracy, and stops a trial the pruner gives up on."""

    def __init__(self, trial):
        self.trial = trial

    def log_epoch(self, epoch: int, scalars: dict) -> None:
        import optuna

        self.trial.report(scalars.get("val_acc", 0.0), epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned()


def tune(
    base: RunConfig,
    out: str | Path,
    trials: int,
    timeout: float | None,
    sampler: str = "tpe",
    seed: int = 0,
    progress=None,
) -> dict[str, Any]:
    try:
        import optuna
    except ImportError:
        raise ConfigError("digitread tune needs Optuna: pip install 'digitread[tune]'") from None
    from digitread.data.mnist import load_mnist
    from digitread.models import create_model
    from digitread.train.loop import TrainingDiverged, fit, seed_everything

    if sampler not in SAMPLERS:
        raise ConfigError(f"unknown sampler {sampler!r}; choose {', '.join(SAMPLERS)}")
    if base.data.val_size <= 0:
        raise ConfigError("tuning scores trials on the validation split: --val-size must be above 0")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    samplers = {
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
        "grid": lambda: optuna.samplers.GridSampler(GRID, seed=seed),
    }
    study = optuna.create_study(
        study_name=f"digitread-{base.train.model}-{sampler}",
        storage=f"sqlite:///{out / 'study.db'}",
        load_if_exists=True,
        direction="maximize",
        sampler=samplers[sampler](),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1),
    )
    data = load_mnist(base.data.data_dir, base.data.val_size, base.train.seed)

    def objective(trial) -> float:
        cfg = apply(base, _suggest(trial, sampler == "grid"))
        seed_everything(cfg.train.seed)
        overrides = {} if cfg.train.dropout is None else {"dropout": cfg.train.dropout}
        try:
            model = create_model(cfg.train.model, **overrides)
        except ConfigError:  # this model has no dropout to set
            model = create_model(cfg.train.model)
        result = fit(model, data, cfg, out / "trials" / str(trial.number), _Reporter(trial), progress=False)
        trial.set_user_attr("train_seconds", result.metrics["train_seconds"])
        return float(result.metrics["val_accuracy"])

    done = sum(t.state.is_finished() for t in study.trials)
    remaining = max(0, trials - done)
    callbacks = [lambda study, trial: progress(trial)] if progress else []
    if remaining:
        # A diverging trial (a learning rate too high) fails alone; the search goes on.
        study.optimize(objective, n_trials=remaining, timeout=timeout, callbacks=callbacks, catch=(TrainingDiverged,))
    return write_results(study, base, out)


def write_results(study, base: RunConfig, out: Path) -> dict[str, Any]:
    import optuna

    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not finished:
        raise ConfigError("no trial finished: give more --trials or a longer --timeout")
    best = study.best_trial
    cfg = apply(base, best.params)
    recipe = {
        "notes": f"found by digitread tune ({len(study.trials)} trials, best validation accuracy {best.value:.4f})",
        "measured": f"validation accuracy {best.value:.4f} after {cfg.train.epochs} epochs (trial {best.number})",
        # The model and what was searched, with the optimizer and schedule they were found with; not the
        # trials' short schedule or subset (set --epochs and the data when training with it).
        "train": {
            "model": cfg.train.model,
            "optimizer": cfg.train.optimizer,
            "schedule": cfg.train.schedule,
            **{
                k: getattr(cfg.train, k)
                for k in ("lr", "weight_decay", "dropout", "label_smoothing", "batch_size")
                if k in best.params
            },
        },
        **(
            {"augment": {k: getattr(cfg.augment, k) for k in ("rotate", "translate", "scale")}}
            if "augment" in best.params
            else {}
        ),
    }
    atomic_write_json(out / "best.json", recipe)

    names = sorted({k for t in study.trials for k in t.params})
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["trial", "state", "val_accuracy", "train_seconds", *names])
    for t in study.trials:
        value = "" if t.value is None else f"{t.value:.4f}"
        seconds = t.user_attrs.get("train_seconds", "")
        writer.writerow([t.number, t.state.name.lower(), value, seconds, *(t.params.get(n, "") for n in names)])
    atomic_write(out / "trials.csv", lambda tmp: tmp.write_text(buffer.getvalue()))
    _plot(study, out / "trials.png")
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    return {
        "best": best.params,
        "val_accuracy": best.value,
        "trial": best.number,
        "trials": len(study.trials),
        "pruned": pruned,
        "out": str(out),
    }


def _plot(study, path: Path) -> None:
    """Each trial's validation accuracy in order, pruned ones marked, and the best so far."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna

    fig, ax = plt.subplots(figsize=(7, 4))
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    ax.scatter([t.number for t in done], [t.value for t in done], label="finished", color="tab:blue")
    last = [t.intermediate_values[max(t.intermediate_values)] for t in pruned if t.intermediate_values]
    ax.scatter(
        [t.number for t in pruned if t.intermediate_values],
        last,
        label="pruned (last epoch)",
        color="tab:gray",
        marker="x",
    )
    best, running = [], -math.inf
    for t in sorted(done, key=lambda t: t.number):
        running = max(running, t.value)
        best.append((t.number, running))
    if best:
        ax.step(*zip(*best, strict=True), where="post", color="tab:orange", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel("validation accuracy")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
