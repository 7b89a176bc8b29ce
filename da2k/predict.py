"""`da2k predict`: depth maps for files and folders of photos, one output file per image.

Inputs are expanded into (image, output path) jobs, maps are written atomically in one of three
formats; the network runs through `da2k.models.predict` (decoding overlapped with the forward).
Each written map gets a line in `OUT/da2k-predict.jsonl` (its image's sha256 and the settings
that made it), so a rerun skips what is done and refuses to mix in other outputs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from da2k.errors import Da2kError
from da2k.images import scan_images
from da2k.models.files import atomic_write

MANIFEST = "da2k-predict.jsonl"
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


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Manifest:
    """`OUT/da2k-predict.jsonl`: one line per map written, `{"output", "image_sha256",
    "settings"}` (model, checkpoint sha256, input size, precision, format). Appended as maps are
    written; a line cut short by a kill is ignored, so its map is simply made again."""

    def __init__(self, out: Path) -> None:
        self.path = Path(out) / MANIFEST
        self.entries: dict[str, dict[str, Any]] = {}
        self._cut = False  # the last line lacks its newline (a kill): end it before appending
        if self.path.is_file():
            text = self.path.read_text(encoding="utf-8", errors="replace")
            self._cut = bool(text) and not text.endswith("\n")
            for line in text.splitlines():
                try:
                    entry = json.loads(line)
                    self.entries[entry["output"]] = entry
                except (ValueError, KeyError, TypeError):
                    continue

    def made(self, job: Job, out: Path, settings: dict[str, Any]) -> bool:
        """The job's output exists and was made from this very image with these settings."""
        entry = self.entries.get(job.target.relative_to(out).as_posix())
        return (
            entry is not None
            and job.target.is_file()
            and entry.get("settings") == settings
            and entry.get("image_sha256") == _sha256(job.image)
        )

    def record(self, job: Job, out: Path, settings: dict[str, Any]) -> None:
        entry = {
            "output": job.target.relative_to(out).as_posix(),
            "image_sha256": _sha256(job.image),
            "settings": settings,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(("\n" if self._cut else "") + json.dumps(entry) + "\n")
        self._cut = False


def pending_jobs(jobs: list[Job], out: Path, settings: dict[str, Any], overwrite: bool) -> tuple[list[Job], int]:
    """(jobs still to run, how many are done already). Outputs made by an earlier run with the
    same settings are kept; any other existing output is refused unless `overwrite` (which
    recomputes everything)."""
    if overwrite:
        return list(jobs), 0
    manifest = Manifest(out)
    todo, done, foreign = [], 0, []
    for job in jobs:
        if manifest.made(job, out, settings):
            done += 1
        elif job.target.exists():
            foreign.append(job.target)
        else:
            todo.append(job)
    if foreign:
        raise Da2kError(
            f"{len(foreign)} output file(s) already exist that this model and these settings did not make "
            f"(e.g. {foreign[0]}); pass --overwrite to replace them, or another --out"
        )
    return todo, done
