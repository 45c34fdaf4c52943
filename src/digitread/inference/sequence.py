"""SequenceReader: strips of whole numbers in, digit strings with alignments and confidences out."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import nn

from digitread.checkpoint import load_model
from digitread.data.strips import collate_strips
from digitread.errors import ConfigError, ModelFileError
from digitread.eval.calibration import logistic
from digitread.inference.backends import load_backend
from digitread.inference.ctc import Decoded, beam_decode, greedy_decode, string_log_probs
from digitread.inference.strip import STRIP_HEIGHT
from digitread.models.crnn import BLANK, FRAME_WIDTH, frame_width, reads_points
from digitread.runtime import autocast, pick_device

DEFAULT_SEQUENCE_MODEL = "sequence"
MEMBERS_FILE = "members.json"
BATCH = 64
RIGHT_MARGIN = 32  # wider than the network's receptive field (about 31 pixels)
MAX_SHIFT = 8  # pixels a view may move a strip up or down: a quarter of its height
# Strips read this surely as they are are not read again in shifted views: the views cost a member
# call each, and most strips of clear writing need none.
LOOK_AGAIN_BELOW = 0.9
# Log of the geometric mean a reading gives up per point it holds, when readings are ranked: a point
# must be e^0.8 = 2.2 times likelier than none. 0.4 read the foot of a printed-style 1 as a point once
# the point member had seen more touching digits (docs/reading.md).
POINT_COST = 0.8
STRIP_INPUT = {"height": STRIP_HEIGHT, "frame_width": FRAME_WIDTH, "mean": 0.1, "std": 0.3, "blank": BLANK}


def strip_tensor(x: torch.Tensor) -> torch.Tensor:
    """uint8 strips (B, 1, H, W) -> the normalised floats the model reads."""
    return (x.float() / 255.0 - STRIP_INPUT["mean"]) / STRIP_INPUT["std"]


@torch.inference_mode()
def strip_log_probs(model: nn.Module, x: torch.Tensor, widths: torch.Tensor, bf16: bool = False):
    """Log-probabilities (B, T, classes) and the number of valid columns of each strip."""
    xb = strip_tensor(x).contiguous(memory_format=torch.channels_last)
    lengths = strip_lengths(widths, x.shape[-1], frame_width(model))
    with autocast(xb.device, bf16):
        logits = model(xb, lengths).float()
    return logits.log_softmax(2), lengths


def strip_lengths(widths: torch.Tensor, padded_width: int, width: int) -> torch.Tensor:
    """The output columns (``width`` pixels each) of each strip that hold its own pixels (at least one,
    at most the batch's)."""
    return torch.clamp(widths // width, min=1, max=padded_width // width)


@dataclass
class StripReading:
    text: str
    confidence: float  # P(text | strip), over every alignment, temperature-calibrated
    spans: list[tuple[int, int]]  # strip pixel columns [start, end) of each character (a digit or a point)
    char_probs: list[np.ndarray]  # (10,) digit probabilities at each character's surest column


def resolve_sequence_dir(model: str | Path | None) -> Path:
    if model is None or str(model) == DEFAULT_SEQUENCE_MODEL:
        return Path(str(resources.files("digitread") / "weights" / DEFAULT_SEQUENCE_MODEL))
    return Path(model)


class SequenceReader:
    """Read whole strips (``inference.strip``) with a CTC model such as ``crnn_digits``, or an ensemble.

    >>> seq = SequenceReader.from_pretrained()  # the sequence model shipped in the package
    >>> seq.read([strip])[0].text  # doctest: +SKIP
    '27375'

    An ensemble's members each propose their best strings; every proposal is scored by every member
    (P(text) over all alignments) and the one with the highest geometric mean wins. Members trained
    apart place their CTC spikes at different columns, so strings, not columns, are what they vote on.

    ``shifts``: the strip is also read moved up or down by these many pixels, each view by every
    member, and the views vote like members. Real writing sits higher or lower in its strip than the
    synthetic strips the members learned from; a reading that holds when the strip moves is surer.
    A shift keeps the columns, so every view's spans match the strip's. Only strips read less surely
    than LOOK_AGAIN_BELOW as they are (geometric mean of the members' P(text)) are read again in the
    views, so clear writing costs no more.
    """

    def __init__(
        self,
        models: nn.Module | list[nn.Module],
        device: str | torch.device | None = None,
        decoder: str = "greedy",
        calibration: tuple[float, float] | None = None,
        backend: str = "auto",
        shifts: Sequence[int] = (0,),
    ):
        """``calibration``: (a, b) mapping an ensemble's geometric-mean probability p to the chance of
        being right, sigmoid(a * logit(p) + b), fitted on validation strips (``train.ensemble``).
        ``backend``: what runs each member, ``torch``, ``onnx`` (ONNX Runtime) or ``auto`` (ONNX Runtime
        on the CPU when installed; see ``inference.backends``)."""
        models = list(models) if isinstance(models, list | tuple) else [models]
        if not models:
            raise ConfigError("a sequence reader needs at least one model")
        for model in models:
            if getattr(model, "task", "digits") != "strings":
                raise ConfigError(f"{getattr(model, 'arch', 'this model')} reads single digits, not strings")
            _check_strip_input(model)
        if decoder not in ("greedy", "beam"):
            raise ConfigError(f"unknown decoder {decoder!r}; choose greedy or beam")
        self.device = pick_device(str(device) if device else None)
        self.models = [m.to(self.device).to(memory_format=torch.channels_last).eval() for m in models]
        self.frame_widths = [frame_width(m) for m in self.models]  # strip pixels per output column
        self.backends = [load_backend(m, backend, self.device) for m in self.models]
        self.temperatures = [
            float(getattr(m, "config", {}).get("calibration", {}).get("temperature", 1.0)) for m in models
        ]
        self.decoder = decoder
        self.calibration = calibration
        # A member with a point class reads the points between digits; the others read past them.
        self.reads_points = any(reads_points(m) for m in self.models)
        self.shifts = check_shifts(shifts)

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, device: str | None = None, **kwargs) -> SequenceReader:
        directory = resolve_sequence_dir(path)
        listing = read_listing(directory)
        calibration = listing.get("calibration", {}).get("logistic") if listing else None
        if listing and "shifts" in listing:
            kwargs.setdefault("shifts", listing["shifts"])  # the views its calibration was fitted with
        return cls(load_sequence_models(directory), device=device, calibration=calibration, **kwargs)

    def read(self, strips: list[np.ndarray]) -> list[StripReading]:
        """One reading per strip (uint8 (32, W)); strips of similar width are batched together."""
        out: list[StripReading | None] = [None] * len(strips)
        for chunk, x, widths in self._batches(strips):
            for i, reading in zip(chunk, self._read_batch(x, widths), strict=True):
                out[i] = reading
        return out  # type: ignore[return-value]

    def _batches(self, strips: list[np.ndarray]) -> Iterator[tuple[list[int], torch.Tensor, torch.Tensor]]:
        """Strips of similar width batched together: each batch's indices into ``strips``, its padded
        tensor and the strips' own widths."""
        order = sorted(range(len(strips)), key=lambda i: strips[i].shape[1])
        for start in range(0, len(order), BATCH):
            chunk = order[start : start + BATCH]
            # Every strip gets RIGHT_MARGIN blank columns more than it needs: the network then sees the
            # same blank beyond a strip's end whatever it is batched with, and a reading never depends
            # on its batch (the LSTM stops at each strip's own end, see CRNN.forward).
            x, _, _, _ = collate_strips([(np.pad(strips[i], ((0, 0), (0, RIGHT_MARGIN))), "") for i in chunk])
            yield chunk, x.to(self.device), torch.tensor([strips[i].shape[1] for i in chunk])

    def _read_batch(self, x: torch.Tensor, widths: torch.Tensor) -> list[StripReading]:
        """The strips as they are; then, with every view, those the members are unsure of."""
        readings, surety = self._read_views(x, widths, (0,))
        if len(self.shifts) > 1:
            unsure = [k for k, p in enumerate(surety) if p < LOOK_AGAIN_BELOW]
            if unsure:
                again, _ = self._read_views(x[unsure], widths[unsure], self.shifts)
                for k, reading in zip(unsure, again, strict=True):
                    readings[k] = reading
        return readings

    def score(self, strips: list[np.ndarray], candidates: list[list[str]]) -> list[np.ndarray]:
        """How likely the members find each of ``candidates[k]`` in ``strips[k]`` (uint8 (32, W)): the log
        of their geometric-mean P(text), less POINT_COST per point, as readings are ranked; uncalibrated,
        the strips as they are (no shifted views). Each strip goes through the members once."""
        scores: list[np.ndarray] = [np.zeros(0)] * len(strips)
        for chunk, x, widths in self._batches(strips):
            member_log_probs, lengths, _ = self._member_log_probs(x, widths, (0,))
            rows = [k for k, i in enumerate(chunk) for _ in candidates[i]]
            texts = [text for i in chunk for text in candidates[i]]
            ranks = _mean_log_probs(member_log_probs, lengths, rows, texts) - POINT_COST * np.array(
                [text.count(".") for text in texts]
            )
            for k, i in enumerate(chunk):
                scores[i] = ranks[np.array(rows, dtype=int) == k]
        return scores

    def _member_log_probs(
        self, x: torch.Tensor, widths: torch.Tensor, shifts: tuple[int, ...]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[int]]:
        """Each member's temperature-scaled log-probabilities of every view of the batch (a member and
        view after another), the valid columns of each, and each one's strip pixels per column."""
        # The same floats for every member. Every view of the batch goes through a member in one call,
        # then votes as a member of its own.
        views = len(shifts)
        xb = strip_tensor(torch.cat([shift_rows(x, s) for s in shifts]) if views > 1 else x)
        # Members may score a column every 4 or every 2 pixels: each has its own valid columns.
        member_lengths = [strip_lengths(widths, x.shape[-1], fw) for fw in self.frame_widths]
        member_log_probs, lengths = [], []
        for run, temperature, length in zip(self.backends, self.temperatures, member_lengths, strict=True):
            log_probs = (run(xb, length.repeat(views)).log_softmax(2) / temperature).log_softmax(2)
            member_log_probs.extend(log_probs.chunk(views))
            lengths.extend([length] * views)
        return member_log_probs, lengths, [fw for fw in self.frame_widths for _ in range(views)]

    def _read_views(
        self, x: torch.Tensor, widths: torch.Tensor, shifts: tuple[int, ...]
    ) -> tuple[list[StripReading], list[float]]:
        """The readings, their confidences calibrated, and each one's geometric mean over members and
        views of P(text), uncalibrated (what LOOK_AGAIN_BELOW is compared with)."""
        member_log_probs, lengths, widths_of = self._member_log_probs(x, widths, shifts)
        # Proposals: each member's greedy reading (with its alignment, in strip pixels), and its beam
        # reading if asked.
        proposals: list[dict[str, Decoded | None]] = [{} for _ in range(len(widths))]
        member_probs = [log_probs.exp().numpy() for log_probs in member_log_probs]
        for probs, length, fw in zip(member_probs, lengths, widths_of, strict=True):
            for k, n in enumerate(length.tolist()):  # greedy readings first: they come with their alignment
                greedy = greedy_decode(probs[k, :n])
                greedy.spans = [(a * fw, b * fw) for a, b in greedy.spans]
                proposals[k].setdefault(greedy.text, greedy)
        if self.decoder == "beam":
            for probs, length in zip(member_probs, lengths, strict=True):
                for k, n in enumerate(length.tolist()):
                    proposals[k].setdefault(beam_decode(probs[k, :n]), None)
        rows = [k for k, texts in enumerate(proposals) for _ in texts]
        texts = [text for candidates in proposals for text in candidates]
        scores = _mean_log_probs(member_log_probs, lengths, rows, texts)
        best: dict[int, tuple[float, float, str]] = {}  # strip -> (rank, score, text) of its best proposal
        for k, text, score in zip(rows, texts, scores.tolist(), strict=True):
            rank = score - POINT_COST * text.count(".")
            if k not in best or rank > best[k][0]:
                best[k] = (rank, score, text)
        mean_probs = None  # only for a string no member's greedy decoding gave (so with no alignment)
        spread_width = widths_of[0]
        readings, surety = [], []
        for k in range(len(widths)):
            _, score, text = best[k]
            surety.append(float(np.exp(score)))
            decoded = proposals[k][text]
            if decoded is None:
                if mean_probs is None:
                    # Blank and digit columns only, of the members whose columns are as wide as the
                    # first's: members differ in classes (a point) and column width (4 or 2 pixels).
                    same = [
                        lp[..., : BLANK + 1]
                        for lp, fw in zip(member_log_probs, widths_of, strict=True)
                        if fw == spread_width
                    ]
                    mean_probs = torch.stack(same).exp().mean(dim=0).numpy()
                decoded = _spread(text, mean_probs[k, : int(lengths[0][k])])
                decoded.spans = [(a * spread_width, b * spread_width) for a, b in decoded.spans]
            spans = decoded.spans
            confidence = np.exp(score) if self.calibration is None else logistic(np.exp(score), *self.calibration)
            readings.append(StripReading(text, float(confidence), spans, decoded.char_probs))
        return readings, surety


def shift_rows(x: torch.Tensor, shift: int) -> torch.Tensor:
    """Strips (B, 1, H, W) moved down by ``shift`` rows (up when negative), blank rows coming in."""
    if shift == 0:
        return x
    out = torch.zeros_like(x)
    if shift > 0:
        out[:, :, shift:] = x[:, :, :-shift]
    else:
        out[:, :, :shift] = x[:, :, -shift:]
    return out


def check_shifts(shifts: Sequence[int]) -> tuple[int, ...]:
    """Distinct whole numbers of pixels within MAX_SHIFT, 0 (the strip as it is) among them."""
    try:
        values = tuple(int(s) for s in shifts)
        if any(float(s) != v for s, v in zip(shifts, values, strict=True)):
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(f"shifts must be whole numbers of pixels, got {shifts!r}") from None
    if 0 not in values or len(set(values)) != len(values) or any(abs(v) > MAX_SHIFT for v in values):
        raise ConfigError(f"shifts must be distinct, include 0 and stay within +-{MAX_SHIFT} pixels, got {values}")
    return values


def read_listing(directory: Path) -> dict | None:
    """An ensemble folder's ``members.json`` (``{"members": ["a", "b"], "calibration": {...}}``), checked,
    or None for a plain model folder. Members are plain folder names inside ``directory``, each once."""
    listing_file = directory / MEMBERS_FILE
    if not listing_file.is_file():
        return None
    try:
        listing = json.loads(listing_file.read_text())
        members = listing["members"]
        if not isinstance(members, list) or not members or len(set(members)) != len(members):
            raise ValueError
        for m in members:
            if not isinstance(m, str) or m in ("", ".", "..") or Path(m).name != m or "\\" in m or "\0" in m:
                raise ValueError
        a_b = listing.get("calibration", {}).get("logistic", [1.0, 0.0])
        if not (isinstance(a_b, list) and len(a_b) == 2 and all(isinstance(v, int | float) for v in a_b)):
            raise ValueError
        if not isinstance(listing.get("shifts", []), list):
            raise ValueError
        check_shifts(listing.get("shifts", [0]))
    except (ValueError, KeyError, TypeError, AttributeError, ConfigError) as e:
        raise ModelFileError(
            f'{listing_file}: expected {{"members": [distinct names of member folders beside it]}}'
            ', with "shifts" (if any) distinct whole pixels including 0'
        ) from e
    return listing


def ensemble_members(directory: Path) -> list[str] | None:
    """The member folder names of an ensemble folder, or None for a plain model folder."""
    listing = read_listing(directory)
    return None if listing is None else listing["members"]


def _check_strip_input(model: nn.Module) -> None:
    """Every member must read the strips this reader cuts (height, frame width, normalisation)."""
    preprocess = getattr(model, "config", {}).get("preprocess", {})
    expected = {**STRIP_INPUT, "frame_width": frame_width(model)}
    different = {k: preprocess[k] for k in expected if k in preprocess and preprocess[k] != expected[k]}
    if different:
        raise ModelFileError(
            f"{getattr(model, 'arch', 'a model')} expects other strips than this reader cuts: {different}"
        )


def _mean_log_probs(
    member_log_probs: list[torch.Tensor], lengths: list[torch.Tensor], rows: list[int], texts: list[str]
) -> np.ndarray:
    """log of the geometric mean of the members' P(texts[k]) in the batch's strip rows[k]."""
    index = torch.tensor(rows, dtype=torch.long)
    member_scores = [
        string_log_probs(lp[index], n[index], texts) for lp, n in zip(member_log_probs, lengths, strict=True)
    ]
    return torch.stack(member_scores).mean(dim=0).numpy()


def load_sequence_models(directory: Path) -> list[nn.Module]:
    """The model in a model folder, or every member of an ensemble folder."""
    members = ensemble_members(directory)
    return [load_model(directory)] if members is None else [load_model(directory / m) for m in members]


def _spread(text: str, probs: np.ndarray) -> Decoded:
    """An alignment for a string beam search found and greedy decoding did not: the columns where
    some digit is likelier than blank, shared evenly among the string's digits."""
    inked = np.nonzero(probs.argmax(axis=1) != BLANK)[0]
    first, last = (int(inked[0]), int(inked[-1]) + 1) if len(inked) else (0, len(probs))
    edges = np.linspace(first, last, len(text) + 1)
    spans = [(int(a), max(int(a) + 1, int(round(b)))) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    char_probs = [probs[min((a + b) // 2, len(probs) - 1), :BLANK] for a, b in spans]
    return Decoded(text, spans, char_probs)
