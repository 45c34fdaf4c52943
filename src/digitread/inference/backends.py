"""Backends: what runs a loaded model's forward pass, PyTorch or ONNX Runtime.

Both take the normalised float32 batch the network reads (and, for a sequence model, each strip's valid
output columns) and give float32 logits on the CPU. Preprocessing, temperature and decoding stay with
the caller, so a result differs between backends only by float rounding (under 1e-4 in probability,
checked at load and by tests/test_backends.py).

``auto`` chooses ONNX Runtime on the CPU whenever onnx and onnxruntime are installed, and PyTorch
otherwise (a CUDA device, the extra not installed, a model that does not export or whose graph
disagrees with PyTorch). A rule rather than a timed trial at load: measured on every shipped model
at the batch sizes the reader uses, ONNX Runtime was faster in each case (docs/speed.md,
bench/backends.py), and a rule keeps loading quick and the choice the same from run to run.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from digitread.errors import ConfigError, DigitreadError
from digitread.export import graph_feed, import_onnxruntime, onnx_available, onnx_bytes, onnx_parity
from digitread.runtime import has_conv

BACKENDS = ("auto", "torch", "onnx")
PARITY_TOLERANCE = 1e-4  # most a probability from ONNX Runtime may differ from PyTorch's
# The check at load: one small batch, not the same size as the traced one, with strips of two lengths.
# More shapes cost more PyTorch passes at load; export_onnx and the tests check several.
LOAD_CHECK_SHAPES = ((2, 64),)

log = logging.getLogger("digitread.backends")


class TorchBackend:
    """The model itself, in inference mode; convolutional models read channels_last (faster in oneDNN)."""

    name = "torch"

    def __init__(self, model: nn.Module, device: torch.device):
        self.model = model.eval()
        self.device = device
        self.channels_last = has_conv(model)

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        x = x.to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        logits = self.model(x) if lengths is None else self.model(x, lengths)
        return logits.float().cpu()


class OnnxBackend:
    """An ONNX Runtime session on the model's graph, exported in memory (``export.onnx_bytes``).

    The session uses as many threads as PyTorch is set to at load (the service sets one per reading;
    ``torch.set_num_threads`` later does not reach it) and runs its nodes one after another: these
    graphs are chains, and parallel execution measured no faster. Its threads sleep rather than spin
    while they wait for work: with two threads on two cores that another process also used, spinning
    made a digit 1.8x and a strip 2x slower (docs/speed.md); with one thread there is no pool to spin.
    """

    name = "onnx"

    def __init__(self, model: nn.Module, threads: int | None = None):
        ort = import_onnxruntime()
        model = model.eval()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # errors only: its notes on unused initializers are not for users
        self.session = ort.InferenceSession(onnx_bytes(model), options, providers=["CPUExecutionProvider"])
        _, worst = onnx_parity(model, self.session, LOAD_CHECK_SHAPES)
        if worst > PARITY_TOLERANCE:
            raise DigitreadError(
                f"ONNX Runtime's probabilities differ from PyTorch's by {worst:.1e} on "
                f"{getattr(model, 'arch', 'this model')}; run it with the torch backend"
            )

    def __call__(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return torch.from_numpy(self.session.run(None, graph_feed(self.session, x, lengths))[0])


Backend = TorchBackend | OnnxBackend


def load_backend(model: nn.Module, backend: str = "auto", device: torch.device | None = None) -> Backend:
    """The backend named (``auto``, ``torch`` or ``onnx``) for ``model``, which sits on ``device``.

    >>> load_backend(create_model("cnn_small"), "onnx").name  # doctest: +SKIP
    'onnx'
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; choose {', '.join(BACKENDS)}")
    device = device or next(model.parameters(), torch.empty(0)).device
    if backend == "torch":
        return TorchBackend(model, device)
    if device.type != "cpu":
        if backend == "onnx":
            raise ConfigError(f"the onnx backend runs on the CPU, not {device}; use the torch backend there")
        return TorchBackend(model, device)
    if backend == "auto" and not onnx_available():
        return TorchBackend(model, device)
    try:
        return OnnxBackend(model)
    except DigitreadError as e:
        if backend == "onnx":
            raise
        log.warning("%s; running it with PyTorch instead", e)
        return TorchBackend(model, device)
