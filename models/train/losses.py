"""Depth losses of the Depth Anything recipe: scale-and-shift-invariant L_ssi, multi-scale gradient
matching L_gm (both on disparity, MiDaS, Ranftl et al. 2020) and SiLog for metric depth
(Eigen et al. 2014; lambda 0.5 as in the official `metric_depth/util/loss.py`).

Shapes: `pred`, `target` (B, H, W) float, `mask` (B, H, W) bool (True = supervised pixel).
Images with fewer than `MIN_PIXELS` valid pixels contribute nothing (their loss is 0 and has no
gradient), so a batch of empty masks gives a zero loss instead of NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

MIN_PIXELS = 2
EPS = 1e-6


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1)


def align_least_squares(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`s * pred + t` with per-image (s, t) minimising the masked squared error to `target`.

    Closed form of the 2x2 normal equations (MiDaS); images whose masked `pred` is constant get
    s = 0, t = mean(target). Returns (B, H, W).
    """
    m = _flat(mask).to(pred.dtype)
    p, g = _flat(pred), _flat(target)
    n = m.sum(1)
    a00, a01 = (m * p * p).sum(1), (m * p).sum(1)
    b0, b1 = (m * p * g).sum(1), (m * g).sum(1)
    det = a00 * n - a01 * a01
    ok = det.abs() > EPS * torch.clamp(a00 * n, min=EPS)
    safe = torch.where(ok, det, torch.ones_like(det))
    scale = torch.where(ok, (n * b0 - a01 * b1) / safe, torch.zeros_like(det))
    shift = torch.where(ok, (a00 * b1 - a01 * b0) / safe, b1 / torch.clamp(n, min=1))
    return scale.view(-1, 1, 1) * pred + shift.view(-1, 1, 1)


def normalize_median(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(x - median) / mean|x - median| per image over the mask (the Depth Anything V1/MiDaS
    normalisation; the scale is clamped so a constant map stays finite). Returns (B, H, W)."""
    out = torch.zeros_like(x)
    for i in range(x.shape[0]):
        values = x[i][mask[i]]
        if values.numel() < MIN_PIXELS:
            continue
        median = values.median()
        scale = (values - median).abs().mean().clamp(min=EPS)
        out[i] = (x[i] - median) / scale
    return out


def trim_mask(per_pixel: torch.Tensor, mask: torch.Tensor, trim: float) -> torch.Tensor:
    """`mask` without each image's `trim` fraction of largest per-pixel losses (the paper's
    "top-n-largest-loss regions are ignored" for pseudo labels; n = 10 %)."""
    if trim <= 0:
        return mask
    kept = mask.clone()
    for i in range(per_pixel.shape[0]):
        n_valid = int(mask[i].sum())
        n_drop = int(trim * n_valid)
        if n_drop == 0:
            continue
        values = per_pixel[i].detach().masked_fill(~mask[i], float("-inf")).reshape(-1)
        drop = values.topk(n_drop).indices
        kept[i].view(-1)[drop] = False
    return kept


def _masked_image_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the mask per image, then over images that have enough valid pixels."""
    m = _flat(mask).to(values.dtype)
    n = m.sum(1)
    per_image = (_flat(values) * m).sum(1) / n.clamp(min=1)
    used = n >= MIN_PIXELS
    if not bool(used.any()):
        return values.sum() * 0.0
    return per_image[used].mean()


def gradient_matching(residual: torch.Tensor, mask: torch.Tensor, scales: int = 4) -> torch.Tensor:
    """MiDaS multi-scale gradient matching on the aligned residual R = pred* - target*:
    sum over scales k of the masked mean of |dR/dx| + |dR/dy| on every 2^k-th pixel."""
    total = residual.new_zeros(())
    for k in range(scales):
        step = 2**k
        r = residual[:, ::step, ::step]
        m = mask[:, ::step, ::step]
        if r.shape[-1] < 2 or r.shape[-2] < 2:
            break
        gx = (r[:, :, 1:] - r[:, :, :-1]).abs()
        mx = m[:, :, 1:] & m[:, :, :-1]
        gy = (r[:, 1:, :] - r[:, :-1, :]).abs()
        my = m[:, 1:, :] & m[:, :-1, :]
        n = _flat(mx).sum(1) + _flat(my).sum(1)
        per_image = ((_flat(gx) * _flat(mx)).sum(1) + (_flat(gy) * _flat(my)).sum(1)) / n.clamp(min=1)
        used = _flat(m).sum(1) >= MIN_PIXELS
        if bool(used.any()):
            total = total + per_image[used].mean()
    return total


