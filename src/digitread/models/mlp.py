"""Multi-layer perceptrons, including the study's own network."""

from __future__ import annotations

import torch
from torch import nn

from digitread.models._registry import register_model


class MLP(nn.Module):
    """Flatten, then Linear+activation (+dropout) per hidden width, then a Linear to the classes."""

    def __init__(
        self,
        hidden: tuple[int, ...] = (512, 256),
        num_classes: int = 10,
        in_pixels: int = 28 * 28,
        dropout: float = 0.2,
        batchnorm: bool = False,
        glorot_init: bool = False,
    ):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_pixels
        for h in hidden:
            layers.append(nn.Linear(width, h))
            if batchnorm:
                layers.append(nn.BatchNorm1d(h))
            layers.append(nn.ReLU(inplace=True))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)
        if glorot_init:
            # The study's network was built in Keras: Glorot-uniform weights and zero biases. With its
            # 10-unit ReLU bottlenecks this matters: PyTorch's default init kills more units there.
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    nn.init.xavier_uniform_(m.weight)
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, 1, 28, 28) -> (B, num_classes)


register_model(
    "seed_mlp",
    MLP,
    "the study's network: Dense 50-50-10-10-50 ReLU, then 10 logits",
    hidden=(50, 50, 10, 10, 50),
    dropout=0.0,
    glorot_init=True,
)
register_model("mlp", MLP, "MLP 512-256 with BatchNorm and dropout", hidden=(512, 256), dropout=0.2, batchnorm=True)
