"""Several digit networks as one model: soft voting (the weighted mean of their probabilities) or
majority voting (the weighted share of their votes). Registered like any model, so an ensemble folder
is a model folder: it loads, evaluates, predicts, reads, serves and exports like a single network."""

from __future__ import annotations

import math

import torch
from torch import nn

from digitread.models._registry import create_model, register_model

VOTING = ("soft", "majority")


class DigitEnsemble(nn.Module):
    """``members`` are ``{"arch", "model_args"}`` of registered digit models. The output is the log of the
    ensemble's probabilities, so that a softmax (with a temperature) gives them back."""

    def __init__(
        self, members: list[dict], voting: str = "soft", weights: list[float] | None = None, num_classes: int = 10
    ):
        super().__init__()
        if voting not in VOTING:
            raise ValueError(f"voting must be one of {', '.join(VOTING)}, got {voting!r}")
        if len(members) < 2:
            raise ValueError("an ensemble needs at least two members")
        weights = [1.0] * len(members) if weights is None else [float(w) for w in weights]
        finite = all(math.isfinite(w) for w in weights)
        if len(weights) != len(members) or not finite or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(
                f"need one finite, non-negative weight per member ({len(members)}), not all zero; got {weights}"
            )
        self.members = nn.ModuleList(create_model(m["arch"], **m["model_args"]) for m in members)
        self.voting = voting
        self.num_classes = num_classes
        self.register_buffer("weights", torch.tensor(weights) / sum(weights), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = torch.stack([torch.softmax(m(x).float(), dim=1) for m in self.members])  # (M, B, classes)
        w = self.weights.view(-1, 1, 1)
        mean = (probs * w).sum(0)  # (B, classes)
        if self.voting == "majority":
            votes = nn.functional.one_hot(probs.argmax(2), self.num_classes).float()  # (M, B, classes)
            # The vote shares; a tie goes to the class the members find likelier on average.
            mean = (votes * w).sum(0) + 1e-3 * mean
            mean = mean / mean.sum(1, keepdim=True)
        return torch.log(mean.clamp_min(1e-12))  # (B, classes)


register_model(
    "digit_ensemble", DigitEnsemble, "several trained digit models voting (digitread ensemble)", listed=False
)
