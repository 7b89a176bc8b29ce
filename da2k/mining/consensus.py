"""The paper's consensus rule (DA-2K, Section 6.2), in one place: each expert's vote on a pair,
the status the votes give it, and the reproducible draw of gold (audit) questions.

An expert's output is made disparity-like and read at both points; its vote names the closer
point and carries a *margin*: |v1 - v2| over the expert's disparity range on that image (2nd to
98th percentile), comparable across affine-invariant experts. A pair is `auto_agreed` iff every
expert names the same point and every margin is >= `min_margin`; otherwise `needs_human`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from da2k.scoring import sample_bilinear, to_disparity

CLOSER = ("point1", "point2", "tie", "none")
"""An expert's answer: the closer point, `tie` (equal values) or `none` (no answer: its output is
not a finite number at a point, e.g. NaN; the pair then goes to humans)."""


@dataclass(frozen=True)
class Vote:
    """One expert's vote on one pair: `closer` (see `CLOSER`), its `margin` (see the module
    docstring) and the disparity-like values it read at point1 and point2 (None where the
    output was not finite)."""

    closer: str
    margin: float
    value1: Optional[float]
    value2: Optional[float]


def expert_values(prediction: Any, points: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Disparity-like values at `points` (N, 2) (row, col) of the (H, W) image, and the
    expert's disparity range on the image (2nd to 98th percentile) that margins are relative to.

    A range keeps margins comparable across experts whose outputs are affine-invariant
    (DA V1/V2, Marigold), where a ratio of raw values would depend on an unknown shift.
    """
    values = prediction.values
    if hasattr(values, "detach"):
        values = values.detach().float().cpu().numpy()
    disparity = to_disparity(np.asarray(values), prediction.kind)
    sampled = sample_bilinear(disparity, points, size, bool(prediction.align_corners))
    finite = disparity[np.isfinite(disparity)]
    low, high = np.percentile(finite, [2, 98]) if finite.size else (0.0, 0.0)
    return sampled, float(high - low)


def _finite(value: float) -> Optional[float]:
    return float(value) if np.isfinite(value) else None


def vote(v1: float, v2: float, scale: float) -> Vote:
    """One expert's vote from its values at point1 and point2: equal values tie; a value that
    is not finite (NaN, inf) is no answer (`none`), never an error: bad model output must not
    stop mining."""
    if not (np.isfinite(v1) and np.isfinite(v2)):
        return Vote("none", 0.0, _finite(v1), _finite(v2))
    if v1 == v2:
        return Vote("tie", 0.0, float(v1), float(v2))
    margin = abs(v1 - v2) / scale if np.isfinite(scale) and scale > 0 else 0.0
    return Vote("point1" if v1 > v2 else "point2", float(margin), float(v1), float(v2))


def decide(votes: Sequence[Vote], min_margin: float) -> tuple[str, Optional[str]]:
    """(status, consensus) from every expert's vote on one pair.

    `auto_agreed` iff every expert names the same closer point (a tie or no answer agrees with
    nothing) and every margin is at least `min_margin`; otherwise `needs_human`. The consensus
    is the shared answer when all agree (whatever the margins), else None.
    """
    answers = {v.closer for v in votes}
    consensus = next(iter(answers)) if len(answers) == 1 and answers <= {"point1", "point2"} else None
    confident = all(v.margin >= min_margin for v in votes)
    return ("auto_agreed" if consensus is not None and confident else "needs_human"), consensus


def audit_draw(seed: int, image_sha256: str, point1: Sequence[int], point2: Sequence[int]) -> float:
    """A uniform number in [0, 1) fixed by the seed and the pair: the same pairs are audited
    on every run, whatever the order, sharding or resumption."""
    text = f"{seed}:{image_sha256}:{point1[0]},{point1[1]}:{point2[0]},{point2[1]}"
    return int(hashlib.sha256(text.encode()).hexdigest()[:13], 16) / float(16**13)
