"""Training data: RGB-D samples from folders, Hypersim, Virtual KITTI 2 and pseudo-label shards,
with the Depth Anything training augmentation written with torch and Pillow only.

A *record* names an image and its label; a `TrainSet` turns records into augmented tensors:
`image` (3, S, S) ImageNet-normalised, `target` (S, S) float32 in the stage's space (disparity for
relative stages, metres for metric), `mask` (S, S) bool. Augmentation randomness comes from a
generator seeded by (seed, epoch, index), so a sample is the same whichever worker or run loads
it: that is what makes resume exact.

Generic RGB-D folder (`rgbd:DIR`, also what `python -m da2k.synthetic` writes):
    DIR/images/<any/sub/path>/<name>.<image suffix>     RGB (any of `IMAGE_SUFFIXES`, EXIF applied)
    DIR/depth/images/<any/sub/path>/<name>.{npy,png}    float .npy, or 16-bit PNG x png_scale
    DIR/mask/images/<any/sub/path>/<name>.png           optional, nonzero = valid
    DIR/rgbd.json                                       optional: {"kind": "depth"|"disparity",
                                                         "png_scale": 0.001}
Non-finite and non-positive values are invalid.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageEnhance

from da2k.models import load_image
from da2k.models.errors import ModelError
from da2k.models.images import IMAGE_SUFFIXES, scan_images
from da2k.models.registry import IMAGENET_MEAN, IMAGENET_STD

log = logging.getLogger(__name__)

DATA_FORMS = "rgbd:DIR (or a plain DIR), hypersim:DIR, vkitti2:DIR"


@dataclass(frozen=True)
class Record:
    """One labelled image. `label` is read by `reader` into (values, valid) at label resolution;
    `kind` says what the values are ("depth" metres / "disparity" / "pseudo")."""

    image: Path
    label: Path
    kind: str
    reader: str  # "npy", "png16", "hypersim", "vkitti2", "pseudo"
    mask: Path | None = None
    png_scale: float = 1.0
    align_corners: bool = True  # pseudo labels: how the low-res map maps onto the image


# ---------------------------------------------------------------- readers


def rgbd_folder(root: Path) -> list[Record]:
    """Records of a generic RGB-D folder (layout in the module docstring)."""
    meta_file = root / "rgbd.json"
    meta = _read_json(meta_file) if meta_file.is_file() else {}
    kind = meta.get("kind", "depth")
    if kind not in ("depth", "disparity"):
        raise ModelError(f"{meta_file}: kind must be 'depth' or 'disparity', not {kind!r}")
    records = []
    for image in scan_images(root / "images") if (root / "images").is_dir() else ():
        key = image.relative_to(root)
        for ext, reader in ((".npy", "npy"), (".png", "png16")):
            label = (root / "depth" / key).with_suffix(ext)
            if label.is_file():
                mask = (root / "mask" / key).with_suffix(".png")
                records.append(
                    Record(
                        image,
                        label,
                        kind,
                        reader,
                        mask if mask.is_file() else None,
                        float(meta.get("png_scale", 0.001)),
                    )
                )
                break
    return records


def hypersim(root: Path) -> list[Record]:
    """Hypersim as downloaded: `ai_*/images/scene_cam_*_final_preview/frame.*.tonemap.jpg` with
    `scene_cam_*_geometry_hdf5/frame.*.depth_meters.hdf5` (distance along the ray, converted to
    planar depth; needs h5py)."""
    records = []
    for image in sorted(root.glob("ai_*/images/scene_cam_*_final_preview/frame.*.tonemap.jpg")):
        cam = image.parent.name.replace("_final_preview", "_geometry_hdf5")
        label = image.parent.parent / cam / image.name.replace(".tonemap.jpg", ".depth_meters.hdf5")
        if label.is_file():
            records.append(Record(image, label, "depth", "hypersim"))
    return records


def vkitti2(root: Path) -> list[Record]:
    """Virtual KITTI 2: `Scene*/<variation>/frames/rgb/Camera_*/rgb_*.jpg` with
    `.../frames/depth/Camera_*/depth_*.png` (16-bit centimetres; 65535 = sky, masked)."""
    records = []
    for image in sorted(root.glob("Scene*/*/frames/rgb/Camera_*/rgb_*.jpg")):
        label = (
            image.parents[2]
            / "depth"
            / image.parent.name
            / image.name.replace("rgb_", "depth_").replace(".jpg", ".png")
        )
        if label.is_file():
            records.append(Record(image, label, "depth", "vkitti2", png_scale=0.01))
    return records


def parse_data_spec(spec: str) -> list[Record]:
    """Records for one `--data` spec: `rgbd:DIR` (or a plain DIR), `hypersim:DIR`, `vkitti2:DIR`."""
    form, _, rest = spec.partition(":")
    if not rest or len(form) == 1:  # a plain path (a Windows drive letter is not a form)
        form, rest = "rgbd", spec
    readers: dict[str, Callable[[Path], list[Record]]] = {"rgbd": rgbd_folder, "hypersim": hypersim, "vkitti2": vkitti2}
    if form not in readers:
        raise ModelError(f"unknown data spec {spec!r}; use one of: {DATA_FORMS}")
    root = Path(rest).expanduser()
    if not root.is_dir():
        raise ModelError(f"data folder {root} does not exist (from --data {spec})")
    records = readers[form](root)
    if not records:
        raise ModelError(f"no labelled images found in {root} for the {form} layout; see `da2k train teacher --help`")
    return records


def _hypersim_planar(distance: np.ndarray, focal: float = 886.81) -> np.ndarray:
    """Hypersim stores distance along each pixel's ray; z-depth = distance * f / |ray|."""
    h, w = distance.shape
    x = np.arange(w, dtype=np.float64) - (w - 1) / 2
    y = np.arange(h, dtype=np.float64) - (h - 1) / 2
    ray = np.sqrt(x[None, :] ** 2 + y[:, None] ** 2 + focal**2)
    return (distance * focal / ray).astype(np.float32)


