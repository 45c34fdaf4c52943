"""SequenceReader: strips of whole numbers in, digit strings with alignments and confidences out."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import nn

from digitread.checkpoint import load_model
from digitread.data.strips import collate_strips
from digitread.errors import ConfigError
from digitread.inference.ctc import Decoded, beam_decode, greedy_decode, string_log_probs
from digitread.inference.strip import STRIP_HEIGHT
from digitread.models.crnn import BLANK, FRAME_WIDTH
from digitread.runtime import autocast, pick_device

DEFAULT_SEQUENCE_MODEL = "sequence"
BATCH = 64
RIGHT_MARGIN = 32  # wider than the network's receptive field (about 31 pixels)
STRIP_INPUT = {"height": STRIP_HEIGHT, "frame_width": FRAME_WIDTH, "mean": 0.1, "std": 0.3, "blank": BLANK}


def strip_tensor(x: torch.Tensor) -> torch.Tensor:
    """uint8 strips (B, 1, H, W) -> the normalised floats the model reads."""
    return (x.float() / 255.0 - STRIP_INPUT["mean"]) / STRIP_INPUT["std"]


@torch.inference_mode()
def strip_log_probs(model: nn.Module, x: torch.Tensor, widths: torch.Tensor, bf16: bool = False):
    """Log-probabilities (B, T, 11) and the number of valid columns of each strip."""
    xb = strip_tensor(x).contiguous(memory_format=torch.channels_last)
    lengths = torch.clamp(widths // FRAME_WIDTH, min=1, max=x.shape[-1] // FRAME_WIDTH)
    with autocast(xb.device, bf16):
        logits = model(xb, lengths).float()
    return logits.log_softmax(2), lengths


@dataclass
class StripReading:
    text: str
    confidence: float  # P(text | strip), over every alignment, temperature-calibrated
    spans: list[tuple[int, int]]  # strip columns [start, end) of each digit
    char_probs: list[np.ndarray]  # (10,) at each digit's surest column


def resolve_sequence_dir(model: str | Path | None) -> Path:
    if model is None or str(model) == DEFAULT_SEQUENCE_MODEL:
        return Path(str(resources.files("digitread") / "weights" / DEFAULT_SEQUENCE_MODEL))
    return Path(model)


class SequenceReader:
    """Read whole strips (``inference.strip``) with a CTC model such as ``crnn_digits``.

    >>> seq = SequenceReader.from_pretrained()  # the sequence model shipped in the package
    >>> seq.read([strip])[0].text  # doctest: +SKIP
    '27375'
    """

    def __init__(self, model: nn.Module, device: str | torch.device | None = None, decoder: str = "greedy"):
        if getattr(model, "task", "digits") != "strings":
            raise ConfigError(f"{getattr(model, 'arch', 'this model')} reads single digits, not strings")
        if decoder not in ("greedy", "beam"):
            raise ConfigError(f"unknown decoder {decoder!r}; choose greedy or beam")
        self.device = pick_device(str(device) if device else None)
        self.model = model.to(self.device).to(memory_format=torch.channels_last).eval()
        self.temperature = float(getattr(model, "config", {}).get("calibration", {}).get("temperature", 1.0))
        self.decoder = decoder

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, device: str | None = None, **kwargs) -> SequenceReader:
        return cls(load_model(resolve_sequence_dir(path)), device=device, **kwargs)

    def read(self, strips: list[np.ndarray]) -> list[StripReading]:
        """One reading per strip (uint8 (32, W)); strips of similar width are batched together."""
        order = sorted(range(len(strips)), key=lambda i: strips[i].shape[1])
        out: list[StripReading | None] = [None] * len(strips)
        for start in range(0, len(order), BATCH):
            chunk = order[start : start + BATCH]
            # Every strip gets RIGHT_MARGIN blank columns more than it needs: the network then sees the
            # same blank beyond a strip's end whatever it is batched with, and a reading never depends
            # on its batch (the LSTM stops at each strip's own end, see CRNN.forward).
            x, _, _, _ = collate_strips([(np.pad(strips[i], ((0, 0), (0, RIGHT_MARGIN))), "") for i in chunk])
            widths = torch.tensor([strips[i].shape[1] for i in chunk])
            log_probs, lengths = strip_log_probs(self.model, x.to(self.device), widths)
            log_probs = (log_probs.cpu() / self.temperature).log_softmax(2)
            probs = log_probs.exp().numpy()
            decoded = [greedy_decode(p[:n]) for p, n in zip(probs, lengths.tolist(), strict=True)]
            if self.decoder == "beam":
                for k, (p, n) in enumerate(zip(probs, lengths.tolist(), strict=True)):
                    text = beam_decode(p[:n])
                    if text != decoded[k].text:
                        decoded[k] = _spread(text, p[:n])
            confidence = string_log_probs(log_probs, lengths, [d.text for d in decoded]).exp().tolist()
            for i, d, c in zip(chunk, decoded, confidence, strict=True):
                spans = [(a * FRAME_WIDTH, b * FRAME_WIDTH) for a, b in d.spans]
                out[i] = StripReading(d.text, float(c), spans, d.char_probs)
        return out  # type: ignore[return-value]


def _spread(text: str, probs: np.ndarray) -> Decoded:
    """An alignment for a string beam search found and greedy decoding did not: the columns where
    some digit is likelier than blank, shared evenly among the string's digits."""
    inked = np.nonzero(probs.argmax(axis=1) != BLANK)[0]
    first, last = (int(inked[0]), int(inked[-1]) + 1) if len(inked) else (0, len(probs))
    edges = np.linspace(first, last, len(text) + 1)
    spans = [(int(a), max(int(a) + 1, int(round(b)))) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    char_probs = [probs[min((a + b) // 2, len(probs) - 1), :BLANK] for a, b in spans]
    return Decoded(text, spans, char_probs)
