"""Deterministic weights as the official-parity fixtures define them (fixtures/official_parity/README.md)."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import torch

FIXTURES = Path(__file__).parent / "fixtures"
PARITY = FIXTURES / "official_parity"

# registry name -> fixture stem
FIXTURE_STEM = {
    "vits": "vits",
    "vitb": "vitb",
    "vitl": "vitl",
    "vitg": "vitg",
    "v1-vits": "v1_vits",
    "metric-hypersim-vits": "metric_hypersim20_vits",
}


def official_keys(name: str) -> dict[str, list]:
    return json.loads((PARITY / f"{FIXTURE_STEM[name]}_keys.json").read_text())


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
    return {k: deterministic_tensor(k, tuple(v.shape), v.dtype) for k, v in model.state_dict().items()}


def reference(name: str) -> dict[str, np.ndarray]:
    with np.load(PARITY / f"{FIXTURE_STEM[name]}_reference.npz") as z:
        return {k: z[k] for k in z.files}


def reference_input(ref: dict[str, np.ndarray]) -> torch.Tensor:
    shape = tuple(int(s) for s in ref["input_shape"])
    seed = int(ref["input_seed"]) if "input_seed" in ref else 0
    return torch.from_numpy(np.random.default_rng(seed).standard_normal(size=shape, dtype=np.float32))