def read_label(record: Record) -> tuple[np.ndarray, np.ndarray]:
    """(values, valid) float32 / bool arrays at the label's own resolution."""
    if record.reader in ("npy", "pseudo"):
        values = np.load(record.label, allow_pickle=False).astype(np.float32)  # never unpickle
    elif record.reader in ("png16", "vkitti2"):
        with Image.open(record.label) as im:
            raw = np.array(im).astype(np.float32)
        values = raw * record.png_scale
        if record.reader == "vkitti2":
            values[raw >= 65535] = np.nan  # sky
    elif record.reader == "hypersim":
        try:
            import h5py
        except ImportError:
            raise ModelError("reading Hypersim needs h5py: pip install 'da2k[hypersim]'") from None
        with h5py.File(record.label, "r") as f:
            values = _hypersim_planar(np.asarray(f["dataset"], dtype=np.float32))
    else:
        raise ValueError(f"unknown label reader {record.reader!r}")
    valid = np.isfinite(values)
    if record.kind != "pseudo":
        valid &= values > 0
    if record.mask is not None:
        with Image.open(record.mask) as im:
            valid &= np.array(im.convert("L")) > 0
    return np.where(valid, values, 0).astype(np.float32), valid


def unlabeled_images(root: Path) -> list[Path]:
    """Every image under `root` (recursive, sorted): the pseudo-labelling input."""
    images = scan_images(root)
    if not images:
        raise ModelError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {root}")
    return images


def pseudo_records(shards: Path) -> list[Record]:
    """Records of a pseudo-label folder written by `da2k pseudo-label` (its `manifest.json`)."""
    manifest_file = shards / "manifest.json"
    if not manifest_file.is_file():
        raise ModelError(f"{manifest_file} is missing: run `da2k pseudo-label ... --out {shards}` to completion first")
    manifest = _read_json(manifest_file)
    try:
        images_root = Path(manifest["images_root"])
        align = bool(manifest.get("align_corners", True))
        return [
            Record(images_root / it["image"], shards / it["label"], "pseudo", "pseudo", align_corners=align)
            for it in manifest["items"]
        ]
    except (KeyError, TypeError, AttributeError):
        raise ModelError(f"{manifest_file} is not a manifest written by `da2k pseudo-label`") from None


