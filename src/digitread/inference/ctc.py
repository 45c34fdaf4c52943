"""Decoding CTC output: per-column class probabilities -> digits, where each sits, and how sure.

Greedy decoding takes the best class per column and collapses repeats and blanks; it also gives each
digit the columns it was read from (its box in the strip). Beam search keeps the ``beam`` best
prefixes, summing over all alignments of each, and finds strings greedy decoding misses when a
digit's probability is spread over several columns. The confidence of a string is its probability
under the model, summed over every alignment (CTC's forward algorithm), not the best path's.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import torch

from digitread.models.crnn import BLANK, CHAR_OF, CLASS_OF, POINT


@dataclass
class Decoded:
    text: str
    spans: list[tuple[int, int]]  # columns [start, end) each character was read from
    char_probs: list[np.ndarray]  # (10,) digit probabilities at each character's surest column


def greedy_decode(probs: np.ndarray) -> Decoded:
    """``probs``: (T, classes) softmax output of one strip (a point class reads as '.')."""
    best = probs.argmax(axis=1)
    text, spans, char_probs, surest = [], [], [], []
    previous = BLANK
    for t, c in enumerate(best):
        if c != BLANK and c != previous:
            text.append(CHAR_OF[int(c)])
            spans.append([t, t + 1])
            char_probs.append(probs[t, :BLANK])
            surest.append(probs[t, c])
        elif c != BLANK and c == previous:
            spans[-1][1] = t + 1
            if probs[t, c] > surest[-1]:
                char_probs[-1], surest[-1] = probs[t, :BLANK], probs[t, c]
        previous = c
    return Decoded("".join(text), [tuple(s) for s in spans], char_probs)


def beam_decode(probs: np.ndarray, beam: int = 8) -> str:
    """Prefix beam search over ``probs`` (T, classes); returns the most probable string."""
    classes = [c for c in range(probs.shape[1]) if c != BLANK]
    # Each prefix keeps two probabilities: of ending in a blank, and of ending in its last digit.
    beams: dict[str, tuple[float, float]] = {"": (1.0, 0.0)}
    for p in probs:
        nxt: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
        for prefix, (p_blank, p_digit) in beams.items():
            total = p_blank + p_digit
            nxt[prefix][0] += total * p[BLANK]
            if prefix:
                last = CLASS_OF[prefix[-1]]
                nxt[prefix][1] += p_digit * p[last]  # the same character continues
            for c in classes:
                if p[c] < 1e-4:
                    continue
                extended = prefix + CHAR_OF[c]
                if prefix and c == CLASS_OF[prefix[-1]]:
                    nxt[extended][1] += p_blank * p[c]  # a repeated character needs a blank between
                else:
                    nxt[extended][1] += total * p[c]
        ranked = sorted(nxt.items(), key=lambda kv: -(kv[1][0] + kv[1][1]))[:beam]
        scale = sum(b + d for _, (b, d) in ranked) or 1.0  # renormalise: no underflow on long strips
        beams = {k: (b / scale, d / scale) for k, (b, d) in ranked}
    return max(beams.items(), key=lambda kv: kv[1][0] + kv[1][1])[0]


def string_log_probs(log_probs: torch.Tensor, lengths: torch.Tensor, texts: list[str]) -> torch.Tensor:
    """log P(text | strip) for each strip, summed over all alignments. ``log_probs``: (B, T, classes).
    A model with no point class scores a text without its points (it was trained to read past them)."""
    if log_probs.shape[-1] <= POINT:
        texts = [t.replace(".", "") for t in texts]
    targets = torch.tensor([CLASS_OF[c] for t in texts for c in t], dtype=torch.long)
    target_lengths = torch.tensor([len(t) for t in texts], dtype=torch.long)
    nll = torch.nn.functional.ctc_loss(
        log_probs.transpose(0, 1).float(), targets, lengths, target_lengths, blank=BLANK, reduction="none",
        zero_infinity=False,
    )  # fmt: skip
    # An empty string's probability is the all-blank path; ctc_loss handles it like any other.
    return -nll
