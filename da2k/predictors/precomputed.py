"""Maps computed elsewhere, read from a folder mirroring the benchmark's image keys."""

from __future__ import annotations

import hashlib
import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from da2k.benchmark import map_path
from da2k.errors import Da2kError
from da2k.predictors.base import ImageLoader, Prediction, Predictor, as_map, check_kind

MAP_SUFFIXES = (".npy", ".png")


def fingerprint_maps(directory: Path, workers: int = 4) -> tuple[str, dict[str, str]]:
    """(sha256 over every map file's relative path and sha256, {relative path: sha256}) for
    the `.npy`/`.png` files under `directory`, hashed in `workers` threads (hashlib releases
    the GIL)."""
    from da2k.models import file_sha256

    files = sorted(
        (p for p in directory.rglob("*") if p.suffix.lower() in MAP_SUFFIXES and p.is_file()),
        key=lambda p: p.relative_to(directory).as_posix(),
    )
    with ThreadPoolExecutor(max_workers=workers) as pool:
        hashes = dict(zip((p.relative_to(directory).as_posix() for p in files), pool.map(file_sha256, files)))
    digest = hashlib.sha256()
    for rel, sha in hashes.items():
        digest.update(f"{rel}\0{sha}\n".encode())
    return digest.hexdigest(), hashes


class PrecomputedPredictor(Predictor):
    """Maps computed elsewhere: `DIR/<key>.npy` (float, any shape squeezing to 2-D) or
    `DIR/<key>.png` (8/16-bit grayscale), any resolution, resized bilinearly onto the image.

    A map may also sit under DIR without the leading `images/` of the key. Not cached (reading a
    map is as cheap as reading a cache entry). `checkpoint_sha256` fingerprints the folder's
    content when the predictor is made (every `.npy`/`.png` under DIR: relative path and sha256),
    so two folders of different maps never share a run name, a cache key or an expert run; a map
    that changes after that is an error, not a silent mix.
    """

    family = "precomputed"
    cacheable = False
    timed = False  # reading a file is no model's latency

    def __init__(self, directory: str | Path, kind: str | None, align_corners: bool = False) -> None:
        super().__init__()
        self.directory = Path(directory).expanduser()
        if not self.directory.is_dir():
            raise Da2kError(f"precomputed maps folder {self.directory} does not exist")
        if kind is None:
            raise Da2kError("precomputed maps need --kind depth or --kind disparity (larger = closer)")
        self.kind = check_kind(kind, "--kind")
        self.id = f"precomputed:{self.directory.resolve().name}"
        self.align_corners = align_corners
        self.settings = {"directory": str(self.directory.resolve()), "align_corners": align_corners}
        self._fingerprint, self._hashes = fingerprint_maps(self.directory)

    @property
    def checkpoint_sha256(self) -> str:
        return self._fingerprint

    def find(self, key: str) -> Path:
        rel = Path(key)
        tails = [rel] + ([Path(*rel.parts[1:])] if rel.parts[0] == "images" and len(rel.parts) > 1 else [])
        for tail in tails:
            for ext in (".npy", ".png"):
                path = map_path(self.directory, str(tail), ext)
                if path.is_file():
                    return path
        raise Da2kError(f"no precomputed map for {key}: expected {map_path(self.directory, key, '.npy')} (or .png)")

    def prepare(self, key: str, load: ImageLoader) -> Prediction:
        path = self.find(key)
        data = path.read_bytes()
        rel = path.relative_to(self.directory).as_posix()
        if self._hashes.get(rel) != hashlib.sha256(data).hexdigest():
            raise Da2kError(f"{path} changed since the run started (its folder was fingerprinted then); run again")
        try:
            if path.suffix == ".npy":
                values = np.load(io.BytesIO(data), allow_pickle=False)
            else:
                with Image.open(io.BytesIO(data)) as im:
                    if im.mode not in ("I;16", "I;16B", "I;16L", "I", "L", "F"):
                        raise Da2kError(f"{path}: a PNG map must be single-channel (8/16-bit grayscale), not {im.mode}")
                    values = np.array(im)
        except Da2kError:
            raise
        except Exception as exc:
            raise Da2kError(f"cannot read precomputed map {path}: {exc}") from None
        return Prediction(as_map(values, str(path)), self.kind, self.align_corners)

    def forward(self, prepared: Prediction) -> Prediction:
        return prepared
