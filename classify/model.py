"""The 12-lead classifier: a compact 1-D ResNet (the field's reference family, cf.
``resnet1d_wang`` / ``xresnet1d`` in Strodthoff et al. 2021), sized for CPU training.

Input ``(batch, 24, 1000)``: 12 median-centred leads at 100 Hz (mV, 0 where unknown) and 12
"observed" mask channels (see :func:`classify.data.normalize`). Output: 5 logits, one per
superclass (multi-label; apply a sigmoid for probabilities).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture hyper-parameters (stored with the weights).

    Attributes
    ----------
    in_channels
        24 = 12 leads + 12 observed masks.
    n_classes
        5 superclasses.
    stem_channels
        Width of the first convolution (kernel 15, stride 2, then max-pool 2 → 25 Hz).
    widths
        Channels of each residual stage; every stage after the first halves the time axis.
    kernel
        Kernel size of the residual convolutions (odd).
    dropout
        Dropout before the linear head.
    """

    in_channels: int = 24
    n_classes: int = 5
    stem_channels: int = 32
    widths: tuple[int, ...] = (32, 48, 64, 96)
    kernel: int = 7
    dropout: float = 0.2


class ResBlock1d(nn.Module):
    """Two convolutions with batch norm and a (projected) identity shortcut."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int) -> None:
        super().__init__()
        pad = kernel // 2
        self.conv1 = nn.Conv1d(c_in, c_out, kernel, stride=stride, padding=pad, bias=False)
        self.bn1 = nn.BatchNorm1d(c_out)
        self.conv2 = nn.Conv1d(c_out, c_out, kernel, padding=pad, bias=False)
        self.bn2 = nn.BatchNorm1d(c_out)
        self.act = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv1d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm1d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.act(y + self.shortcut(x))


class ECGResNet1d(nn.Module):
    """Compact 1-D ResNet for 12-lead ECG superclass classification (~0.22 M parameters)."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        cfg = config or ModelConfig()
        self.config = cfg
        self.stem = nn.Sequential(
            nn.Conv1d(cfg.in_channels, cfg.stem_channels, 15, stride=2, padding=7, bias=False),
            nn.BatchNorm1d(cfg.stem_channels), nn.ReLU(inplace=True), nn.MaxPool1d(2))
        blocks = []
        c_in = cfg.stem_channels
        for i, width in enumerate(cfg.widths):
            blocks.append(ResBlock1d(c_in, width, cfg.kernel, stride=1 if i == 0 else 2))
            c_in = width
        self.blocks = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(2 * c_in, cfg.n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Last convolutional feature map ``(batch, channels, time)``."""
        return self.blocks(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, n_classes)`` for input ``(batch, 24, n_samples)``."""
        h = self.features(x)
        pooled = torch.cat([h.mean(dim=-1), h.amax(dim=-1)], dim=1)
        return self.head(self.dropout(pooled))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
