"""Settings, one dataclass per concern. CLI flags map one-to-one onto these fields; the resolved
settings are saved beside every run, and a recipe file (see ``recipes/``) is a partial set of them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from digitread._io import read_json_object
from digitread.errors import ConfigError


@dataclass
class DataConfig:
    data_dir: str | None = field(default=None, metadata={"help": "folder with the MNIST IDX files"})
    val_size: int = field(default=5000, metadata={"help": "images held out of training for validation"})
    train_subset: int = field(default=0, metadata={"help": "train on this many images only (0: all)"})
    bootstrap: int = field(
        default=0,
        metadata={"help": "train on the k-th bootstrap sample of the training set, drawn with replacement (0: off)"},
    )
    pen_digits: int = field(
        default=0,
        metadata={"help": "add this many digits drawn in the pen styles MNIST lacks (data/pen_digits.py) to training"},
    )
    small_strips: float = field(
        default=0.0,
        metadata={
            "help": "strings task: share of training strips scanned small (digits 10-16 pixels tall, blurred), "
            "as in old registers; validation strips are left as they are"
        },
    )
    touching_strips: float = field(
        default=0.3,
        metadata={
            "help": "strings task: chance that a training strip's digit is pushed left until it touches the ink "
            "before it (a thin 1 against the next digit, a point tucked under it); validation strips keep 0.3"
        },
    )
    pen_commas: float = field(
        default=0.0,
        metadata={
            "help": "strings task: chance that a training strip's comma is written as a pen writes one, from about "
            "the digits' middle down below the line (StripConfig.pen_commas); validation strips keep 0"
        },
    )


@dataclass
class AugmentConfig:
    rotate: float = field(default=10.0, metadata={"help": "max rotation, degrees"})
    translate: float = field(default=0.1, metadata={"help": "max shift, as a fraction of the image side"})
    scale: float = field(default=0.1, metadata={"help": "max relative zoom in or out"})
    noise: float = field(default=0.0, metadata={"help": "std of Gaussian pixel noise (pixels in 0-1)"})
    shear: float = field(default=0.0, metadata={"help": "max horizontal shear (slanted handwriting)"})
    stroke: float = field(default=0.0, metadata={"help": "share of images drawn thicker or thinner (pen width)"})
    elastic: float = field(
        default=0.0, metadata={"help": "elastic distortion: largest displacement of a smooth warp, in pixels (0: off)"}
    )
    erase: float = field(default=0.0, metadata={"help": "share of images with a random rectangle erased (0: off)"})

    @property
    def enabled(self) -> bool:
        return any(
            (self.rotate, self.translate, self.scale, self.noise, self.shear, self.stroke, self.elastic, self.erase)
        )


@dataclass
class TrainConfig:
    task: str = field(
        default="digits", metadata={"help": "digits (one digit per image) or strings (whole numbers, CTC)"}
    )
    model: str = field(default="cnn", metadata={"help": "registered model name (see `digitread models`)"})
    init: str | None = field(
        default=None,
        metadata={"help": "start from the weights of this model folder (same model): fine-tune it on new data"},
    )
    epochs: int = field(default=10, metadata={"help": "passes over the training set"})
    batch_size: int = field(default=256, metadata={"help": "images per training step"})
    optimizer: str = field(default="adamw", metadata={"help": "adam, adamw, rmsprop or sgd"})
    lr: float = field(default=3e-3, metadata={"help": "learning rate (peak rate for onecycle)"})
    momentum: float = field(default=0.9, metadata={"help": "momentum for sgd and rmsprop"})
    nesterov: bool = field(default=False, metadata={"help": "Nesterov momentum for sgd"})
    schedule: str = field(default="onecycle", metadata={"help": "constant, cosine or onecycle"})
    weight_decay: float = field(default=0.05, metadata={"help": "L2 penalty (decoupled for adamw)"})
    dropout: float | None = field(default=None, metadata={"help": "override the model's dropout"})
    label_smoothing: float = field(default=0.1, metadata={"help": "cross-entropy label smoothing"})
    patience: int = field(
        default=0, metadata={"help": "stop after this many epochs without a better val accuracy (0: never)"}
    )
    keep: str = field(
        default="best",
        metadata={
            "help": "the weights a run ends with: best (the epoch with the best validation score) or last (the "
            "final epoch: for long schedules that end at a low rate, where a small validation split picks noise)"
        },
    )
    seed: int = field(default=0, metadata={"help": "seeds the split, the init, the batch order and augmentation"})
    limit_batches: int = field(default=0, metadata={"help": "stop each epoch after this many batches (smoke runs)"})
    precision: str = field(
        default="auto", metadata={"help": "fp32, bf16 or auto (bf16 autocast for CNNs on CPUs that have it)"}
    )
    threads: int = field(default=0, metadata={"help": "CPU threads for PyTorch (0: one per core)"})
    compile: bool = field(
        default=False,
        metadata={"help": "torch.compile the model for training (slower for the fast recipe: docs/speed.md)"},
    )
    eval_batch_size: int = field(default=1000, metadata={"help": "images per step when evaluating"})
    outliers: float = field(
        default=0.0,
        metadata={"help": "weight of the loss teaching flat predictions on digit fragments and pairs (0: off)"},
    )
    outlier_letters: float = field(
        default=0.0, metadata={"help": "share of those outliers that are drawn letters rather than fragments"}
    )
    outlier_marks: float = field(
        default=0.0,
        metadata={"help": "share of the outliers that are drawn crosses and ticks (a register's row marks)"},
    )
    strips_per_epoch: int = field(
        default=20000, metadata={"help": "strings task: synthetic strips drawn per epoch (made on the fly)"}
    )
    val_strips: int = field(default=1000, metadata={"help": "strings task: validation strips (fixed seed)"})
    workers: int = field(default=1, metadata={"help": "strings task: processes making strips while training"})
    tensorboard: bool = field(default=False, metadata={"help": "also write TensorBoard scalars to RUN/tensorboard"})


@dataclass
class RunConfig:
    """Everything a training run needs, as saved in RUN/train_config.json."""

    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    recipe: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        return cls(
            train=_build(TrainConfig, d.get("train", {}), "train"),
            data=_build(DataConfig, d.get("data", {}), "data"),
            augment=_build(AugmentConfig, d.get("augment", {}), "augment"),
            recipe=d.get("recipe"),
        )


SECTIONS: dict[str, type] = {"train": TrainConfig, "data": DataConfig, "augment": AugmentConfig}


def _build(cls: type, values: dict[str, Any], section: str) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"unknown {section} setting {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    return cls(**values)


def list_recipes() -> list[str]:
    folder = resources.files("digitread") / "recipes"
    return sorted(p.name.removesuffix(".json") for p in folder.iterdir() if p.name.endswith(".json"))


def load_recipe(name: str) -> dict[str, Any]:
    """A recipe's settings by section: a recipe shipped in the package by name, or a recipe file (such as
    ``digitread tune`` writes); its ``notes`` and ``measured`` entries are documentation."""
    from pathlib import Path

    path = resources.files("digitread") / "recipes" / f"{name}.json"
    if name.endswith(".json"):
        path = Path(name)
        if not path.is_file():
            raise ConfigError(f"recipe file {name} does not exist")
    elif not path.is_file():
        raise ConfigError(f"unknown recipe {name!r}; known recipes: {', '.join(list_recipes())} (or a .json file)")
    recipe = read_json_object(path, ConfigError, f"recipe {name}")
    return {k: v for k, v in recipe.items() if k in SECTIONS}
