"""Candidate point pairs for mining: points inside segments, away from borders and edges.

As DA-2K was built (paper, Section 6.2): segments propose key points, pairs of points are
sampled, experts vote. Segments come from SAM (transformers' `SamModel` prompted with a grid
of points, optional extra `sam`) when it loads, else from scikit-image's Felzenszwalb graph
segmentation.
Points sit well inside a segment (far from its border, from strong image edges and from the
image frame), where depth is unambiguous; pairs mix two points of one segment ("within")
and points of two segments ("across"). Everything is driven by a caller-given RNG, so a
seed derived from the image content gives the same pairs on every run and every shard.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

Point = tuple[int, int]
Segmenter = Callable[[np.ndarray], np.ndarray]
"""(h, w, 3) uint8 RGB -> (h, w) int labels; -1 marks pixels in no segment."""

WORK_SIZE = 384
"""Longest side (pixels) of the copy segmented; points map back to full resolution."""
SAM_DEFAULT = "facebook/sam-vit-base"


@dataclass(frozen=True)
class CandidatePair:
    point1: Point
    point2: Point
    relation: str
    """`within` (one segment) or `across` (two segments)."""


@dataclass(frozen=True)
class Proposal:
    method: str
    pairs: list[CandidatePair]


def felzenszwalb_segments(rgb: np.ndarray) -> np.ndarray:
    """Graph-based segments (scikit-image); the minimum size scales with the image."""
    from skimage.segmentation import felzenszwalb

    h, w = rgb.shape[:2]
    return felzenszwalb(rgb, scale=200, sigma=0.8, min_size=max(20, h * w // 200)).astype(np.int64)


class SamSegments:
    """SAM prompted with a regular grid of points, each keeping the best of its three masks
    when SAM's predicted IoU reaches `min_iou`; smaller masks win where masks overlap (they are
    the objects inside larger regions). transformers' `mask-generation` pipeline would do the
    same but needs torchvision for its NMS, which overlapping-mask labelling makes unnecessary."""

    def __init__(self, model: str = SAM_DEFAULT, device: str = "cpu", *, grid: int = 16, min_iou: float = 0.8) -> None:
        from transformers import SamModel, SamProcessor

        self.processor = SamProcessor.from_pretrained(model)
        self.model = SamModel.from_pretrained(model).to(device).eval()
        self.device, self.grid, self.min_iou = device, grid, min_iou
        self._lock = threading.Lock()  # the miner proposes points from several threads

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        import torch

        h, w = rgb.shape[:2]
        g = self.grid
        points = [[[(i + 0.5) * w / g, (j + 0.5) * h / g]] for j in range(g) for i in range(g)]
        masks: list[np.ndarray] = []
        with self._lock, torch.inference_mode():
            inputs = self.processor(images=Image.fromarray(rgb), input_points=[points], return_tensors="pt")
            embeddings = self.model.get_image_embeddings(inputs["pixel_values"].to(self.device))
            for start in range(0, len(points), 64):
                out = self.model(
                    image_embeddings=embeddings,
                    input_points=inputs["input_points"][:, start : start + 64].to(self.device),
                    multimask_output=True,
                )
                scores, best = out.iou_scores[0].max(-1)
                chosen = out.pred_masks[0, torch.arange(len(best)), best].cpu()
                full = self.processor.image_processor.post_process_masks(
                    chosen[None, :, None], inputs["original_sizes"], inputs["reshaped_input_sizes"]
                )[0][:, 0]
                masks.extend(full[(scores >= self.min_iou).cpu()].numpy())
        labels = np.full((h, w), -1, dtype=np.int64)
        for index, mask in sorted(enumerate(masks), key=lambda item: -int(item[1].sum())):
            labels[mask] = index
        return labels


def make_segmenter(method: str = "auto", *, sam_model: str = SAM_DEFAULT, device: str = "cpu") -> tuple[str, Segmenter]:
    """(`sam:<model>` or `felzenszwalb`, segmenter). `auto` tries SAM, then falls back."""
    if method not in ("auto", "sam", "felzenszwalb"):
        from da2k.errors import Da2kError

        raise Da2kError(f"unknown point method {method!r}: use auto, sam or felzenszwalb")
    if method in ("auto", "sam"):
        try:
            return f"sam:{sam_model}", SamSegments(sam_model, device=device)
        except Exception as exc:  # missing transformers, weights not cached offline, ...
            if method == "sam":
                from da2k.errors import Da2kError

                raise Da2kError(
                    f"cannot load SAM {sam_model!r} ({type(exc).__name__}: {exc}); "
                    "pip install 'da2k[sam]' and make the weights reachable, or use --points felzenszwalb"
                ) from None
            log.info("SAM unavailable (%s); proposing points from Felzenszwalb segments", type(exc).__name__)
    return "felzenszwalb", felzenszwalb_segments


def _blocked_mask(rgb: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Pixels a point must keep away from: segment borders, strong edges, no-segment, frame."""
    from skimage.color import rgb2gray
    from skimage.filters import sobel
    from skimage.segmentation import find_boundaries

    edges = sobel(rgb2gray(rgb))
    strong = edges > max(float(np.quantile(edges, 0.9)), 0.02)
    blocked = find_boundaries(labels, mode="thick") | strong | (labels < 0)
    blocked[0, :] = blocked[-1, :] = blocked[:, 0] = blocked[:, -1] = True
    return blocked


