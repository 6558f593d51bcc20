"""Independent PyTorch reference models: the parity tests' ground truth and the benchmarks' rival.

Test and benchmark tooling, not runtime: needs torch (``pip install eca_keras[benchmark]`` or
``[test]``); nothing under ``eca_keras`` outside ``eca_keras.testing`` imports it.

Re-implemented from architecture descriptions (not copied) so that their state-dict layouts match:

* the official ECA-Net release (BangguWu/ECANet): torchvision-style ResNet v1 with an ``eca``
  module per block, and ECA-MobileNetV2.

timm's models are checked against timm itself (:mod:`eca_keras.testing.references`).

All models are NCHW, expose ``forward_features(x)`` (last feature map before pooling) and use
BatchNorm eps 1e-5.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = [
    "MOBILENET_V2_SETTINGS",
    "OFFICIAL_RESNETS",
    "RELEASED_K_SIZES",
    "EcaLayer",
    "MobileNetV2",
    "ResNet",
    "count_params",
    "eca_layer",
    "official_mobilenet_v2",
    "official_resnet",
    "randomize_",
    "without_attention",
]

# depth -> (bottleneck, blocks per stage)
OFFICIAL_RESNETS = {
    18: (False, (2, 2, 2, 2)),
    34: (False, (3, 4, 6, 3)),
    50: (True, (3, 4, 6, 3)),
    101: (True, (3, 4, 23, 3)),
    152: (True, (3, 8, 36, 3)),
}
# ECA kernel size per stage of the released official checkpoints.
RELEASED_K_SIZES = {
    18: (3, 5, 7, 7),
    34: (3, 3, 5, 7),
    50: (3, 5, 5, 7),
    101: (3, 3, 5, 7),
    152: (3, 3, 5, 7),
}
# MobileNetV2 inverted residual settings: expansion t, channels c, repeats n, first stride s.
MOBILENET_V2_SETTINGS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


class EcaLayer(nn.Module):
    """Efficient channel attention: GAP -> Conv1d over channels -> sigmoid -> rescale."""

    def __init__(self, channel: int, k_size: int = 3):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv = nn.Conv1d(1, 1, kernel_size=k_size, padding=(k_size - 1) // 2, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.avg_pool(x).squeeze(-1).transpose(-1, -2)  # [B, 1, C]
        y = self.conv(y).transpose(-1, -2).unsqueeze(-1)  # [B, C, 1, 1]
        return x * self.sigmoid(y)


eca_layer = EcaLayer  # official spelling


def _conv(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False)


class Block(nn.Module):
    """ResNet v1 basic (expansion 1) or bottleneck (expansion 4) block with ECA before the add."""

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int,
        k_size: int,
        bottleneck: bool,
        downsample: nn.Module | None = None,
    ):
        super().__init__()
        self.bottleneck = bottleneck
        out = planes * (4 if bottleneck else 1)
        if bottleneck:
            self.conv1, self.bn1 = _conv(inplanes, planes, 1), nn.BatchNorm2d(planes)
            self.conv2, self.bn2 = _conv(planes, planes, 3, stride), nn.BatchNorm2d(planes)
            self.conv3, self.bn3 = _conv(planes, out, 1), nn.BatchNorm2d(out)
        else:
            self.conv1, self.bn1 = _conv(inplanes, planes, 3, stride), nn.BatchNorm2d(planes)
            self.conv2, self.bn2 = _conv(planes, planes, 3), nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.eca = EcaLayer(out, k_size)
        self.downsample = downsample

    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn3 if self.bottleneck else self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        if self.bottleneck:
            y = self.bn3(self.conv3(self.relu(self.bn2(self.conv2(y)))))
        else:
            y = self.bn2(self.conv2(y))
        y = self.eca(y)
        return self.relu(y + shortcut)


class ResNet(nn.Module):
    """The official (torchvision-style) ResNet v1 with ECA; ``k_sizes``: one ECA kernel size per
    stage."""

    def __init__(
        self,
        layers: Sequence[int],
        bottleneck: bool,
        k_sizes: Sequence[int],
        num_classes: int = 1000,
    ):
        super().__init__()
        self.conv1 = _conv(3, 64, 7, 2)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        expansion = 4 if bottleneck else 1
        inplanes = 64
        for i, (n, planes) in enumerate(zip(layers, (64, 128, 256, 512), strict=True)):
            stride, out = (1 if i == 0 else 2), planes * expansion
            downsample = None
            if stride != 1 or inplanes != out:
                downsample = nn.Sequential(_conv(inplanes, out, 1, stride), nn.BatchNorm2d(out))
            blocks = [Block(inplanes, planes, stride, k_sizes[i], bottleneck, downsample)]
            blocks += [Block(out, planes, 1, k_sizes[i], bottleneck) for _ in range(n - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            inplanes = out
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inplanes, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    features = forward_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.forward_features(x)), 1))


def official_resnet(
    depth: int, k_sizes: Sequence[int] | None = None, num_classes: int = 1000
) -> ResNet:
    """Official ECA-ResNet-{18,34,50,101,152}; ``k_sizes=None`` uses the released kernels."""
    bottleneck, layers = OFFICIAL_RESNETS[depth]
    k_sizes = RELEASED_K_SIZES[depth] if k_sizes is None else tuple(k_sizes)
    if len(k_sizes) != 4:
        raise ValueError(f"need 4 k_sizes, got {k_sizes}")
    return ResNet(layers, bottleneck, k_sizes, num_classes)


def _conv_bn_relu(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1):
    return nn.Sequential(_conv(cin, cout, k, stride, groups), nn.BatchNorm2d(cout), nn.ReLU6())


class InvertedResidual(nn.Module):
    """MobileNetV2 block: [1x1 expand] -> 3x3 depthwise -> 1x1 project -> BN -> ECA (+ x)."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int, k_size: int):
        super().__init__()
        hidden = inp * expand_ratio
        self.use_res_connect = stride == 1 and inp == oup
        layers = [] if expand_ratio == 1 else [_conv_bn_relu(inp, hidden, 1)]
        layers += [
            _conv_bn_relu(hidden, hidden, 3, stride, groups=hidden),
            _conv(hidden, oup, 1),
            nn.BatchNorm2d(oup),
            EcaLayer(oup, k_size),
        ]
        self.conv = nn.Sequential(*layers)

    def last_bn(self) -> nn.BatchNorm2d | None:
        return self.conv[-2] if self.use_res_connect else None  # only residual branches

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """Official ECA-MobileNetV2 (width 1.0); ECA k = 1 for c < 96, else 3."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        layers, inp = [_conv_bn_relu(3, 32, 3, 2)], 32
        for t, c, n, s in MOBILENET_V2_SETTINGS:
            for i in range(n):
                layers.append(InvertedResidual(inp, c, s if i == 0 else 1, t, 1 if c < 96 else 3))
                inp = c
        layers.append(_conv_bn_relu(inp, 1280, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.25), nn.Linear(1280, num_classes))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean([2, 3]))


def official_mobilenet_v2(num_classes: int = 1000) -> MobileNetV2:
    """Official ECA-MobileNetV2 (width 1.0)."""
    return MobileNetV2(num_classes)


def without_attention(model: nn.Module) -> nn.Module:
    """The plain twin, in place: every ECA module replaced by ``nn.Identity``; returns ``model``."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, EcaLayer):
                setattr(parent, name, nn.Identity())
    return model


