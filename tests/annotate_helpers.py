"""Tiny annotation stores for the annotation tests: images (real files when asked) and pairs."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image as PILImage

from da2k.store import Image, Pair, Store

SCENARIOS = ("indoor", "outdoor")


def seed_store(
    store: Store,
    n_pairs: int,
    *,
    root: Optional[Path] = None,
    pairs_per_image: int = 10,
    gold: int = 0,
    gold_status: str = "needs_human",
    size: tuple[int, int] = (48, 64),
) -> list[int]:
    """`n_pairs` `needs_human` mined pairs plus `gold` gold pairs (reference answer point1, in
    `gold_status`) on images of `size` (H, W). With `root`, the images are written there as
    JPEGs (a gradient, so the crops differ). Returns the ids of the non-gold pairs."""
    height, width = size
    ids: list[int] = []
    base = Path(root).resolve() if root is not None else Path("/nonexistent")
    total = n_pairs + gold
    n_images = -(-total // pairs_per_image)
    with store.write() as s:
        for i in range(n_images):
            scenario = SCENARIOS[i % len(SCENARIOS)]
            rel = f"images/{scenario}/img{i:05d}.jpg"
            if root is not None:
                path = base / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                ramp = np.linspace(0, 255, width, dtype=np.uint8)[None, :, None]
                pixels = np.broadcast_to(ramp, (height, width, 3)).copy()
                pixels[..., 1] = (i * 37) % 256
                PILImage.fromarray(pixels).save(path, quality=90)
            image = Image(
                sha256=hashlib.sha256(rel.encode()).hexdigest(),
                root=str(base),
                path=rel,
                scenario=scenario,
                width=width,
                height=height,
            )
            s.add(image)
            s.flush()
            for j in range(pairs_per_image):
                k = i * pairs_per_image + j
                if k >= total:
                    break
                is_gold = k >= n_pairs
                pair = Pair(
                    image_id=image.id,
                    p1_row=height // 4 + j,
                    p1_col=width // 4,
                    p2_row=3 * height // 4,
                    p2_col=3 * width // 4 - j,
                    status=gold_status if is_gold else "needs_human",
                    is_gold=is_gold,
                    reference_answer="point1" if is_gold else None,
                    answer="point1" if is_gold and gold_status == "resolved" else None,
                    source="imported" if is_gold and gold_status == "resolved" else "mined",
                )
                s.add(pair)
                s.flush()
                if not is_gold:
                    ids.append(pair.id)
    return ids
