"""Reading the official-parity fixtures (outputs of the official code on deterministic weights)."""

from __future__ import annotations

import json
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


def reference(name: str) -> dict[str, np.ndarray]:
    with np.load(PARITY / f"{FIXTURE_STEM[name]}_reference.npz") as z:
        return {k: z[k] for k in z.files}


def reference_input(ref: dict[str, np.ndarray]) -> torch.Tensor:
    shape = tuple(int(s) for s in ref["input_shape"])
    seed = int(ref["input_seed"]) if "input_seed" in ref else 0
    return torch.from_numpy(np.random.default_rng(seed).standard_normal(size=shape, dtype=np.float32))