@dataclass
class LossParts:
    """The total and its named parts (detached floats for logging)."""

    total: torch.Tensor
    parts: dict[str, float]


class SSIGradientLoss(nn.Module):
    """w_ssi * L_ssi + w_gm * L_gm on disparity (defaults 1 : 2, the paper's ratio).

    alignment="median": both maps median/MAD-normalised, per-pixel |difference| (V1's affine-
    invariant loss); "lstsq": prediction least-squares aligned to the target, per-pixel squared
    error. `trim` drops each image's largest per-pixel losses before averaging (0.1 on pseudo
    labels); the gradient term uses the same kept pixels.
    """

    def __init__(
        self,
        *,
        alignment: str = "median",
        ssi_weight: float = 1.0,
        gm_weight: float = 2.0,
        trim: float = 0.0,
        scales: int = 4,
    ) -> None:
        super().__init__()
        if alignment not in ("median", "lstsq"):
            raise ValueError(f"alignment must be 'median' or 'lstsq', not {alignment!r}")
        if not 0.0 <= trim < 1.0:
            raise ValueError(f"trim must be in [0, 1), not {trim}")
        self.alignment, self.ssi_weight, self.gm_weight = alignment, ssi_weight, gm_weight
        self.trim, self.scales = trim, scales

    def aligned(
        self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(aligned prediction, aligned target): what the per-pixel error compares."""
        if self.alignment == "median":
            return normalize_median(pred, mask), normalize_median(target, mask)
        return align_least_squares(pred, target, mask), target

    def forward(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> LossParts:
        pred = pred.float() if pred.dtype in (torch.float16, torch.bfloat16) else pred
        target = target.to(pred.dtype)
        p, g = self.aligned(pred, target, mask)
        residual = p - g
        per_pixel = residual.abs() if self.alignment == "median" else residual * residual
        kept = trim_mask(per_pixel, mask, self.trim)
        ssi = _masked_image_mean(per_pixel, kept)
        gm = gradient_matching(residual, kept, self.scales) if self.gm_weight else ssi.new_zeros(())
        # `0 * pred.sum()` keeps the graph connected when no pixel is valid (DDP needs a backward).
        total = self.ssi_weight * ssi + self.gm_weight * gm + 0.0 * pred.sum()
        return LossParts(total, {"ssi": float(ssi.detach()), "gm": float(gm.detach())})


def silog(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, lam: float = 0.5) -> torch.Tensor:
    """sqrt(mean(d^2) - lam * mean(d)^2), d = log(target) - log(pred) over all masked pixels of
    the batch (as the official metric fine-tuning). Both maps in metres, > 0 where masked."""
    d = torch.log(target[mask].clamp(min=EPS)) - torch.log(pred[mask].clamp(min=EPS))
    if d.numel() < MIN_PIXELS:
        return pred.sum() * 0.0
    var = (d * d).mean() - lam * d.mean() ** 2
    # sqrt has an infinite slope at 0: identical maps give exactly 0 with a zero gradient.
    positive = var > 0
    return torch.sqrt(torch.where(positive, var, torch.ones_like(var))) * positive


class SiLogLoss(nn.Module):
    """SiLog on metric depth (lambda 0.5)."""

    def __init__(self, lam: float = 0.5) -> None:
        super().__init__()
        self.lam = lam

    def forward(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> LossParts:
        pred = pred.float() if pred.dtype in (torch.float16, torch.bfloat16) else pred
        loss = silog(pred, target.to(pred.dtype), mask, self.lam)
        return LossParts(loss, {"silog": float(loss.detach())})
