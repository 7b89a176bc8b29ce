"""Synthetic scenes with four experts of known quality, for the store/miner/export tests.

Experts are precomputed depth maps derived from the exact ground truth: `gt` (the truth),
`noisy` (multiplicative noise), `flipped` (near/far reversed in the left half), `constant`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from da2k.benchmark import map_path
from da2k.synthetic import SyntheticBenchmark, make_benchmark, write_maps

SIZE = (96, 128)


def noisy(depth: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(int(depth.sum() * 1000) % 2**32)
    return depth * np.exp(rng.normal(0.0, 0.05, depth.shape))


def flipped(depth: np.ndarray) -> np.ndarray:
    """Near and far swapped in the left half of the image (columns < W/2)."""
    out = depth.copy()
    left = out[:, : out.shape[1] // 2]
    out[:, : out.shape[1] // 2] = left.max() + left.min() - left
    return out


TRANSFORMS = {"gt": lambda d: d, "noisy": noisy, "flipped": flipped, "constant": np.ones_like}


@dataclass
class Scenes:
    bench: SyntheticBenchmark
    images: Path
    maps: dict[str, Path]

    def spec(self, name: str) -> str:
        return f"precomputed:{self.maps[name]};kind=depth"

    def expert_name(self, name: str) -> str:
        """How the store names the expert (its spec, folder made absolute)."""
        return f"precomputed:{self.maps[name].resolve()}"

    def specs(self, *names: str) -> list[str]:
        return [self.spec(n) for n in names]

    def depth(self, rel: str, name: str = "gt") -> np.ndarray:
        """The expert's map for the image at `rel` (relative to `images`)."""
        return np.load(map_path(self.maps[name], rel, ".npy"))


def make_scenes(root: Path, n_images: int = 8, seed: int = 0) -> Scenes:
    bench = make_benchmark(root / "bench", n_images=n_images, size=SIZE, seed=seed)
    maps = {}
    for name, transform in TRANSFORMS.items():
        # Maps mirror the images folder: the miner looks them up by the path under --images.
        maps[name] = write_maps(bench, root / "maps" / name, transform) / "images"
    return Scenes(bench, bench.root / "images", maps)


SLOW_EXPERT = '''
import os
import time
import numpy as np

VARIANT = {variant}


def predict(image):
    """A deterministic 'expert': brightness as disparity, slowed by $DA2K_TEST_EXPERT_DELAY s."""
    time.sleep(float(os.environ.get("DA2K_TEST_EXPERT_DELAY", "0")))
    return np.asarray(image.convert("L"), dtype=np.float32) + VARIANT, "disparity"
'''


def slow_expert_specs(tmp: Path, n: int = 2) -> list[str]:
    specs = []
    for i in range(n):
        path = tmp / f"slow_expert_{i}.py"
        path.write_text(SLOW_EXPERT.format(variant=i))
        specs.append(f"python:{path}:predict")
    return specs


def mine_process(images: Path, db: Path, experts: list[str], *extra: str, delay: float = 0.0) -> subprocess.Popen:
    """`da2k mine` in a separate process whose experts each take `delay` s per image."""
    args = [
        sys.executable,
        "-c",
        "from da2k.cli import main; main()",
        "mine",
        "--images",
        str(images),
        "--db",
        str(db),
        "--points",
        "felzenszwalb",
        *extra,
    ]
    for spec in experts:
        args += ["--expert", spec]
    env = {**os.environ, "DA2K_TEST_EXPERT_DELAY": str(delay)}
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
