"""Recurrent readers: the 28 rows of the image are a sequence of 28-pixel vectors."""

from __future__ import annotations

import torch
from torch import nn

from digitread.models._registry import register_model


class RowLSTM(nn.Module):
    """An LSTM over the image rows, top to bottom; the last hidden state (both ends if bidirectional) is classified."""

    def __init__(
        self,
        hidden: int = 128,
        layers: int = 1,
        bidirectional: bool = False,
        num_classes: int = 10,
        row_pixels: int = 28,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.lstm = nn.LSTM(
            row_pixels,
            hidden,
            num_layers=layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if layers > 1 else 0.0,
        )
        directions = 2 if bidirectional else 1
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden * directions, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.flatten(1, 2) if x.dim() == 4 else x  # (B, 1, H, W) -> (B, H, W): H steps of W pixels
        _, (h, _) = self.lstm(rows)  # h: (layers * directions, B, hidden)
        directions = 2 if self.lstm.bidirectional else 1
        last = h[-directions:].transpose(0, 1).flatten(1)  # (B, hidden * directions)
        return self.head(self.dropout(last))  # (B, num_classes)


register_model("lstm_rows", RowLSTM, "LSTM (128 units) reading the 28 image rows as a sequence", hidden=128)
