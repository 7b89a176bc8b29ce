"""Pseudo-labelling unlabeled images with a teacher, rank-sharded under torchrun and resumable.

Output folder:
    OUT/labels/<image path relative to the image root>.npy   float16 disparity at network
                                                              resolution (upsample bilinearly with
                                                              the manifest's align_corners)
    OUT/parts/rank-<r>.jsonl      one line per finished image, appended by rank r as it goes
    OUT/manifest.json             written by rank 0 at the end: teacher name and sha256, image
                                  root, input size, and every item with image and label sha256

Rank r of W labels images[r::W] of the sorted list. A label is written to a temporary file and
renamed before its line is appended, so after a crash every listed label is complete; a rerun
skips images already listed with an unchanged image hash and a label file present.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import torch.distributed as dist
from tqdm import tqdm

from da2k.models import build_model, file_sha256, predict
from da2k.models.errors import ModelError
from da2k.models.files import atomic_write, atomic_write_text

from .data import unlabeled_images
from .distributed import init_distributed

log = logging.getLogger(__name__)

SCHEMA = "da2k.pseudo-labels/1"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _done(out: Path) -> dict[str, dict]:
    """Items listed in any rank's part file (any earlier world size), by image path."""
    items: dict[str, dict] = {}
    for part in sorted((out / "parts").glob("rank-*.jsonl")):
        for line in part.read_text().splitlines():
            try:
                item = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a crash
                continue
            items[item["image"]] = item
    return items


def pseudo_label(
    teacher: str | os.PathLike,
    images: str | os.PathLike,
    out: str | os.PathLike,
    *,
    encoder: str = "vitg",
    input_size: int | None = None,
    device: str = "auto",
    precision: str = "auto",
    workers: int = 2,
) -> Path:
    """Label every image under `images` with the `encoder` teacher loaded from `teacher`;
    returns `out/manifest.json` (written once all ranks are done)."""
    d = init_distributed("auto" if device == "auto" else device)
    root, out = Path(images).expanduser().resolve(), Path(out).expanduser()
    teacher = Path(teacher).expanduser()
    if not teacher.is_file():
        raise ModelError(f"--teacher {teacher} does not exist")
    model = build_model(encoder, weights=teacher)
    if model.variant.kind != "disparity":
        raise ModelError(f"the teacher must be a relative (disparity) model, not {encoder}")
    size = input_size or model.variant.input_size
    files = unlabeled_images(root)
    (out / "parts").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(exist_ok=True)
    teacher_sha = file_sha256(teacher)

    done = _done(out)
    mine = files[d.rank :: d.world]
    todo = []
    for path in mine:
        rel = path.relative_to(root).as_posix()
        item = done.get(rel)
        if (
            item
            and item.get("teacher_sha256") == teacher_sha
            and (out / item["label"]).is_file()
            and item["image_sha256"] == _sha256(path)
        ):
            continue
        todo.append(path)
    log.info("rank %d: %d of %d images to label (%d already done)", d.rank, len(todo), len(mine), len(mine) - len(todo))

    part_file = out / "parts" / f"rank-{d.rank}.jsonl"
    if part_file.is_file() and part_file.stat().st_size and not part_file.read_bytes().endswith(b"\n"):
        with open(part_file, "a") as part:  # a crash cut the last line: end it so the next line parses
            part.write("\n")
    with open(part_file, "a") as part:
        bar = tqdm(total=len(todo), unit="img", disable=not d.main, desc="pseudo-label")
        for src, result in predict(
            model, todo, input_size=size, device=str(d.device), precision=precision, workers=workers
        ):
            bar.update(1)
            if isinstance(result, Exception):
                log.warning("skipping %s: %s", src, result)
                continue
            rel = Path(src).relative_to(root).as_posix()
            label = Path("labels") / f"{rel}.npy"
            target = out / label
            labels = result.values.numpy().astype(np.float16)
            atomic_write(target, lambda tmp, labels=labels: np.save(tmp, labels))
            item = {
                "image": rel,
                "image_sha256": _sha256(Path(src)),
                "label": label.as_posix(),
                "label_sha256": _sha256(target),
                "shape": list(result.values.shape),
                "image_size": list(result.size),
                "teacher_sha256": teacher_sha,
            }
            part.write(json.dumps(item) + "\n")
            part.flush()
        bar.close()

    if d.world > 1:
        dist.barrier()
    manifest = out / "manifest.json"
    if d.main:
        done = _done(out)
        items = [done[p.relative_to(root).as_posix()] for p in files if p.relative_to(root).as_posix() in done]
        body = {
            "schema": SCHEMA,
            "teacher": {"encoder": encoder, "file": str(teacher), "sha256": teacher_sha},
            "images_root": str(root),
            "input_size": size,
            "kind": "disparity",
            "align_corners": model.variant.align_corners,
            "items": items,
        }
        atomic_write_text(manifest, json.dumps(body, indent=1))
        log.info("%d of %d images labelled; manifest %s", len(items), len(files), manifest)
    if d.world > 1:
        dist.barrier()
    return manifest
