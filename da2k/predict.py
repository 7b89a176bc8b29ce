"""`da2k predict`: depth maps for files and folders of photos, one output file per image.

Inputs are expanded into (image, output path) jobs, maps are written atomically in one of three
formats; the network runs through `da2k.models.predict` (decoding overlapped with the forward).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from da2k.errors import Da2kError
from da2k.images import scan_images
from da2k.models.files import atomic_write

FORMATS = {"npy": ".npy", "png16": ".png", "color": ".png"}


@dataclass(frozen=True)
class Job:
    image: Path
    target: Path


def collect_images(inputs: Iterable[str | Path]) -> list[tuple[Path, Path]]:
    """(image path, output path relative to the output folder, without suffix) for files and
    folders (searched by the one scanner, `da2k.images.scan_images`: recursively, sorted, hidden
    files and symlinks leaving the folder skipped; the folder structure is kept)."""
    inputs = list(inputs)
    found: list[tuple[Path, Path]] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found += [(f, f.relative_to(path).with_suffix("")) for f in scan_images(path)]
        elif path.is_file():
            found.append((path, Path(path.stem)))
        else:
            raise Da2kError(f"{path} does not exist")
    if not found:
        raise Da2kError("no images found in " + ", ".join(map(str, inputs)))
    return found


def plan_jobs(inputs: Iterable[str | Path], out_dir: str | Path, fmt: str) -> list[Job]:
    """One job per input image; two inputs that would write the same file are an error."""
    if fmt not in FORMATS:
        raise Da2kError(f"unknown map format {fmt!r}; use one of {', '.join(FORMATS)}")
    out = Path(out_dir)
    jobs = [Job(src, out / rel.with_suffix(FORMATS[fmt])) for src, rel in collect_images(inputs)]
    if len({job.target for job in jobs}) != len(jobs):
        raise Da2kError("two inputs map to the same output name; predict folders separately or rename files")
    return jobs


def save_map(depth, target: Path, fmt: str) -> None:
    """npy: float32 values as predicted; png16: per-image min-max to 0..65535; color: Spectral_r."""
    from PIL import Image

    values = np.asarray(depth.numpy() if hasattr(depth, "numpy") else depth, dtype=np.float32)
    if fmt == "npy":
        atomic_write(target, lambda tmp: np.save(tmp, values))
        return
    lo, hi = float(values.min()), float(values.max())
    unit = (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)
    if fmt == "png16":
        image = Image.fromarray((unit * 65535.0 + 0.5).astype(np.uint16))
    else:
        from matplotlib import colormaps

        image = Image.fromarray((colormaps["Spectral_r"](unit)[..., :3] * 255.0 + 0.5).astype(np.uint8))
    atomic_write(target, lambda tmp: image.save(tmp, format="PNG"))
