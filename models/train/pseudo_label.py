"""Pseudo-labelling unlabeled images with a teacher, rank-sharded under torchrun and resumable.

Output folder:
    OUT/labels/<image path relative to the image root>.npy   float16 disparity at network
                                                              resolution (upsample bilinearly with
                                                              the manifest's align_corners)
    OUT/parts/rank-<r>.jsonl      one line per finished image, appended by rank r as it goes
    OUT/manifest.json             written by rank 0 at the end: teacher name and sha256, image
                                  root, input size, every item with image and label sha256, and
                                  the images that could not be labelled (`failed`)

One folder holds labels of one teacher, encoder and input size: a run with other settings is
refused rather than mixed in.

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
from .distributed import init_distributed, leave_distributed

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
                items[item["image"]] = item
            except (ValueError, RecursionError, KeyError, TypeError):  # a line cut short by a crash
                continue
    return items


def _check_settings(out: Path, done: dict[str, dict], settings: dict) -> None:
    """Refuse to add labels made with other settings to a folder (a student would train on a
    mix): the settings of every listed label and of an existing manifest must be these."""
    recorded = [{k: item[k] for k in settings if k in item} for item in done.values()]
    manifest = out / "manifest.json"
    if manifest.is_file():
        try:
            body = json.loads(manifest.read_text())
            teacher = body.get("teacher", {})
            recorded.append(
                {
                    "encoder": teacher.get("encoder"),
                    "input_size": body.get("input_size"),
                    "teacher_sha256": teacher.get("sha256"),
                }
            )
        except (json.JSONDecodeError, AttributeError):
            pass  # a manifest is rewritten at the end anyway
    for other in recorded:
        differ = [k for k, v in other.items() if v is not None and v != settings[k]]
        if differ:
            was = ", ".join(f"{k} {other[k]}" for k in differ)
            now = ", ".join(f"{k} {settings[k]}" for k in differ)
            raise ModelError(
                f"{out} holds labels made with {was}, not {now}: use another --out, or the same teacher, "
                "--encoder and --input-size"
            )


def _todo(files: list[Path], root: Path, out: Path, done: dict[str, dict], teacher_sha: str) -> list[Path]:
    todo = []
    for path in files:
        item = done.get(path.relative_to(root).as_posix())
        if (
            item
            and item.get("teacher_sha256") == teacher_sha
            and (out / item["label"]).is_file()
            and item["image_sha256"] == _sha256(path)
        ):
            continue
        todo.append(path)
    return todo


def _open_part(out: Path, rank: int):
    part_file = out / "parts" / f"rank-{rank}.jsonl"
    if part_file.is_file() and part_file.stat().st_size and not part_file.read_bytes().endswith(b"\n"):
        with open(part_file, "a") as part:  # a crash cut the last line: end it so the next line parses
            part.write("\n")
    return open(part_file, "a")


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
    compile: bool = False,
) -> Path:
    """Label every image under `images` with the `encoder` teacher loaded from `teacher`;
    returns `out/manifest.json` (written once all ranks are done). Images that could not be
    labelled are listed under `failed` there (a rerun retries them)."""
    d = init_distributed("auto" if device == "auto" else device)
    root, out = Path(images).expanduser().resolve(), Path(out).expanduser()
    teacher = Path(teacher).expanduser()
    if not teacher.is_file():
        raise ModelError(f"--teacher {teacher} does not exist")
    files = unlabeled_images(root)
    model = build_model(encoder, weights=teacher)
    if model.variant.kind != "disparity":
        raise ModelError(f"the teacher must be a relative (disparity) model, not {encoder}")
    size = input_size or model.variant.input_size
    teacher_sha = file_sha256(teacher)
    settings = {"encoder": encoder, "input_size": size, "teacher_sha256": teacher_sha}
    done = _done(out)
    _check_settings(out, done, settings)
    (out / "parts").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(exist_ok=True)

    mine = files[d.rank :: d.world]
    todo = _todo(mine, root, out, done, teacher_sha)
    log.info("rank %d: %d of %d images to label (%d already done)", d.rank, len(todo), len(mine), len(mine) - len(todo))
    with _open_part(out, d.rank) as part:
        bar = tqdm(total=len(todo), unit="img", disable=not d.main, desc="pseudo-label")
        for src, result in predict(
            model, todo, input_size=size, device=str(d.device), precision=precision, workers=workers, compile=compile
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
                **settings,
            }
            part.write(json.dumps(item) + "\n")
            part.flush()
        bar.close()

    if d.world > 1:
        dist.barrier()
    manifest = out / "manifest.json"
    if d.main:
        _write_manifest(manifest, files, root, out, teacher, settings, model.variant.align_corners)
    leave_distributed(d)
    return manifest


def _write_manifest(
    manifest: Path, files: list[Path], root: Path, out: Path, teacher: Path, settings: dict, align_corners: bool
) -> None:
    done = _done(out)
    rels = [p.relative_to(root).as_posix() for p in files]
    body = {
        "schema": SCHEMA,
        "teacher": {"encoder": settings["encoder"], "file": str(teacher), "sha256": settings["teacher_sha256"]},
        "images_root": str(root),
        "input_size": settings["input_size"],
        "kind": "disparity",
        "align_corners": align_corners,
        "items": [done[rel] for rel in rels if rel in done],
        "failed": [rel for rel in rels if rel not in done],
    }
    atomic_write_text(manifest, json.dumps(body, indent=1))
    log.info("%d of %d images labelled; manifest %s", len(body["items"]), len(files), manifest)
