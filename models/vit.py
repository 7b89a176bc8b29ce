"""DINOv2 vision transformer (patch 14, layer scale, MLP or SwiGLU), as Depth Anything uses it.

Module and parameter names mirror facebookresearch/dinov2 (`dinov2/layers/*`,
`dinov2/models/vision_transformer.py`) so the official checkpoints load with strict keys.
Attention runs through `scaled_dot_product_attention` (fused on CPU and GPU) or, where an
inference copy asks for it (`Attention.query_chunk`), through GEMMs over blocks of queries; see
`models/prepared.py`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .registry import Encoder


class PatchEmbed(nn.Module):
    """(B, 3, H, W) image -> (B, H/14 * W/14, D) tokens; H and W must be multiples of the patch."""

    def __init__(self, patch_size: int, embed_dim: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(f"input {h}x{w} is not a multiple of the patch size {self.patch_size}")
        return self.proj(x).flatten(2).transpose(1, 2)


def chunked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, chunk: int) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v for (B, heads, N, d) inputs, returned as (B, N, heads, d):
    `chunk` queries at a time, two batched GEMMs per block and a softmax whose statistics the
    kernel keeps in fp32.

    On CPUs with AVX512-BF16 but no AMX, oneDNN's bf16 GEMMs make this about twice as fast as
    the fused flash-attention kernel; the (heads, chunk, N) score block stays in cache. q, k^T
    and v are made contiguous once, not per block."""
    q = (q * q.shape[-1] ** -0.5).contiguous()
    keys = k.transpose(-1, -2).contiguous()
    v = v.contiguous()
    b, heads, n, d = q.shape
    out = q.new_empty(b, n, heads, d)
    for start in range(0, n, chunk):
        scores = torch.matmul(q[:, :, start : start + chunk], keys)
        out[:, start : start + chunk] = torch.matmul(torch.softmax(scores, dim=-1), v).transpose(1, 2)
    return out


class Attention(nn.Module):
    # None: fused scaled_dot_product_attention; an int: `chunked_attention` with that many queries.
    query_chunk: int | None = None

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.heads(x))

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        """Attention output before the `proj` layer, (B, N, C)."""
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        if self.query_chunk is not None:
            return chunked_attention(qkv[0], qkv[1], qkv[2], self.query_chunk).reshape(b, n, c)
        x = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return x.transpose(1, 2).reshape(b, n, c)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    @property
    def out(self) -> nn.Linear:
        return self.fc2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.hidden(x))

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.fc1(x))


class SwiGLU(nn.Module):
    """ViT-G's feed-forward: silu(x W1) * (x W2), then W3; hidden width rounded as in DINOv2."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        hidden = (int(hidden * 2 / 3) + 7) // 8 * 8
        self.w12 = nn.Linear(dim, 2 * hidden)
        self.w3 = nn.Linear(hidden, dim)

    @property
    def out(self) -> nn.Linear:
        return self.w3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w3(self.hidden(x))

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.w12(x).chunk(2, dim=-1)
        return F.silu(x1) * x2


class LayerScale(nn.Module):
    """Per-channel scale of a residual branch (its `gamma` is folded into the GEMM by `Block`)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


def fold_layer_scale(out: nn.Linear, scale: LayerScale) -> tuple[torch.Tensor, torch.Tensor]:
    """(gamma * W, gamma * b): the residual branch's output layer with its LayerScale applied."""
    return out.weight * scale.gamma[:, None], out.bias * scale.gamma


def scaled_residual(x: torch.Tensor, h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """x + (h W^T + b) with W, b already scaled by gamma, as one GEMM accumulating into (x + b):
    folding gamma into the small weight saves passes over the large activations (bias copy,
    scale, add)."""
    acc = (x + bias).reshape(-1, x.shape[-1])
    h = h.reshape(-1, h.shape[-1])
    if torch.is_autocast_enabled(x.device.type):  # in-place ops are not autocast: let addmm cast
        return torch.addmm(acc, h, weight.t()).view(x.shape)
    return acc.addmm_(h, weight.t()).view(x.shape)


class Block(nn.Module):
    # True in inference copies whose attn.proj / mlp.out already carry ls1 / ls2 (prepared.py).
    folded: bool = False

    def __init__(self, dim: int, num_heads: int, ffn: str) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.ls1 = LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = (SwiGLU if ffn == "swiglu" else Mlp)(dim, 4 * dim)
        self.ls2 = LayerScale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x + ls1(attn(norm1(x))), then x + ls2(mlp(norm2(x))), each with a fused epilogue.
        x = scaled_residual(x, self.attn.heads(self.norm1(x)), *self._output(self.attn.proj, self.ls1))
        return scaled_residual(x, self.mlp.hidden(self.norm2(x)), *self._output(self.mlp.out, self.ls2))

    def _output(self, out: nn.Linear, scale: LayerScale) -> tuple[torch.Tensor, torch.Tensor]:
        return (out.weight, out.bias) if self.folded else fold_layer_scale(out, scale)


class VisionTransformer(nn.Module):
    """DINOv2 backbone; `intermediate_layers` is what the DPT head calls."""

    patch_size = 14
    # DINOv2 adds 0.1 to the target grid before bicubic resizing of the positional embedding
    # (the scale factor, not the output size, drives the sampling positions).
    interpolate_offset = 0.1

    def __init__(self, encoder: Encoder) -> None:
        super().__init__()
        dim = encoder.embed_dim
        self.embed_dim = dim
        self.patch_embed = PatchEmbed(self.patch_size, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, encoder.pos_grid**2 + 1, dim))
        self.mask_token = nn.Parameter(torch.zeros(1, dim))  # unused at inference; in checkpoints
        self.blocks = nn.ModuleList(Block(dim, encoder.num_heads, encoder.ffn) for _ in range(encoder.depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def interpolate_pos_encoding(self, grid_h: int, grid_w: int) -> torch.Tensor:
        """Positional embedding for a grid_h x grid_w patch grid, shape (1, 1 + grid_h*grid_w, D)."""
        pos = self.pos_embed
        n = pos.shape[1] - 1
        side = int(math.sqrt(n))
        if grid_h == grid_w == side:
            return pos
        patch_pos = pos[:, 1:].float().reshape(1, side, side, -1).permute(0, 3, 1, 2)
        scale = ((grid_h + self.interpolate_offset) / side, (grid_w + self.interpolate_offset) / side)
        patch_pos = F.interpolate(patch_pos, scale_factor=scale, mode="bicubic", align_corners=False)
        patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, -1)
        return torch.cat((pos[:, :1].float(), patch_pos), dim=1).to(pos.dtype)

    def intermediate_layers(self, x: torch.Tensor, layers: tuple[int, ...]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Normed (patch tokens (B, N, D), class token (B, D)) after each block in `layers`."""
        grid_h, grid_w = x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size
        tokens = self.patch_embed(x)
        tokens = torch.cat((self.cls_token.expand(tokens.shape[0], -1, -1), tokens), dim=1)
        tokens = tokens + self.interpolate_pos_encoding(grid_h, grid_w)
        outputs = []
        last = max(layers)
        for i, block in enumerate(self.blocks[: last + 1]):
            tokens = block(tokens)
            if i in layers:
                normed = self.norm(tokens)
                outputs.append((normed[:, 1:], normed[:, 0]))
        return outputs
