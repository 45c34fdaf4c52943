"""Model folders and training checkpoints: safetensors for tensors, JSON for everything else. Never pickle.

A model folder rebuilds itself::

    model.safetensors   the weights
    config.json         format_version, arch, model_args, preprocess, labels, metrics,
                        dataset checksums, versions, and the sha256 of model.safetensors

Both files are written atomically; the weights' hash in config.json catches a folder whose files do not
belong together (edited, swapped, or caught between two writes).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from digitread._io import atomic_write, atomic_write_json, read_json_object
from digitread.errors import ConfigError, ModelFileError

FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
LABELS = [str(d) for d in range(10)]
# How a digit image is turned into the network's input; travels with the weights so that training
# and serving cannot drift apart.
DEFAULT_PREPROCESS = {
    "size": 28,
    "digit_box": 20,
    "ink": "white_on_black",
    "center": "mass",
    "mean": 0.1307,
    "std": 0.3081,
}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _versions() -> dict[str, str]:
    from digitread import __version__

    return {"digitread": __version__, "torch": torch.__version__.split("+")[0]}


def save_model(
    model: nn.Module,
    directory: str | Path,
    *,
    metrics: dict[str, Any] | None = None,
    preprocess: dict[str, Any] | None = None,
    dataset: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` (built by ``create_model``) as a self-describing folder.

    >>> save_model(create_model("cnn_small"), "runs/demo")  # doctest: +SKIP
    """
    if not hasattr(model, "arch"):
        raise ConfigError("save_model needs a model built by create_model (it records arch and model_args)")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    weights = directory / WEIGHTS_FILE
    atomic_write(weights, lambda tmp: save_file(tensors, str(tmp), metadata={"format": "pt"}))
    config = {
        "format_version": FORMAT_VERSION,
        "arch": model.arch,
        "model_args": model.model_args,
        "preprocess": preprocess or DEFAULT_PREPROCESS,
        "labels": LABELS,
        "metrics": metrics or {},
        "dataset": dataset or {},
        "versions": _versions(),
        "weights_sha256": _sha256(weights),
        **(extra or {}),
    }
    atomic_write_json(directory / CONFIG_FILE, config)
    return directory


def read_model_config(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / CONFIG_FILE
    if not Path(directory).is_dir():
        raise ModelFileError(f"model folder {directory} does not exist")
    if not path.is_file():
        raise ModelFileError(f"{directory} is not a model folder: {CONFIG_FILE} is missing")
    config = read_json_object(path, ModelFileError, str(path))
    for key in ("format_version", "arch", "model_args"):
        if key not in config:
            raise ModelFileError(f"{path}: missing {key!r}")
    if config["format_version"] > FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: format version {config['format_version']} is newer than this digitread reads "
            f"({FORMAT_VERSION}); upgrade digitread"
        )
    return config


def load_model(directory: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model saved in ``directory``, in eval mode; ``model.config`` holds its config.json.

    >>> model = load_model("runs/cnn")  # doctest: +SKIP
    """
    from digitread.models import create_model

    directory = Path(directory)
    config = read_model_config(directory)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelFileError(f"{directory}: {WEIGHTS_FILE} is missing")
    expected_hash = config.get("weights_sha256")
    if expected_hash and _sha256(weights) != expected_hash:
        raise ModelFileError(
            f"{weights} does not match {CONFIG_FILE} (sha256 differs): the folder was modified or half-written"
        )
    try:
        state = load_file(str(weights), device=str(device))
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelFileError(f"{weights}: not a readable safetensors file ({e})") from None
    try:
        model = create_model(config["arch"], **config["model_args"])
    except ConfigError as e:
        raise ModelFileError(f"{directory / CONFIG_FILE}: {e}") from None
    _load_state_strict(model, state, weights)
    model.config = config
    return model.to(device).eval()


def load_weights_into(model: nn.Module, directory: str | Path) -> None:
    """Copy the weights of the model saved in ``directory`` into ``model`` (the same architecture):
    the start of a run that fine-tunes a trained model on new data (``train --init``)."""
    source = load_model(directory)
    arch = source.config["arch"]
    state = source.state_dict()
    if arch != getattr(model, "arch", arch):
        state = _grown_head(model, state)
        if state is None:
            raise ConfigError(f"{directory} holds a {arch} model; this run trains {model.arch}: pass --model {arch}")
    _load_state_strict(model, state, Path(directory) / WEIGHTS_FILE)


def _grown_head(model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
    """``state`` fitted to ``model`` when the two differ only in the output layer (``head``): with more
    classes in ``model`` (a sequence model gaining a point class), the trained rows are copied and the
    new ones keep their fresh initialisation; with ``model`` splitting each column into ``subframes``
    output columns, each takes a copy of the trained rows (so it reads as the trained model at first: a
    character in two neighbouring columns is read once). None when they differ in anything else."""
    expected = model.state_dict()
    if set(expected) != set(state):
        return None
    fitted = {}
    subframes = getattr(model, "subframes", 1)
    for key, value in state.items():
        target = expected[key]
        if value.shape == target.shape:
            fitted[key] = value
        elif key.startswith("head.") and subframes > 1 and target.shape[0] == subframes * value.shape[0]:
            fitted[key] = torch.cat([value] * subframes)
        elif (
            key.startswith("head.")
            and subframes == 1
            and value.shape[1:] == target.shape[1:]
            and len(value) < len(target)
        ):
            fitted[key] = torch.cat([value, target[value.shape[0] :]])
        else:
            return None
    return fitted


def _load_state_strict(model: nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong_shape:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:3])}{'...' if len(missing) > 3 else ''}")
        if unexpected:
            parts.append(f"unexpected {', '.join(unexpected[:3])}{'...' if len(unexpected) > 3 else ''}")
        if wrong_shape:
            k = wrong_shape[0]
            parts.append(f"{k} has shape {tuple(state[k].shape)}, config says {tuple(expected[k].shape)}")
        raise ModelFileError(f"{source}: weights do not match the architecture in config.json ({'; '.join(parts)})")
    model.load_state_dict(state, strict=True)


# ---- training checkpoints: one safetensors file, nested state flattened into tensors + JSON metadata ----


def _flatten(obj: Any, tensors: dict[str, torch.Tensor], prefix: str) -> Any:
    if isinstance(obj, torch.Tensor):
        key = prefix or "root"
        tensors[key] = obj.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: _flatten(v, tensors, f"{prefix}.{k}") for k, v in obj.items()}
        # Optimizer state is keyed by int; JSON keys are strings, so keep the pairs.
        return {"__items__": [[k, _flatten(v, tensors, f"{prefix}.{k}")] for k, v in obj.items()]}
    if isinstance(obj, list | tuple):
        return [_flatten(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]
    return obj


def _unflatten(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {"__tensor__"}:
            return tensors[obj["__tensor__"]]
        if set(obj) == {"__items__"}:
            return {k: _unflatten(v, tensors) for k, v in obj["__items__"]}
        return {k: _unflatten(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unflatten(v, tensors) for v in obj]
    return obj


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write a nested training state (tensors, numbers, strings) to one file, atomically."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _flatten(state, tensors, "")
    metadata = {"digitread_checkpoint": json.dumps(skeleton), "format_version": str(FORMAT_VERSION)}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no checkpoint to resume from")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
        skeleton = json.loads(metadata["digitread_checkpoint"])
    except (SafetensorError, OSError, KeyError, json.JSONDecodeError) as e:
        raise ModelFileError(f"{path}: not a readable digitread checkpoint ({e})") from None
    return _unflatten(skeleton, tensors)