def count_params(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@torch.no_grad()
def randomize_(
    model: nn.Module, seed: int = 0, last_bn_scale: float = 0.2, last_bns=None
) -> nn.Module:
    """Fill all parameters and BN buffers with seeded random values; return ``model.eval()``.

    Convs get He-normal weights, ECA kernels N(0, 1/k), Linear N(0, 1/fan_in); BN gets
    weight U(0.5, 1.5), bias N(0, 0.1), running_mean N(0, 0.1), running_var U(0.5, 2.0). The last
    BN of every residual branch (``last_bns``, default: the ``last_bn()`` of this module's blocks)
    has its weight/bias scaled by ``last_bn_scale`` so that very deep nets (ResNet-152,
    ECA-ResNet-269d) keep activations O(1).
    """
    g = torch.Generator().manual_seed(seed)

    def randn(t: torch.Tensor, std: float, mean: float = 0.0) -> None:
        t.copy_(torch.randn(t.shape, generator=g) * std + mean)

    def rand(t: torch.Tensor, lo: float, hi: float) -> None:
        t.copy_(torch.rand(t.shape, generator=g) * (hi - lo) + lo)

    if last_bns is None:
        last_bns = [m.last_bn() for m in model.modules() if getattr(m, "last_bn", lambda: None)()]
    last = {id(bn) for bn in last_bns}
    for m in model.modules():
        if isinstance(m, nn.Conv1d):
            randn(m.weight, 1.0 / math.sqrt(m.weight.shape[-1]))
        elif isinstance(m, (nn.Conv2d, nn.Linear)):
            fan_in = m.weight[0].numel()
            randn(m.weight, math.sqrt((2.0 if isinstance(m, nn.Conv2d) else 1.0) / fan_in))
            if m.bias is not None:
                randn(m.bias, 0.1)
        elif isinstance(m, nn.BatchNorm2d):
            scale = last_bn_scale if id(m) in last else 1.0
            rand(m.weight, 0.5, 1.5)
            m.weight.mul_(scale)
            randn(m.bias, 0.1 * scale)
            randn(m.running_mean, 0.1)
            rand(m.running_var, 0.5, 2.0)
            if m.num_batches_tracked is not None:
                m.num_batches_tracked.fill_(int(torch.randint(1, 10**6, (), generator=g)))
    return model.eval()
