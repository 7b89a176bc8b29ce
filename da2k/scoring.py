"""DA-2K scoring, pure: numpy arrays in, numbers out (no IO, no torch).

The rules (docs/design.md): a prediction is made *disparity-like* (larger = closer) from its declared
kind, a pair is correct iff value(closer) > value(other) **strictly** (ties and NaNs are wrong, so a
constant map scores 0), accuracies are fractions with a 95 % Wilson interval, the overall accuracy
is pair-weighted and `scenario_mean` the unweighted mean over scenarios.

Values are read from the low-resolution prediction at the sub-pixel coordinates that
`torch.nn.functional.interpolate(..., mode="bilinear", align_corners=...)` would use to build the
full-resolution map, so they equal upsample-then-index without materialising the full map.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np

KINDS = ("disparity", "depth")
Z95 = 1.959963984540054  # two-sided 95 % normal quantile


def to_disparity(values: np.ndarray, kind: str) -> np.ndarray:
    """Disparity-like values (larger = closer): `disparity` as is, `depth` negated.

    Negation keeps the order of 1/depth for positive depths and stays defined for zero or
    negative values (affine-invariant depth such as Marigold's, where near = 0).
    """
    if kind == "disparity":
        return np.asarray(values, dtype=np.float64)
    if kind == "depth":
        return -np.asarray(values, dtype=np.float64)
    raise ValueError(f"unknown prediction kind {kind!r}; expected one of {KINDS}")


def pair_correct(closer: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Boolean per pair: disparity-like value at the closer point strictly above the other's."""
    return np.asarray(closer, dtype=np.float64) > np.asarray(other, dtype=np.float64)


def wilson_ci(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for `correct` successes out of `n`; (0, 0) when n == 0."""
    if n == 0:
        return (0.0, 0.0)
    p = correct / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True)
class Score:
    """Counts for one group of pairs; accuracy and interval derive from them."""

    n: int
    correct: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else 0.0

    @property
    def ci95(self) -> tuple[float, float]:
        return wilson_ci(self.correct, self.n)

    def to_dict(self) -> dict:
        """The result-file form: `{n, correct, accuracy, ci95}` (accuracy a fraction)."""
        return {"n": self.n, "correct": self.correct, "accuracy": self.accuracy, "ci95": list(self.ci95)}


def score_by_scenario(scenarios: Sequence[str], correct: np.ndarray) -> dict[str, Score]:
    """Per-scenario counts, keyed in order of first appearance."""
    correct = np.asarray(correct, dtype=bool)
    if len(scenarios) != len(correct):
        raise ValueError(f"{len(scenarios)} scenario labels for {len(correct)} pairs")
    n: dict[str, int] = {}
    ok: dict[str, int] = {}
    for scenario, right in zip(scenarios, correct.tolist()):
        n[scenario] = n.get(scenario, 0) + 1
        ok[scenario] = ok.get(scenario, 0) + int(right)
    return {s: Score(n=n[s], correct=ok[s]) for s in n}


def overall(scores: Mapping[str, Score]) -> dict:
    """Pair-weighted overall `{n, correct, accuracy, ci95}` plus the unweighted `scenario_mean`."""
    total = Score(n=sum(s.n for s in scores.values()), correct=sum(s.correct for s in scores.values()))
    scored = [s.accuracy for s in scores.values() if s.n]
    return {**total.to_dict(), "scenario_mean": float(np.mean(scored)) if scored else 0.0}


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for b and c discordant pairs (binomial, p = 1/2)."""
    m = b + c
    if m == 0:
        return 1.0
    tail = sum(math.comb(m, k) for k in range(min(b, c) + 1))
    return min(1.0, 2 * tail / 2**m)


@dataclass(frozen=True)
class Paired:
    """Paired outcome of two models on the same pairs; b = only A right, c = only B right."""

    n: int
    a_correct: int
    b_correct: int
    b: int
    c: int

    @property
    def p_value(self) -> float:
        return mcnemar_exact(self.b, self.c)


def paired(a: np.ndarray, b: np.ndarray) -> Paired:
    """Contingency counts of two boolean outcome vectors over the same pairs."""
    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    return Paired(
        n=len(a),
        a_correct=int(a.sum()),
        b_correct=int(b.sum()),
        b=int((a & ~b).sum()),
        c=int((~a & b).sum()),
    )


def source_coords(dst: np.ndarray, in_size: int, out_size: int, align_corners: bool) -> np.ndarray:
    """Source coordinate in an input axis of `in_size` for output coordinates `dst` (float64).

    Mirrors ATen's `area_pixel_compute_source_index` for linear modes with an explicit output
    size: align_corners maps the end pixels onto each other, otherwise pixel centres are aligned
    and negative coordinates clamp to 0.
    """
    dst = np.asarray(dst, dtype=np.float64)
    if align_corners:
        scale = (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
        return dst * scale
    scale = in_size / out_size
    return np.maximum((dst + 0.5) * scale - 0.5, 0.0)


def _axis(dst: np.ndarray, in_size: int, out_size: int, align_corners: bool):
    src = source_coords(dst, in_size, out_size, align_corners)
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    return i0, i1, src - i0


def _lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    # a + t (b - a) is exact when a == b (a constant region stays a tie) and at t == 0 even when b
    # is inf/NaN, where the weighted-sum form would give NaN.
    with np.errstate(invalid="ignore"):
        return np.where(t == 0, a, a + t * (b - a))


def sample_bilinear(
    pred: np.ndarray, points: np.ndarray, image_size: tuple[int, int], align_corners: bool
) -> np.ndarray:
    """Values of `pred` (h, w) bilinearly resized to `image_size` (H, W), read at `points`.

    points: (N, 2) (row, col) in the full-resolution image, integer or sub-pixel. Returns (N,)
    float64 equal to `F.interpolate(pred[None, None], (H, W), mode="bilinear",
    align_corners=align_corners)[0, 0][row, col]` without building the (H, W) map.
    """
    pred = np.asarray(pred, dtype=np.float64)
    if pred.ndim != 2:
        raise ValueError(f"prediction must be a 2-D (h, w) map, got shape {pred.shape}")
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    (h, w), (H, W) = pred.shape, image_size
    r0, r1, tr = _axis(pts[:, 0], h, H, align_corners)
    c0, c1, tc = _axis(pts[:, 1], w, W, align_corners)
    top = _lerp(pred[r0, c0], pred[r0, c1], tc)
    bottom = _lerp(pred[r1, c0], pred[r1, c1], tc)
    return _lerp(top, bottom, tr)


def order_scenarios(names: Iterable[str], canonical: Sequence[str]) -> list[str]:
    """Canonical scenarios first in their fixed order, any others after, sorted."""
    names = set(names)
    return [s for s in canonical if s in names] + sorted(names - set(canonical))