def _read_json(path: Path):
    """A small JSON file of ours; anything unreadable is one line naming the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ModelError(f"{path} is not valid JSON ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path} must hold a JSON object")
    return data


# ---------------------------------------------------------------- augmentation


@dataclass(frozen=True)
class Augment:
    """Resize keeping the aspect ratio (short side = size, bicubic image / nearest label), random
    size x size crop, horizontal flip, colour jitter. `train=False`: resize + centre crop only."""

    size: int = 518
    flip: float = 0.5
    jitter: float = 0.2  # brightness/contrast/saturation factors drawn from [1 - j, 1 + j]
    train: bool = True


def sample_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """A generator that depends only on (seed, epoch, index)."""
    digest = hashlib.blake2b(f"{seed}/{epoch}/{index}".encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") & ((1 << 63) - 1))


def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


def augment(
    image: Image.Image, values: np.ndarray, valid: np.ndarray, aug: Augment, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(image (3, S, S) normalised, values (S, S), valid (S, S)) with one shared geometry.
    `values`/`valid` must already be at the image's size."""
    w, h = image.size
    scale = aug.size / min(h, w)
    nh, nw = max(aug.size, math.ceil(h * scale - 1e-6)), max(aug.size, math.ceil(w * scale - 1e-6))
    if aug.train:
        top = int(torch.randint(nh - aug.size + 1, (), generator=g))
        left = int(torch.randint(nw - aug.size + 1, (), generator=g))
        flip = float(torch.rand((), generator=g)) < aug.flip
        if aug.jitter:
            for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
                image = enhancer(image).enhance(_uniform(g, 1 - aug.jitter, 1 + aug.jitter))
    else:
        top, left, flip = (nh - aug.size) // 2, (nw - aug.size) // 2, False
    box = (left, top, left + aug.size, top + aug.size)
    image = image.resize((nw, nh), Image.Resampling.BICUBIC).crop(box)
    label = Image.fromarray(values.astype(np.float32)).resize((nw, nh), Image.Resampling.NEAREST).crop(box)
    keep = Image.fromarray(valid.astype(np.uint8) * 255).resize((nw, nh), Image.Resampling.NEAREST).crop(box)
    x = torch.from_numpy(np.array(image, dtype=np.float32)).permute(2, 0, 1).div_(255.0)
    x = (x - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(IMAGENET_STD).view(3, 1, 1)
    t = torch.from_numpy(np.array(label, dtype=np.float32))
    m = torch.from_numpy(np.array(keep) > 127)
    if flip:
        x, t, m = x.flip(-1), t.flip(-1), m.flip(-1)
    return x, t, m


def _label_at_image_size(record: Record, values: np.ndarray, valid: np.ndarray, size: tuple[int, int]):
    """Pseudo labels are stored at network resolution: upsample bilinearly (as inference does)."""
    if values.shape == size:
        return values, valid
    if record.reader != "pseudo":
        raise ModelError(
            f"label {record.label} is {values.shape[::-1]} but image {record.image} is {size[::-1]} (w x h)"
        )
    t = torch.from_numpy(values)[None, None]
    up = F.interpolate(t, size=size, mode="bilinear", align_corners=record.align_corners)[0, 0].numpy()
    return up, np.isfinite(up)


# ---------------------------------------------------------------- dataset


class TrainSet(torch.utils.data.Dataset):
    """Records -> augmented (image, target, mask) samples in the stage's target space.

    space="disparity": depth labels become 1/depth (pixels beyond `max_depth`, if set, masked);
    disparity and pseudo labels are used as they are. space="depth": metric depth in metres,
    valid only in [min_depth, max_depth]. Indexed by `(epoch, index)` (see `EpochSampler`), or by
    a plain index for epoch 0.
    """

    def __init__(
        self,
        records: Sequence[Record],
        aug: Augment,
        *,
        space: str = "disparity",
        min_depth: float = 1e-3,
        max_depth: float | None = None,
        seed: int = 0,
    ) -> None:
        if space not in ("disparity", "depth"):
            raise ValueError(f"space must be 'disparity' or 'depth', not {space!r}")
        if space == "depth" and any(r.kind != "depth" for r in records):
            raise ModelError("metric training needs depth labels in metres (an rgbd folder with kind 'depth')")
        self.records, self.aug, self.space = list(records), aug, space
        self.min_depth, self.max_depth, self.seed = min_depth, max_depth, seed

    def __len__(self) -> int:
        return len(self.records)

    def target(self, record: Record, values: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if record.kind == "depth":
            valid = valid & (values >= self.min_depth)
            if self.max_depth is not None:
                valid &= values <= self.max_depth
            if self.space == "disparity":
                values = np.where(valid, 1.0 / np.maximum(values, 1e-12), 0.0).astype(np.float32)
        return values, valid

    def __getitem__(self, item: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        epoch, index = item if isinstance(item, tuple) else (0, item)
        record = self.records[index]
        image = load_image(record.image)
        values, valid = read_label(record)
        values, valid = _label_at_image_size(record, values, valid, (image.height, image.width))
        values, valid = self.target(record, values, valid)
        x, t, m = augment(image, values, valid, self.aug, sample_generator(self.seed, epoch, index))
        return {"image": x, "target": t, "mask": m}


class EpochSampler(torch.utils.data.Sampler):
    """Wraps a `DistributedSampler`: yields `(epoch, index)` and can start part-way through an
    epoch (`skip` samples of this rank already consumed) for exact resume."""

    def __init__(self, inner: torch.utils.data.DistributedSampler) -> None:
        self.inner, self.epoch, self.skip = inner, 0, 0

    def set_position(self, epoch: int, skip: int) -> None:
        self.epoch, self.skip = epoch, skip
        self.inner.set_epoch(epoch)

    def __iter__(self):
        for i, index in enumerate(self.inner):
            if i >= self.skip:
                yield (self.epoch, index)

    def __len__(self) -> int:
        return len(self.inner) - self.skip
