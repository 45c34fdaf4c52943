"""Convolutional digit classifiers."""

from __future__ import annotations

import torch
from torch import nn

from digitread.models._registry import register_model


def _conv_bn(cin: int, cout: int, kernel: int = 3, stride: int = 1, norm: bool = True) -> list[nn.Module]:
    conv = nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, bias=not norm)
    return [conv, nn.BatchNorm2d(cout), nn.ReLU(inplace=True)] if norm else [conv, nn.ReLU(inplace=True)]


class DigitCNN(nn.Module):
    """Stages of conv-BN-ReLU blocks, each stage but the last halving the map; a linear head over the
    flattened 7x7 map (or, with ``head="avg"``, over globally pooled features).

    ``widths`` gives one channel count per stage, ``depth`` the conv blocks per stage (one number for
    all stages, or one per stage: blocks at 28x28 cost four times those at 14x14).
    """

    def __init__(
        self,
        widths: tuple[int, ...] = (32, 64, 128),
        depth: int | tuple[int, ...] = 1,
        num_classes: int = 10,
        in_chans: int = 1,
        dropout: float = 0.2,
        head: str = "flatten",
        in_size: int = 28,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        depths = [depth] * len(widths) if isinstance(depth, int) else list(depth)
        if len(depths) != len(widths):
            raise ValueError(f"depth has {len(depths)} entries for {len(widths)} stages")
        cin = in_chans
        for i, (width, blocks) in enumerate(zip(widths, depths, strict=True)):
            for _ in range(blocks):
                layers += _conv_bn(cin, width)
                cin = width
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))  # 28 -> 14 -> 7
        self.features = nn.Sequential(*layers)
        # "flatten" keeps where each feature is (a 7 and a 1 differ mostly by where the strokes are);
        # "avg" pools globally, which needs a receptive field covering the whole digit to work well.
        if head not in ("flatten", "avg"):
            raise ValueError(f"head must be 'flatten' or 'avg', got {head!r}")
        side = in_size // 2 ** (len(widths) - 1)
        self.pool = nn.Flatten() if head == "flatten" else nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(cin * side * side if head == "flatten" else cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (B, C, 7, 7)
        x = self.pool(x)  # (B, C*7*7) or (B, C)
        return self.head(self.dropout(x))  # (B, num_classes)


class FastCNN(nn.Module):
    """Built for training speed on a CPU: a strided 5x5 stem and a max-pool take the 28x28 digit
    straight to 7x7, where the 3x3 convs that follow cost a sixteenth of what they would at full size
    (on a CPU, the full-size layers of ``DigitCNN`` take most of each step: moving activations, not
    arithmetic). A linear head over the flattened 7x7 map.

    ``crop`` drops that many pixels of every side before the stem. MNIST centres each digit's 20x20 box
    in 28x28 by its centre of mass, so the outer two pixels hold 0.2% of the ink: ``crop=2`` reads the
    24x24 centre, with 6x6 maps after the stem, for 27% fewer operations in every later layer.

    ``norm=False`` drops BatchNorm: for this network its forward and backward passes were 30% of a
    training step on a 2-core CPU (24,000 images/s without, 17,500 with, bf16), and at a high
    learning rate with label smoothing the network learns as fast per image without it."""

    def __init__(
        self,
        stem: int = 16,
        widths: tuple[int, ...] = (32, 64),
        num_classes: int = 10,
        in_chans: int = 1,
        dropout: float = 0.0,
        in_size: int = 28,
        norm: bool = True,
        crop: int = 0,
    ):
        super().__init__()
        self.crop = crop
        stem_layers = _conv_bn(in_chans, stem, kernel=5, stride=2, norm=norm)
        # The max-pool before the ReLU: the same function (both are monotonic), with the ReLU and its
        # backward pass on a quarter of the values. Parameter names are unchanged.
        layers = [*stem_layers[:-1], nn.MaxPool2d(2), stem_layers[-1]]  # 28 -> 14 -> 7
        cin = stem
        for width in widths:
            layers += _conv_bn(cin, width, norm=norm)
            cin = width
        self.features = nn.Sequential(*layers)
        side = (in_size - 2 * crop) // 4
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(cin * side * side, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.crop:
            x = x[..., self.crop : -self.crop, self.crop : -self.crop]
        x = self.features(x).flatten(1)  # (B, C*7*7), or C*6*6 on the 24x24 centre
        return self.head(self.dropout(x))  # (B, num_classes)


class ResidualBlock(nn.Module):
    """Two 3x3 conv-BN layers and a shortcut (a strided 1x1 conv where the shape changes), then ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        # No ReLU after the second conv: it comes after the shortcut is added.
        self.body = nn.Sequential(
            *_conv_bn(cin, cout, stride=stride), nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        )
        self.shortcut = (
            nn.Identity()
            if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class ResNetDigits(nn.Module):
    """A small ResNet for 28x28 digits: a 3x3 stem, then stages of residual blocks, each stage after the
    first halving the map (28 -> 14 -> 7), global average pooling and a linear head. Residual
    connections let it be deeper than ``DigitCNN`` and still train quickly, for the best accuracy."""

    def __init__(
        self,
        widths: tuple[int, ...] = (32, 64, 128),
        blocks: int | tuple[int, ...] = 1,
        num_classes: int = 10,
        in_chans: int = 1,
        dropout: float = 0.2,
    ):
        super().__init__()
        counts = [blocks] * len(widths) if isinstance(blocks, int) else list(blocks)
        if len(counts) != len(widths):
            raise ValueError(f"blocks has {len(counts)} entries for {len(widths)} stages")
        layers = _conv_bn(in_chans, widths[0])
        cin = widths[0]
        for i, (width, count) in enumerate(zip(widths, counts, strict=True)):
            for j in range(count):
                layers.append(ResidualBlock(cin, width, stride=2 if i > 0 and j == 0 else 1))
                cin = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x))  # (B, C)
        return self.head(self.dropout(x))  # (B, num_classes)


register_model(
    "cnn_small", DigitCNN, "small fast CNN: convs of 16-32-64 channels, BatchNorm", widths=(16, 32, 64), depth=1
)
register_model(
    "cnn", DigitCNN, "CNN: convs of 32-64-128 channels, BatchNorm, dropout", widths=(32, 64, 128), depth=1, dropout=0.25
)
register_model(
    "cnn_fast",
    FastCNN,
    "fast to train on a CPU: strided stem to 7x7 at once, then 32-64 channels, no BatchNorm",
    stem=16,
    norm=False,
)
register_model(
    "cnn_deep",
    DigitCNN,
    "cnn with a second 128-channel conv at 7x7: more capacity where it is cheap (for long schedules)",
    widths=(32, 64, 128),
    depth=(1, 1, 2),
    dropout=0.25,
)
register_model(
    "resnet",
    ResNetDigits,
    "residual CNN: a stem and three stages of residual blocks (32-64-128 channels, 28-14-7 pixels), BatchNorm",
    widths=(32, 64, 128),
    blocks=1,
)
register_model(
    "cnn_fast24",
    FastCNN,
    "cnn_fast on the digit's 24x24 centre: 99.0% in about 3 s on a CPU (--recipe fast)",
    stem=16,
    norm=False,
    crop=2,
)
register_model(
    "cnn_fast_wide",
    FastCNN,
    "cnn_fast with a 24-channel stem and 48-96 channels",
    stem=24,
    widths=(48, 96),
    norm=False,
)
register_model(
    "cnn_fast_wide24",
    FastCNN,
    "cnn_fast_wide on the digit's 24x24 centre: 99.5% in under 20 s on a CPU (--recipe fast995)",
    stem=24,
    widths=(48, 96),
    norm=False,
    crop=2,
)
