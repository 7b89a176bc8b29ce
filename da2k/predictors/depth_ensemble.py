"""The scale/shift-aligned median ensemble of affine-invariant depth maps, as GeoWizard's (and
Marigold's first) `ensemble_depths`: find per-member scale s and shift t minimising the RMS of all
pairwise differences of s·d + t plus 0.02 × (|min| + |1 − max|) of their median, by BFGS
(scipy, 2 iterations, tol 1e-3, from the min–max scaling), then take the median of the aligned
maps and min–max it to [0, 1]. The objective is computed in the maps' dtype with the same torch
operations in the same order, since BFGS with finite differences amplifies rounding."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np


def _objective(maps: Any, pairs: list[tuple[int, int]], regularizer: float):
    import torch

    n = maps.shape[0]

    def err(x: np.ndarray) -> np.ndarray:
        s = torch.from_numpy(x[:n]).to(dtype=maps.dtype, device=maps.device)
        t = torch.from_numpy(x[n:]).to(dtype=maps.dtype, device=maps.device)
        aligned = maps * s.view((-1, 1, 1)) + t.view((-1, 1, 1))
        diffs = torch.concat([aligned[i : i + 1] - aligned[j : j + 1] for i, j in pairs], dim=0)
        spread = torch.sqrt(torch.mean(diffs**2))
        merged = torch.median(aligned, dim=0).values
        near = torch.sqrt((0 - torch.min(merged)) ** 2)
        far = torch.sqrt((1 - torch.max(merged)) ** 2)
        return (spread + (near + far) * regularizer).detach().cpu().numpy().astype(np.float32)

    return err


def ensemble_depths(maps: Any, regularizer: float = 0.02, max_iter: int = 2, tol: float = 1e-3) -> Any:
    """(n, h, w) float tensor, n ≥ 2 -> (h, w) aligned median in [0, 1]."""
    import torch
    from scipy.optimize import minimize

    n = maps.shape[0]
    flat = maps.reshape((n, -1)).cpu().numpy()
    lo, hi = np.min(flat, axis=1), np.max(flat, axis=1)
    s0 = 1.0 / (hi - lo).reshape((-1, 1, 1))
    t0 = (-1 * s0.flatten() * lo.flatten()).reshape((-1, 1, 1))
    x0 = np.concatenate([s0, t0]).reshape(-1).astype(np.float32)
    pairs = [(int(i), int(j)) for i, j in itertools.combinations(range(n), 2)]
    res = minimize(_objective(maps, pairs, regularizer), x0, method="BFGS", tol=tol, options={"maxiter": max_iter})
    s = torch.from_numpy(res.x[:n]).to(dtype=maps.dtype, device=maps.device)
    t = torch.from_numpy(res.x[n:]).to(dtype=maps.dtype, device=maps.device)
    merged = torch.median(maps * s.view(-1, 1, 1) + t.view(-1, 1, 1), dim=0).values
    lo_m, hi_m = torch.min(merged), torch.max(merged)
    return (merged - lo_m) / (hi_m - lo_m)
