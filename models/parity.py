"""Deterministic weights for parity checks against the official code without shipping weights.

The recipe (shared with the official-parity fixtures, tests/fixtures/official_parity/README.md):
every float tensor is drawn from a normal generator seeded by the crc32 of its state-dict name,
then scaled by its role, so any implementation with the official key names can rebuild it.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch


def deterministic_tensor(name: str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    if not dtype.is_floating_point:
        return torch.zeros(shape, dtype=dtype)
    z = np.random.default_rng(zlib.crc32(name.encode("utf-8"))).standard_normal(size=shape, dtype=np.float32)
    if len(shape) >= 2:
        v = z / np.sqrt(np.prod(shape[1:]))
    elif name.endswith("gamma"):
        v = 0.3 + 0.05 * z
    elif name.endswith(".weight"):
        v = 1.0 + 0.1 * z
    else:
        v = 0.02 * z
    if name in ("pretrained.pos_embed", "pretrained.cls_token", "pretrained.mask_token"):
        v = 0.1 * z
    if name.endswith("output_conv2.2.bias"):
        v = 2.0 + 0.02 * z
    return torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)).to(dtype)


def deterministic_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The deterministic weights for every entry of `model.state_dict()`."""
    return {k: deterministic_tensor(k, tuple(v.shape), v.dtype) for k, v in model.state_dict().items()}
