"""Recurrent readers: the 28 rows of the image are a sequence of 28-pixel vectors."""

from __future__ import annotations

import torch
from torch import nn

from digitread.models._registry import register_model

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}


class RowRNN(nn.Module):
    """An LSTM or GRU over the image rows, top to bottom (and bottom to top when bidirectional); the last
    hidden state of each direction is classified."""

    def __init__(
        self,
        hidden: int = 128,
        layers: int = 1,
        bidirectional: bool = False,
        num_classes: int = 10,
        row_pixels: int = 28,
        dropout: float = 0.1,
        cell: str = "lstm",
    ):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, got {cell!r}")
        self.rnn = CELLS[cell](
            row_pixels,
            hidden,
            num_layers=layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.directions = 2 if bidirectional else 1
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden * self.directions, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.flatten(1, 2) if x.dim() == 4 else x  # (B, 1, H, W) -> (B, H, W): H steps of W pixels
        _, h = self.rnn(rows)
        h = h[0] if isinstance(h, tuple) else h  # an LSTM also returns its cell state
        last = h[-self.directions :].transpose(0, 1).flatten(1)  # (B, hidden * directions): the top layer
        return self.head(self.dropout(last))  # (B, num_classes)


register_model("lstm_rows", RowRNN, "LSTM (128 units) reading the 28 image rows as a sequence", hidden=128)
register_model("gru_rows", RowRNN, "GRU (128 units) reading the 28 image rows as a sequence", hidden=128, cell="gru")
register_model(
    "bilstm_rows",
    RowRNN,
    "bidirectional LSTM, 2 layers of 128 units each way, over the image rows",
    hidden=128,
    layers=2,
    bidirectional=True,
    dropout=0.2,
)
register_model(
    "bigru_rows",
    RowRNN,
    "bidirectional GRU, 2 layers of 128 units each way, over the image rows",
    hidden=128,
    layers=2,
    bidirectional=True,
    dropout=0.2,
    cell="gru",
)
