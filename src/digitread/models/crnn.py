"""Sequence readers: a whole line of digits in, one column of class scores per 4 pixels out (CTC), or
per 2 pixels in a model that splits each column in two (``subframes``).

A small CNN turns the fixed-height strip into a sequence of column features (height pooled away,
width divided by 4), a bidirectional LSTM gives each column the context of its neighbours, and a
linear layer scores blank plus the ten digits per column. CTC training needs no per-digit positions,
so touching and overlapping digits are read without ever being cut apart.
"""

from __future__ import annotations

import torch
from torch import nn

from digitread.models._registry import register_model

BLANK = 10  # class index of the CTC blank; digits keep their own values 0-9
POINT = 11  # a point between digits, in models with a twelfth class (crnn_points)
CLASS_OF = {**{str(d): d for d in range(10)}, ".": POINT}  # a label's character -> its class
CHAR_OF = {c: ch for ch, c in CLASS_OF.items()}
FRAME_WIDTH = 4  # strip pixels per feature column: per output column, unless a model splits them


def reads_points(model: nn.Module) -> bool:
    """Whether ``model`` has the point class (it scores more than blank and the digits)."""
    return getattr(model, "num_classes", getattr(getattr(model, "head", None), "out_features", POINT)) > POINT


def frame_width(model: nn.Module) -> int:
    """Strip pixels per output column of ``model``."""
    return FRAME_WIDTH // getattr(model, "subframes", 1)


def _block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class CRNN(nn.Module):
    """(B, 1, 32, W) strips -> (B, W // 4 * subframes, num_classes) logits: the ten digits, ``BLANK``
    (the CTC blank) and, with ``num_classes=12``, ``POINT`` (a decimal point or separator between digits).

    ``subframes=2``: each column's LSTM output is scored twice, as two output columns 2 pixels apart.
    CTC needs a column per character and a blank between two equal ones, so at 4 pixels a column a
    thin 1 pressed against the next digit, or "11" and "000" written close, have too few columns to be
    read; the convolutions and the LSTM cost the same."""

    task = "strings"

    def __init__(
        self,
        channels: tuple[int, ...] = (16, 32, 64, 96),
        hidden: int = 96,
        height: int = 32,
        num_classes: int = 11,
        dropout: float = 0.1,
        subframes: int = 1,
    ):
        super().__init__()
        self.num_classes, self.subframes = num_classes, subframes
        c1, c2, c3, c4 = channels
        self.features = nn.Sequential(
            *_block(1, c1), nn.MaxPool2d(2),  # 16 x W/2
            *_block(c1, c2), nn.MaxPool2d(2),  # 8 x W/4
            *_block(c2, c3), *_block(c3, c3), nn.MaxPool2d((2, 1)),  # 4 x W/4
            *_block(c3, c4), nn.MaxPool2d((2, 1)),  # 2 x W/4
        )  # fmt: skip
        self.dropout = nn.Dropout(dropout)
        self.rnn = nn.LSTM(c4 * (height // 16), hidden, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden, num_classes * subframes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``lengths``: valid output columns per strip when a batch is padded to its widest strip; the LSTM
        then stops at each strip's own end, so a reading does not depend on what it was batched with."""
        f = self.features(x)  # (B, C, 2, W/4)
        f = self.dropout(f.flatten(1, 2).transpose(1, 2)).float()  # (B, W/4, C * 2); the LSTM runs in fp32
        if lengths is None:
            f, _ = self.rnn(f)
        else:
            columns = torch.div(lengths + self.subframes - 1, self.subframes, rounding_mode="floor")
            packed = nn.utils.rnn.pack_padded_sequence(f, columns.cpu(), batch_first=True, enforce_sorted=False)
            f, _ = nn.utils.rnn.pad_packed_sequence(self.rnn(packed)[0], batch_first=True, total_length=f.shape[1])
        logits = self.head(self.dropout(f))  # (B, W/4, num_classes * subframes)
        return logits if self.subframes == 1 else logits.unflatten(2, (self.subframes, -1)).flatten(1, 2)


register_model(
    "crnn_digits",
    CRNN,
    "CNN + bidirectional LSTM + CTC reading a whole 32-pixel-high strip of digits (task: strings)",
)
WIDE = {"channels": (32, 64, 96, 128), "hidden": 128}
register_model(
    "crnn_wide",
    CRNN,
    "crnn_digits with wider convolutions (32-64-96-128) and a 128-unit LSTM (task: strings)",
    **WIDE,
)
register_model(
    "crnn_points",
    CRNN,
    "crnn_wide with a twelfth class, a point between digits, read whole with them (task: strings)",
    **WIDE,
    num_classes=POINT + 1,
)
register_model(
    "crnn_points_fine",
    CRNN,
    "crnn_points scoring a column every 2 pixels, not 4: room for thin digits side by side (task: strings)",
    **WIDE,
    num_classes=POINT + 1,
    subframes=2,
)
