"""PyTorch reference networks with torchvision's exact module and parameter names, in torch.nn alone.

torchvision is not a dependency (its wheels do not pair with the CPU-only torch build the
dev extra pins), so the three families are rebuilt here from torchvision's own sources
(torchvision/models/resnet.py, regnet.py and vision_transformer.py, with ops/misc.py's
Conv2dNormActivation, SqueezeExcitation and MLP): the same submodule names, nesting and
forward computation, with the stem, widths and depths made configurable so that
weaksup's tiny CPU variants have a reference too. At full size they reproduce
torchvision's parameter counts (checked in tests/test_weights.py), so their state-dict
keys are torchvision's.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import nn

# ----------------------------------------------------------------------------------------
# ResNet / ResNeXt (torchvision.models.resnet).
# ----------------------------------------------------------------------------------------


def _conv3x3(cin: int, cout: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, groups=groups, bias=False)


def _conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 groups: int = 1, base_width: int = 64):
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = _conv1x1(inplanes, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride, groups)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = _conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class ResNet(nn.Module):
    """torchvision's ResNet(Bottleneck, layers, groups=, width_per_group=); stem and planes configurable."""

    def __init__(self, layers, num_classes: int, groups: int = 1, width_per_group: int = 64,
                 planes=(64, 128, 256, 512), stem_kernel: int = 7, stem_stride: int = 2, stem_pool: bool = True,
                 stem_width: int = 64):
        super().__init__()
        self.inplanes = stem_width
        self.groups = groups
        self.base_width = width_per_group
        self.conv1 = nn.Conv2d(3, stem_width, kernel_size=stem_kernel, stride=stem_stride, padding=stem_kernel // 2,
                               bias=False)
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1) if stem_pool else nn.Identity()
        for i, (p, n) in enumerate(zip(planes, layers)):
            setattr(self, f"layer{i + 1}", self._make_layer(p, n, stride=1 if i == 0 else 2))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(planes[-1] * Bottleneck.expansion, num_classes)
        self.num_stages = len(planes)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * Bottleneck.expansion:
            downsample = nn.Sequential(_conv1x1(self.inplanes, planes * Bottleneck.expansion, stride),
                                       nn.BatchNorm2d(planes * Bottleneck.expansion))
        layers = [Bottleneck(self.inplanes, planes, stride, downsample, self.groups, self.base_width)]
        self.inplanes = planes * Bottleneck.expansion
        layers += [Bottleneck(self.inplanes, planes, groups=self.groups, base_width=self.base_width)
                   for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(self.num_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


# ----------------------------------------------------------------------------------------
# RegNetY (torchvision.models.regnet).
# ----------------------------------------------------------------------------------------


def _conv_norm_act(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    """ops.misc.Conv2dNormActivation: a Sequential [conv, norm, (activation)]."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, padding=(k - 1) // 2, groups=groups, bias=False),
                               nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class SqueezeExcitation(nn.Module):
    """ops.misc.SqueezeExcitation."""

    def __init__(self, input_channels: int, squeeze_channels: int):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(input_channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, input_channels, 1)
        self.activation = nn.ReLU()
        self.scale_activation = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.fc2(self.activation(self.fc1(self.avgpool(x))))
        return self.scale_activation(s) * x


class ResBottleneckBlock(nn.Module):
    def __init__(self, width_in: int, width_out: int, stride: int, group_width: int, se_ratio: float):
        super().__init__()
        self.proj = None
        if width_in != width_out or stride != 1:
            self.proj = _conv_norm_act(width_in, width_out, 1, stride, act=False)
        w_b = round(width_out * 1.0)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        layers["a"] = _conv_norm_act(width_in, w_b, 1)
        layers["b"] = _conv_norm_act(w_b, w_b, 3, stride, groups=w_b // group_width)
        layers["se"] = SqueezeExcitation(w_b, round(se_ratio * width_in))
        layers["c"] = _conv_norm_act(w_b, width_out, 1, act=False)
        self.f = nn.Sequential(layers)
        self.activation = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x) + self.f(x) if self.proj is not None else x + self.f(x)
        return self.activation(x)


class RegNet(nn.Module):
    """torchvision's RegNet with ResBottleneckBlock and SE; stages given as (width, depth, group_width)."""

    def __init__(self, stages, num_classes: int, stem_width: int = 32, stem_stride: int = 2, se_ratio: float = 0.25):
        super().__init__()
        self.stem = _conv_norm_act(3, stem_width, 3, stem_stride)
        blocks = []
        width_in = stem_width
        for i, (width, depth, group_width) in enumerate(stages):
            stage = nn.Sequential()
            for j in range(depth):
                stage.add_module(f"block{i + 1}-{j}", ResBottleneckBlock(width_in if j == 0 else width, width,
                                                                         2 if j == 0 else 1, group_width, se_ratio))
            blocks.append((f"block{i + 1}", stage))
            width_in = width
        self.trunk_output = nn.Sequential(OrderedDict(blocks))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(width_in, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.avgpool(self.trunk_output(self.stem(x))).flatten(start_dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


# ----------------------------------------------------------------------------------------
# Vision Transformer (torchvision.models.vision_transformer).
# ----------------------------------------------------------------------------------------


class EncoderBlock(nn.Module):
    def __init__(self, num_heads: int, hidden_dim: int, mlp_dim: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(hidden_dim, eps=1e-6)
        self.self_attention = nn.MultiheadAttention(hidden_dim, num_heads, dropout=0.0, batch_first=True)
        self.dropout = nn.Dropout(0.0)
        self.ln_2 = nn.LayerNorm(hidden_dim, eps=1e-6)
        # ops.misc.MLP(in, [mlp_dim, in], GELU): Linear, GELU, Dropout, Linear, Dropout.
        self.mlp = nn.Sequential(nn.Linear(hidden_dim, mlp_dim), nn.GELU(), nn.Dropout(0.0),
                                 nn.Linear(mlp_dim, hidden_dim), nn.Dropout(0.0))

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        x = self.ln_1(inp)
        x, _ = self.self_attention(query=x, key=x, value=x, need_weights=False)
        x = self.dropout(x) + inp
        return x + self.mlp(self.ln_2(x))


class Encoder(nn.Module):
    def __init__(self, seq_length: int, num_layers: int, num_heads: int, hidden_dim: int, mlp_dim: int):
        super().__init__()
        self.pos_embedding = nn.Parameter(torch.empty(1, seq_length, hidden_dim).normal_(std=0.02))
        self.dropout = nn.Dropout(0.0)
        self.layers = nn.Sequential(OrderedDict(
            (f"encoder_layer_{i}", EncoderBlock(num_heads, hidden_dim, mlp_dim)) for i in range(num_layers)))
        self.ln = nn.LayerNorm(hidden_dim, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ln(self.layers(self.dropout(x + self.pos_embedding)))


class VisionTransformer(nn.Module):
    def __init__(self, image_size: int, patch_size: int, num_layers: int, num_heads: int, hidden_dim: int,
                 mlp_dim: int, num_classes: int):
        super().__init__()
        self.patch_size, self.hidden_dim = patch_size, hidden_dim
        self.conv_proj = nn.Conv2d(3, hidden_dim, kernel_size=patch_size, stride=patch_size)
        self.class_token = nn.Parameter(torch.zeros(1, 1, hidden_dim))
        self.encoder = Encoder((image_size // patch_size) ** 2 + 1, num_layers, num_heads, hidden_dim, mlp_dim)
        self.heads = nn.Sequential(OrderedDict(head=nn.Linear(hidden_dim, num_classes)))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        x = self.conv_proj(x).reshape(n, self.hidden_dim, -1).permute(0, 2, 1)
        x = torch.cat([self.class_token.expand(n, -1, -1), x], dim=1)
        return self.encoder(x)[:, 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.heads(self.features(x))


# ----------------------------------------------------------------------------------------
# Random weights that keep activations O(1), so that logits comparisons mean something.
# ----------------------------------------------------------------------------------------


@torch.no_grad()
def randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    """Random BN/LN affines and running statistics, class token, position embedding and heads."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)):
            m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
            m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
            m.num_batches_tracked.fill_(7)
        if isinstance(m, nn.MultiheadAttention):
            m.in_proj_bias.copy_(0.1 * torch.randn(m.in_proj_bias.shape, generator=g))
            m.out_proj.bias.copy_(0.1 * torch.randn(m.out_proj.bias.shape, generator=g))
    for name, p in module.named_parameters():
        if name in ("class_token", "encoder.pos_embedding"):
            p.copy_(0.1 * torch.randn(p.shape, generator=g))
        if name in ("fc.weight", "heads.head.weight"):
            p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[1]))
        if name in ("fc.bias", "heads.head.bias"):
            p.copy_(0.1 * torch.randn(p.shape, generator=g))
    return module.eval()
