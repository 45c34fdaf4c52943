"""One registry of models: a name maps to a module class and a preset of its keyword arguments.

Variants are presets, not subclasses; a built model carries ``arch`` and its full ``model_args`` so
that a checkpoint can rebuild it exactly, even if a preset's defaults change later.
"""

from __future__ import annotations

import fnmatch
import inspect
from dataclasses import dataclass
from typing import Any

from torch import nn

from digitread.errors import ConfigError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    cls: type[nn.Module]
    preset: dict[str, Any]
    description: str
    listed: bool = True  # False: built by a command from trained models (an ensemble), not trained by name


_MODELS: dict[str, ModelEntry] = {}


def register_model(name: str, cls: type[nn.Module], description: str, *, listed: bool = True, **preset: Any) -> None:
    """Register ``cls`` with keyword arguments ``preset`` under ``name``; ``listed=False`` keeps it out of
    ``list_models`` (it can only be built from trained models, e.g. by ``digitread ensemble``)."""
    if name in _MODELS:
        raise ValueError(f"model {name!r} is registered twice")
    _MODELS[name] = ModelEntry(name, cls, preset, description, listed)


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style ``pattern``, sorted.

    >>> "cnn" in list_models()
    True
    """
    return sorted(n for n, e in _MODELS.items() if e.listed and fnmatch.fnmatch(n, pattern))


def get_entry(name: str) -> ModelEntry:
    if name not in _MODELS:
        raise ConfigError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    return _MODELS[name]


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build a registered model; ``overrides`` replace keyword arguments of its preset.

    >>> model = create_model("cnn_small", dropout=0.1)
    >>> model.arch, model.model_args["dropout"]
    ('cnn_small', 0.1)
    """
    entry = get_entry(name)
    accepted = set(inspect.signature(entry.cls.__init__).parameters) - {"self"}
    unknown = sorted(set(overrides) - accepted)
    if unknown:
        raise ConfigError(
            f"model {name!r} has no argument {', '.join(unknown)}; it takes {', '.join(sorted(accepted))}"
        )
    args = {**entry.preset, **overrides}
    try:
        model = entry.cls(**args)
    except (TypeError, ValueError) as e:  # a required argument missing, or a value the module refuses
        raise ConfigError(f"model {name!r} cannot be built with {sorted(args)}: {e}") from None
    model.arch = name
    model.model_args = {k: _jsonable(v) for k, v in args.items()}
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
