"""Models shared by the lessons: an MLP, a LeNet-style CNN, and Zhang et al.'s small Inception.

Lesson 01 (label noise and memorization) trains all three; lesson 06 (learning to
reweight) uses the LeNet, as Ren et al. 2018 do for MNIST 4 vs 9.
"""

from __future__ import annotations

import torch
from torch import nn

from .data import with_channel_axis

__all__ = ["MLP", "LeNet", "SmallInception", "count_parameters"]


class MLP(nn.Sequential):
    """Fully connected ReLU network; ``hidden=(512,)`` is Zhang et al.'s MLP 1x512.

    Takes images of any shape (they are flattened) or flat vectors. Lesson 01 teaches it.
    """

    def __init__(self, in_features: int = 784, hidden=(512,), num_classes: int = 10):
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, num_classes))
        super().__init__(*layers)


class LeNet(nn.Module):
    """LeNet-style CNN: two 5x5 conv + max-pool blocks, then two hidden dense layers.

    Works on ``(n, in_channels, H, W)`` images of any size of at least 12x12 (MNIST 28x28,
    CIFAR 32x32): an adaptive pool fixes the size before the dense layers. Lesson 01 teaches it.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 1):
        super().__init__()
        c1, c2 = 6 * width, 16 * width
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(5),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c2 * 25, 120), nn.ReLU(),
            nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x):
        x = with_channel_axis(x)
        return self.classifier(self.features(x))


class _ConvBN(nn.Sequential):
    def __init__(self, c_in, c_out, kernel, stride=1):
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2 if stride == 1 else 0, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(),
        )


class _Inception(nn.Module):
    def __init__(self, c_in, c1, c3):
        super().__init__()
        self.b1 = _ConvBN(c_in, c1, 1)
        self.b3 = _ConvBN(c_in, c3, 3)
        self.out_channels = c1 + c3

    def forward(self, x):
        return torch.cat([self.b1(x), self.b3(x)], dim=1)


class _Downsample(nn.Module):
    def __init__(self, c_in, c3):
        super().__init__()
        self.conv = _ConvBN(c_in, c3, 3, stride=2)
        self.pool = nn.MaxPool2d(3, stride=2)
        self.out_channels = c_in + c3

    def forward(self, x):
        return torch.cat([self.conv(x), self.pool(x)], dim=1)


class SmallInception(nn.Module):
    """The small Inception network of Zhang et al. 2017 (their appendix), for CIFAR-10 or MNIST.

    ``width`` scales every channel count (1.0 is the paper's network, about 1.6 M
    parameters); lesson 01 uses ``width=0.25`` so that it trains in minutes on a CPU.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: float = 1.0):
        super().__init__()

        def c(k):
            return max(4, int(round(k * width)))

        layers: list[nn.Module] = [_ConvBN(in_channels, c(96), 3)]
        ch = c(96)
        plan = [("i", 32, 32), ("i", 32, 48), ("d", 80), ("i", 112, 48), ("i", 96, 64),
                ("i", 80, 80), ("i", 48, 96), ("d", 96), ("i", 176, 160), ("i", 176, 160)]
        for step in plan:
            block = _Inception(ch, c(step[1]), c(step[2])) if step[0] == "i" else _Downsample(ch, c(step[1]))
            layers.append(block)
            ch = block.out_channels
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(ch, num_classes)

    def forward(self, x):
        x = with_channel_axis(x)
        return self.fc(self.features(x))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters. Lesson 01 teaches it."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
