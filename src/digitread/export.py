"""Turn a model into an ONNX graph (in memory or as a file) and check ONNX Runtime against PyTorch.

Digit models take ``input`` (batch, 1, 28, 28). Sequence models take ``input`` (batch, 1, 32, width)
and ``lengths`` (batch,) int64, the valid output columns of each strip (its width // 4 when it is not
padded, or // 2 for a model scoring a column every 2 pixels: ``models.crnn.frame_width``): the LSTM
stops at each strip's own end, as ``SequenceReader`` runs it in PyTorch, so a reading does not
depend on what the strip was batched with. Batch, and the width for sequence
models, are dynamic axes. The inputs are the normalised floats the network itself reads
(``data.tensors.normalize`` for digits, ``inference.sequence.strip_tensor`` for strips).

The same ``onnx_bytes`` feeds ``export_onnx`` (a file) and the ONNX Runtime backend
(``inference.backends``), so what is served is what is exported.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from digitread._io import atomic_write_bytes
from digitread.checkpoint import load_model
from digitread.errors import DigitreadError
from digitread.inference.strip import STRIP_HEIGHT
from digitread.models.crnn import frame_width

ONNX_MISSING = "ONNX needs onnx and onnxruntime: pip install 'digitread[onnx]'"
OPSET = 17
# Batch sizes and widths other than the traced one: the dynamic axes must really be dynamic.
PARITY_SHAPES = ((1, 64), (5, 96), (3, 200))


def onnx_available() -> bool:
    """Whether both halves import: ``onnx`` (the exporter writes with it) and ``onnxruntime``."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def import_onnxruntime():
    if not onnx_available():
        raise DigitreadError(ONNX_MISSING)
    import onnxruntime

    return onnxruntime


def example_inputs(model: nn.Module, batch: int, width: int = 96) -> tuple[torch.Tensor, ...]:
    """Random inputs of the model's shape; a sequence model's strips get distinct valid lengths, the
    widest filling the strip, so padding is exercised."""
    generator = torch.Generator().manual_seed(0)
    if getattr(model, "task", "digits") != "strings":
        return (torch.randn((batch, 1, 28, 28), generator=generator),)
    x = torch.randn((batch, 1, STRIP_HEIGHT, width), generator=generator)
    columns = width // frame_width(model)
    lengths = torch.tensor([max(1, columns - 3 * i) for i in range(batch)], dtype=torch.int64)
    return x, lengths


def onnx_bytes(model: nn.Module, opset: int = OPSET) -> bytes:
    """The model (in eval mode) as a serialised ONNX graph with dynamic axes (module docstring)."""
    if not onnx_available():
        raise DigitreadError(ONNX_MISSING)
    model = model.eval()
    if getattr(model, "task", "digits") == "strings":
        names = ["input", "lengths"]
        dynamic = {"input": {0: "batch", 3: "width"}, "lengths": {0: "batch"}, "logits": {0: "batch", 1: "columns"}}
    else:
        names = ["input"]
        dynamic = {"input": {0: "batch"}, "logits": {0: "batch"}}
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), _native_stderr_silenced():
            warnings.simplefilter("ignore")  # the exporter's notes on LSTMs and batch sizes are not for users
            torch.onnx.export(
                model, example_inputs(model, 3), buffer, input_names=names, output_names=["logits"],
                dynamic_axes=dynamic, opset_version=opset, dynamo=False,
            )  # fmt: skip
    except Exception as e:  # the exporter raises many kinds; each means the same to a user
        raise DigitreadError(f"{getattr(model, 'arch', 'the model')} cannot be exported to ONNX: {e}") from e
    return buffer.getvalue()


def graph_feed(session, x: torch.Tensor, lengths: torch.Tensor | None = None) -> dict[str, np.ndarray]:
    """The session's inputs by name. A graph has no ``lengths`` input when the model ignores it."""
    values = {"input": x.detach().float().cpu().contiguous().numpy()}
    if lengths is not None:
        values["lengths"] = lengths.detach().to(torch.int64).cpu().numpy()
    return {i.name: values[i.name] for i in session.get_inputs()}


def onnx_parity(model: nn.Module, session, shapes=PARITY_SHAPES) -> tuple[float, float]:
    """The largest differences between ONNX Runtime and PyTorch, on logits and on probabilities
    (softmax over classes), over inputs of ``shapes`` ((batch, strip width) pairs). Only the valid
    columns of a strip count."""
    worst_logit = worst_prob = 0.0
    for batch, width in shapes:
        inputs = example_inputs(model, batch, width)
        with torch.inference_mode():
            expected = model(*inputs).float()
        feed = graph_feed(session, *inputs)
        got = torch.from_numpy(session.run(None, feed)[0])
        if len(inputs) == 2:  # a padded strip's columns past its length are never read
            valid = torch.arange(expected.shape[1])[None, :] < inputs[1][:, None]
            expected, got = expected[valid], got[valid]
        worst_logit = max(worst_logit, float((got - expected).abs().max()))
        worst_prob = max(worst_prob, float((got.softmax(-1) - expected.softmax(-1)).abs().max()))
    return worst_logit, worst_prob


def export_onnx(model_dir: str | Path, out: str | Path, opset: int = OPSET) -> dict:
    """Write ``out`` (.onnx) from the model in ``model_dir``; returns the parity check's figures."""
    ort = import_onnxruntime()
    model = load_model(model_dir).eval()
    graph = onnx_bytes(model, opset)
    out = Path(out)
    atomic_write_bytes(out, graph)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    worst, _ = onnx_parity(model, session)
    task = getattr(model, "task", "digits")
    return {"onnx": str(out), "task": task, "arch": model.arch, "max_abs_diff": worst, "opset": opset}


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null for a moment. Tracing a packed LSTM makes PyTorch's C++ side
    print shape-inference warnings straight to stderr, past Python's warnings filters; they say nothing
    a user can act on, and the parity check is what tells whether the graph is right."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
