"""Procedural RGB-D scenes written as a DA-2K-format benchmark with exact ground truth.

Each scene is ray-cast through a pinhole camera: a back wall, a floor, textured spheres and boxes
at known depths. Pairs join two interior pixels (3x3 neighbourhood on one surface) whose depths
differ by at least `min_ratio`, so any faithful map orders them right even after resampling.
Some images are stored rotated/flipped with an EXIF orientation tag: their points and depth maps
refer to the EXIF-applied frame, as in DA-2K. Ground-truth depth (z-distance, float32, same frame)
goes to `<root>/depth/<key with .npy>`, which is what `--model precomputed:<root>/depth --kind
depth` reads.

    python -m da2k.synthetic OUT_DIR --images 12
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image

from da2k.benchmark import map_path
from da2k.errors import Da2kError

# Orientation tag -> the transpose that displays the stored pixels (PIL's exif_transpose table).
_DISPLAY = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_INVERSE = {
    Image.Transpose.ROTATE_270: Image.Transpose.ROTATE_90,
    Image.Transpose.ROTATE_90: Image.Transpose.ROTATE_270,
}
EXIF_ORIENTATIONS = (6, 8, 3, 5, 2, 7, 4)


@dataclass(frozen=True)
class Scene:
    """One rendered view: RGB (H, W, 3) uint8, z-depth (H, W) float32 > 0, surface id (H, W)."""

    rgb: np.ndarray
    depth: np.ndarray
    surface: np.ndarray


def _spheres(rng: np.random.Generator, n: int) -> list[tuple[np.ndarray, float]]:
    out = []
    for _ in range(n):
        z = rng.uniform(2.5, 7.0)
        centre = np.array([rng.uniform(-0.5, 0.5) * z, rng.uniform(-0.3, 0.4) * z * 0.5, z])
        out.append((centre, rng.uniform(0.4, 0.9)))
    return out


def _boxes(rng: np.random.Generator, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for _ in range(n):
        z = rng.uniform(2.0, 6.5)
        lo = np.array([rng.uniform(-0.6, 0.3) * z, rng.uniform(-0.2, 0.5), z])
        size = rng.uniform([0.5, 0.3, 0.4], [1.5, 1.0, 1.2])
        out.append((lo, lo + size))
    return out


def render_scene(rng: np.random.Generator, size: tuple[int, int] = (48, 64)) -> Scene:
    """Ray-cast a random scene of `size` (H, W); depth is the z-distance along the optical axis."""
    h, w = size
    focal = float(max(h, w))
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    d = np.stack([(cols + 0.5 - w / 2) / focal, (rows + 0.5 - h / 2) / focal, np.ones_like(rows)], -1)
    depth = np.full((h, w), rng.uniform(8.0, 12.0))  # back wall: plane z = const
    surface = np.zeros((h, w), np.int32)
    floor_y = rng.uniform(0.8, 1.3)  # camera above a floor at y = floor_y (y points down)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(d[..., 1] > 1e-6, floor_y / d[..., 1], np.inf)
    hit = t < depth
    depth[hit], surface[hit] = t[hit], 1
    next_id = 2
    for centre, radius in _spheres(rng, int(rng.integers(1, 4))):
        a = (d * d).sum(-1)
        b = d @ centre
        disc = b * b - a * (centre @ centre - radius * radius)
        t = np.where(disc > 0, (b - np.sqrt(np.maximum(disc, 0))) / a, np.inf)
        hit = (t > 0) & (t < depth)
        depth[hit], surface[hit] = t[hit], next_id
        next_id += 1
    for lo, hi in _boxes(rng, int(rng.integers(1, 3))):
        with np.errstate(divide="ignore", invalid="ignore"):
            t1, t2 = lo / d, hi / d
        t_near = np.nanmax(np.minimum(t1, t2), -1)
        t_far = np.nanmin(np.maximum(t1, t2), -1)
        hit = (t_near <= t_far) & (t_near > 0) & (t_near < depth)
        depth[hit], surface[hit] = t_near[hit], next_id
        next_id += 1
    # Texture: per-surface colour, a checker pattern in world coordinates, fog with depth.
    points = d * depth[..., None]
    checker = (np.floor(points[..., 0] * 2) + np.floor(points[..., 1] * 2) + np.floor(points[..., 2] * 2)) % 2
    palette = rng.uniform(0.25, 1.0, size=(next_id, 3))
    colour = palette[surface] * (0.7 + 0.3 * checker[..., None])
    colour *= (1.0 / (1.0 + 0.05 * depth))[..., None]
    rgb = np.clip(colour * 255 + rng.normal(0, 3, colour.shape), 0, 255).astype(np.uint8)
    return Scene(rgb=rgb, depth=depth.astype(np.float32), surface=surface)


def sample_pairs(
    rng: np.random.Generator, scene: Scene, n: int, min_ratio: float = 1.25, max_tries: int = 5000
) -> list[dict]:
    """`n` pairs of interior pixels with a clear depth gap, in the official form (point1 closer),
    except every third pair which names point2 as the closer one (both forms are legal)."""
    h, w = scene.depth.shape
    s = scene.surface
    interior = np.ones_like(s, dtype=bool)
    interior[[0, -1], :] = interior[:, [0, -1]] = False
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            interior[1:-1, 1:-1] &= s[1:-1, 1:-1] == s[1 + dr : h - 1 + dr, 1 + dc : w - 1 + dc]
    candidates = np.argwhere(interior)
    pairs: list[dict] = []
    seen = set()
    for _ in range(max_tries):
        if len(pairs) == n:
            break
        a, b = candidates[rng.integers(len(candidates), size=2)]
        da, db = float(scene.depth[tuple(a)]), float(scene.depth[tuple(b)])
        ident = frozenset((tuple(a), tuple(b)))
        if max(da, db) < min_ratio * min(da, db) or ident in seen:
            continue
        seen.add(ident)
        near, far = (a, b) if da < db else (b, a)
        near, far = [int(v) for v in near], [int(v) for v in far]
        if len(pairs) % 3 == 2:
            pairs.append({"point1": far, "point2": near, "closer_point": "point2"})
        else:
            pairs.append({"point1": near, "point2": far, "closer_point": "point1"})
    if len(pairs) < n:
        raise Da2kError(f"a scene has too little depth range for {n} pairs: ask for fewer --pairs or a larger --size")
    return pairs


@dataclass(frozen=True)
class SyntheticBenchmark:
    """Where a generated benchmark lives and what it holds."""

    root: Path
    keys: tuple[str, ...]
    n_pairs: int
    orientations: dict  # key -> EXIF orientation tag of the stored image (1 = none)

    @property
    def depth_dir(self) -> Path:
        return self.root / "depth"

    def depth(self, key: str) -> np.ndarray:
        """Ground-truth z-depth (H, W) in the EXIF-applied frame."""
        return np.load(map_path(self.depth_dir, key, ".npy"))


def _save_image(path: Path, rgb: np.ndarray, orientation: int) -> None:
    image = Image.fromarray(rgb)
    if orientation == 1:
        image.save(path)
        return
    display = _DISPLAY[orientation]
    stored = image.transpose(_INVERSE.get(display, display))
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(path, quality=95, exif=exif.tobytes())


def make_benchmark(
    out_dir: str | Path,
    *,
    n_images: int = 8,
    size: tuple[int, int] = (48, 64),
    pairs_per_image: int = 3,
    scenarios: Sequence[str] = ("indoor", "outdoor", "object", "aerial"),
    exif_every: int = 3,
    seed: int = 0,
) -> SyntheticBenchmark:
    """Write a DA-2K-format benchmark to `out_dir` (annotations.json, images/, depth/).

    Image i goes to scenario `scenarios[i % len]`; every `exif_every`-th image (i % exif_every ==
    1) is a JPEG stored under an EXIF orientation tag (cycling through 6, 8, 3, 5, 2, 7, 4), the
    others alternate PNG and JPEG. Deterministic for a given seed.
    """
    root = Path(out_dir)
    rng = np.random.default_rng(seed)
    annotations: dict[str, list] = {}
    orientations: dict[str, int] = {}
    n_exif = 0
    for i in range(n_images):
        scene = render_scene(rng, size)
        rotated = exif_every > 0 and i % exif_every == 1
        orientation = EXIF_ORIENTATIONS[n_exif % len(EXIF_ORIENTATIONS)] if rotated else 1
        n_exif += rotated
        ext = ".jpg" if rotated or i % 2 else ".png"
        key = f"images/{scenarios[i % len(scenarios)]}/scene{i:03d}{ext}"
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        _save_image(root / key, scene.rgb, orientation)
        depth_file = map_path(root / "depth", key, ".npy")
        depth_file.parent.mkdir(parents=True, exist_ok=True)
        np.save(depth_file, scene.depth)
        annotations[key] = sample_pairs(rng, scene, pairs_per_image)
        orientations[key] = orientation
    (root / "annotations.json").write_text(json.dumps(annotations, indent=1))
    return SyntheticBenchmark(root, tuple(annotations), n_images * pairs_per_image, orientations)


def write_maps(
    bench: SyntheticBenchmark,
    out_dir: str | Path,
    transform: Callable[[np.ndarray], np.ndarray],
    fmt: str = "npy",
) -> Path:
    """Write `transform(gt_depth)` per image as a precomputed-map folder (`npy` float, or
    `png16`: min-max scaled to 16-bit, order preserved up to quantisation)."""
    out = Path(out_dir)
    for key in bench.keys:
        values = np.asarray(transform(bench.depth(key)), dtype=np.float64)
        path = map_path(out, key, ".npy" if fmt == "npy" else ".png")
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "npy":
            np.save(path, values.astype(np.float32))
        elif fmt == "png16":
            lo, hi = float(values.min()), float(values.max())
            scaled = (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)
            Image.fromarray(np.round(scaled * 65535).astype(np.uint16)).save(path)
        else:
            raise ValueError(f"fmt must be 'npy' or 'png16', not {fmt!r}")
    return out


MIN_SIDE, MAX_SIDE = 16, 4096


def _size(ctx: Any, param: Any, value: str) -> tuple[int, int]:
    """`HxW` -> (H, W), each side in [MIN_SIDE, MAX_SIDE] (smaller scenes cannot hold pairs)."""
    import click

    try:
        h, w = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not HxW, e.g. 48x64") from None
    if not (MIN_SIDE <= h <= MAX_SIDE and MIN_SIDE <= w <= MAX_SIDE):
        raise click.BadParameter(f"{value}: each side must be {MIN_SIDE} to {MAX_SIDE} pixels")
    return h, w


def main() -> None:
    import click

    from da2k.cli.errors import Da2kCommand, user_errors

    @click.command(cls=Da2kCommand)
    @click.argument("out_dir", type=click.Path(file_okay=False))
    @click.option(
        "--images", "n_images", type=click.IntRange(1), default=8, show_default=True, help="Number of images."
    )
    @click.option(
        "--pairs", "pairs_per_image", type=click.IntRange(0), default=3, show_default=True, help="Pairs per image."
    )
    @click.option("--size", default="48x64", show_default=True, callback=_size, help="Image size HxW (EXIF-applied).")
    @click.option("--seed", type=int, default=0, show_default=True)
    @user_errors
    def cli(out_dir: str, n_images: int, pairs_per_image: int, size: tuple[int, int], seed: int) -> None:
        """Write a synthetic DA-2K-format benchmark (with ground-truth depth) to OUT_DIR."""
        bench = make_benchmark(out_dir, n_images=n_images, size=size, pairs_per_image=pairs_per_image, seed=seed)
        click.echo(f"{bench.root}: {len(bench.keys)} images, {bench.n_pairs} pairs; ground truth in {bench.depth_dir}")

    cli()


if __name__ == "__main__":
    main()
