"""Export a model folder to ONNX, and check that ONNX Runtime gives the same logits as PyTorch.

Digit models take (batch, 1, 28, 28) and sequence models (batch, 1, 32, width): batch, and the
strip width for sequence models, are dynamic axes. The inputs are the normalised floats the network
itself reads (``data.tensors.normalize`` for digits, ``inference.sequence.strip_tensor`` for strips).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from digitread._io import atomic_write
from digitread.checkpoint import load_model
from digitread.errors import DigitreadError
from digitread.inference.strip import STRIP_HEIGHT


def _example(task: str, batch: int, width: int = 96) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    shape = (batch, 1, STRIP_HEIGHT, width) if task == "strings" else (batch, 1, 28, 28)
    return torch.randn(shape, generator=generator)


def export_onnx(model_dir: str | Path, out: str | Path, opset: int = 17) -> dict:
    """Write ``out`` (.onnx) from the model in ``model_dir``; returns the parity check's figures."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise DigitreadError("ONNX export needs onnx and onnxruntime: pip install 'digitread[onnx]'") from None
    model = load_model(model_dir).eval()
    task = getattr(model, "task", "digits")
    dynamic = {"input": {0: "batch"}, "logits": {0: "batch"}}
    if task == "strings":
        dynamic = {"input": {0: "batch", 3: "width"}, "logits": {0: "batch", 1: "columns"}}
    out = Path(out)

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's notes on LSTMs and batch sizes are not for users
            torch.onnx.export(
                model, (_example(task, 2),), str(tmp), input_names=["input"], output_names=["logits"],
                dynamic_axes=dynamic, opset_version=opset, dynamo=False,
            )  # fmt: skip

    atomic_write(out, write)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    worst = 0.0
    # Other batch sizes and widths than the one traced: the dynamic axes must really be dynamic.
    for batch, width in ((1, 64), (5, 96), (3, 200)):
        x = _example(task, batch, width)
        with torch.inference_mode():
            expected = model(x).numpy()
        got = session.run(None, {"input": x.numpy()})[0]
        worst = max(worst, float(np.abs(got - expected).max()))
    return {"onnx": str(out), "task": task, "arch": model.arch, "max_abs_diff": worst, "opset": opset}
