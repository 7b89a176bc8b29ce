"""DPT head (Ranftl et al.) as configured by Depth Anything: one head, parameterised by the
output activation (ReLU for relative disparity, sigmoid x max_depth for metric depth).

Parameter names mirror the official `depth_anything_v2/dpt.py` and `util/blocks.py`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv3x3(cin: int, cout: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, padding=1, bias=bias)


class ResidualConvUnit(nn.Module):
    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = _conv3x3(features, features)
        self.conv2 = _conv3x3(features, features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(x))
        return self.conv2(F.relu(out)) + x


class FusionBlock(nn.Module):
    """Adds the skip path (if any), refines, upsamples (x2 or to `size`), projects."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.out_conv = nn.Conv2d(features, features, kernel_size=1)
        # resConfUnit1 only runs when a skip input is given (not in refinenet4), but the
        # official checkpoints contain it for every block.
        self.resConfUnit1 = ResidualConvUnit(features)
        self.resConfUnit2 = ResidualConvUnit(features)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None, size=None) -> torch.Tensor:
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        if size is None:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        else:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
        return self.out_conv(x)


class DPTHead(nn.Module):
    """Four token maps (B, N, C) on a patch_h x patch_w grid -> (B, 1, 14*patch_h, 14*patch_w)."""

    def __init__(
        self, *, in_channels: int, features: int, out_channels: tuple[int, ...], max_depth: float | None
    ) -> None:
        super().__init__()
        self.max_depth = max_depth
        self.projects = nn.ModuleList(nn.Conv2d(in_channels, c, kernel_size=1) for c in out_channels)
        self.resize_layers = nn.ModuleList(
            [
                nn.ConvTranspose2d(out_channels[0], out_channels[0], kernel_size=4, stride=4),
                nn.ConvTranspose2d(out_channels[1], out_channels[1], kernel_size=2, stride=2),
                nn.Identity(),
                nn.Conv2d(out_channels[3], out_channels[3], kernel_size=3, stride=2, padding=1),
            ]
        )
        self.scratch = nn.Module()
        for i, c in enumerate(out_channels, start=1):
            setattr(self.scratch, f"layer{i}_rn", _conv3x3(c, features, bias=False))
        for i in range(1, len(out_channels) + 1):
            setattr(self.scratch, f"refinenet{i}", FusionBlock(features))
        self.scratch.output_conv1 = _conv3x3(features, features // 2)
        self.scratch.output_conv2 = nn.Sequential(
            _conv3x3(features // 2, 32),
            nn.ReLU(inplace=True),
            nn.Conv2d(32, 1, kernel_size=1),
            nn.ReLU(inplace=True) if max_depth is None else nn.Sigmoid(),
        )

    def forward(self, tokens: list[torch.Tensor], patch_h: int, patch_w: int) -> torch.Tensor:
        s = self.scratch
        layers = []
        for i, x in enumerate(tokens):
            # (B, N, C) tokens viewed as an NHWC (channels_last) map: no copy.
            x = x.reshape(x.shape[0], patch_h, patch_w, x.shape[-1]).permute(0, 3, 1, 2)
            x = self.resize_layers[i](self.projects[i](x))
            layers.append(getattr(s, f"layer{i + 1}_rn")(x))
        l1, l2, l3, l4 = layers
        path = s.refinenet4(l4, size=l3.shape[2:])
        path = s.refinenet3(path, l3, size=l2.shape[2:])
        path = s.refinenet2(path, l2, size=l1.shape[2:])
        path = s.refinenet1(path, l1)
        out = s.output_conv1(path)
        out = F.interpolate(out, (patch_h * 14, patch_w * 14), mode="bilinear", align_corners=True)
        out = s.output_conv2(out)
        return out if self.max_depth is None else out * self.max_depth
