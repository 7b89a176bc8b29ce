"""Depth Anything = DINOv2 backbone + DPT head; the variant decides taps and output meaning."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .dpt import DPTHead
from .registry import Variant
from .vit import VisionTransformer


class DepthAnything(nn.Module):
    """(B, 3, H, W) normalised RGB, H and W multiples of 14 -> (B, H, W) disparity or metres.

    Relative variants output affine-invariant disparity (ReLU'd); metric variants output depth
    in metres in (0, max_depth).
    """

    def __init__(self, variant: Variant, pretrained: VisionTransformer, depth_head: DPTHead) -> None:
        super().__init__()
        self.variant = variant
        self.pretrained = pretrained
        self.depth_head = depth_head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        patch_h, patch_w = h // 14, w // 14
        features = self.pretrained.intermediate_layers(x, self.variant.layers)
        out = self.depth_head([tokens for tokens, _ in features], patch_h, patch_w)
        if self.variant.family == "v1" and out.shape[-2:] != (h, w):
            # V1 resizes the head output to the input size (a no-op for multiples of 14).
            out = F.interpolate(out, size=(h, w), mode="bilinear", align_corners=True)
        if self.variant.max_depth is None:
            out = F.relu(out)
        return out.squeeze(1)


def build_architecture(variant: Variant) -> DepthAnything:
    """Randomly initialised network for `variant` (eval mode, CPU, float32)."""
    backbone = VisionTransformer(variant.encoder)
    head = DPTHead(
        in_channels=variant.encoder.embed_dim,
        features=variant.features,
        out_channels=variant.out_channels,
        max_depth=variant.max_depth,
    )
    # oneDNN (CPU) and cuDNN run these convolutions faster on NHWC; values and keys are unchanged.
    head = head.to(memory_format=torch.channels_last)
    return DepthAnything(variant, backbone, head).eval()