def _pick(rng: np.random.Generator, pixels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return pixels[rng.choice(len(pixels), p=weights / weights.sum())]


Segment = tuple[np.ndarray, np.ndarray]
"""(pixels (N, 2) row/col in the work image, their distance to the nearest blocked pixel)."""


def _safe_segments(rgb: np.ndarray, labels: np.ndarray) -> list[Segment]:
    """Per segment, its pixels far enough from segment borders, strong edges and the frame."""
    from scipy import ndimage

    h, w = rgb.shape[:2]
    dist = ndimage.distance_transform_edt(~_blocked_mask(rgb, labels))
    eligible = dist >= max(2.0, 0.02 * min(h, w))
    segments = []
    for label in np.unique(labels[eligible]):
        rows, cols = np.nonzero(eligible & (labels == label))
        if len(rows) >= 4:
            segments.append((np.stack([rows, cols], axis=1), dist[rows, cols]))
    return segments


def _sample_pairs(
    rng: np.random.Generator, segments: list[Segment], n_pairs: int, min_sep: float, to_full: Callable
) -> list[CandidatePair]:
    """`n_pairs` distinct pairs, half within one segment and half across two (all within when
    there is a single segment); segments are drawn with weight sqrt(size)."""
    seg_weights = np.sqrt([len(pixels) for pixels, _ in segments])
    seg_weights = seg_weights / seg_weights.sum()
    n_within = n_pairs // 2 if len(segments) > 1 else n_pairs
    pairs: list[CandidatePair] = []
    seen: set[tuple[Point, Point]] = set()
    for relation, count in (("within", n_within), ("across", n_pairs - n_within)):
        made, tries = 0, 0
        while made < count and tries < 30 * count:
            tries += 1
            if relation == "within":
                pixels, weights = segments[rng.choice(len(segments), p=seg_weights)]
                a, b = _pick(rng, pixels, weights), _pick(rng, pixels, weights)
            else:
                i, j = rng.choice(len(segments), size=2, replace=False, p=seg_weights)
                a, b = _pick(rng, *segments[i]), _pick(rng, *segments[j])
            if np.hypot(*(a - b).astype(float)) < min_sep:
                continue
            p1, p2 = sorted((to_full(a), to_full(b)))
            if p1 == p2 or (p1, p2) in seen:
                continue
            seen.add((p1, p2))
            pairs.append(CandidatePair(p1, p2, relation))
            made += 1
    return pairs


def propose_pairs(
    image: Image.Image,
    n_pairs: int,
    rng: np.random.Generator,
    segmenter: Segmenter = felzenszwalb_segments,
    *,
    method: str = "felzenszwalb",
    work_size: int = WORK_SIZE,
) -> Proposal:
    """Up to `n_pairs` distinct pairs of (row, col) points of the full-size `image`.

    Half the pairs (rounded down) are within one segment, the rest across two segments
    (all within when there is a single usable segment). Fewer pairs come back when the image
    offers too few safe points.
    """
    width, height = image.size
    small = image.convert("RGB")
    small.thumbnail((work_size, work_size), Image.Resampling.BILINEAR)
    rgb = np.asarray(small)
    h, w = rgb.shape[:2]
    segments = _safe_segments(rgb, segmenter(rgb))
    if not segments or n_pairs <= 0:
        return Proposal(method, [])

    def to_full(p: np.ndarray) -> Point:
        return (
            min(height - 1, int((p[0] + 0.5) * height / h)),
            min(width - 1, int((p[1] + 0.5) * width / w)),
        )

    return Proposal(method, _sample_pairs(rng, segments, n_pairs, 0.08 * float(np.hypot(h, w)), to_full))


def image_rng(seed: int, sha256: str, salt: Optional[int] = None) -> np.random.Generator:
    """The RNG for one image: a function of the seed and the image content only."""
    entropy = [seed, int(sha256[:16], 16)] + ([] if salt is None else [salt])
    return np.random.default_rng(entropy)
