"""`da2k predict`: depth maps for a folder of photos with any registered model."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import click

from da2k.cli import user_errors
from da2k.errors import Da2kError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
FORMATS = {"npy": ".npy", "png16": ".png", "color": ".png"}


def collect_images(inputs: tuple[str, ...]) -> list[tuple[Path, Path]]:
    """(image path, output path relative to --out without suffix) for files and folders."""
    found: list[tuple[Path, Path]] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            for f in sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES):
                found.append((f, f.relative_to(path).with_suffix("")))
        elif path.is_file():
            found.append((path, Path(path.stem)))
        else:
            raise Da2kError(f"{path} does not exist")
    if not found:
        raise Da2kError("no images found in " + ", ".join(inputs))
    return found


def _atomic_write(target: Path, write) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=target.suffix)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_map(depth, target: Path, fmt: str) -> None:
    """npy: float32 values as predicted; png16: per-image min-max to 0..65535; color: Spectral_r."""
    import numpy as np
    from PIL import Image

    values = depth.numpy().astype(np.float32)
    if fmt == "npy":
        _atomic_write(target, lambda tmp: np.save(open(tmp, "wb"), values))
        return
    lo, hi = float(values.min()), float(values.max())
    unit = (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)
    if fmt == "png16":
        image = Image.fromarray((unit * 65535.0 + 0.5).astype(np.uint16))
    else:
        from matplotlib import colormaps

        image = Image.fromarray((colormaps["Spectral_r"](unit)[..., :3] * 255.0 + 0.5).astype(np.uint8))
    _atomic_write(target, lambda tmp: image.save(tmp, format="PNG"))


@click.command()
@click.argument("images", nargs=-1, required=True)
@click.option(
    "--model",
    "model_name",
    default="vits",
    show_default=True,
    help="Registered model: vits, vitb, vitl, vitg, v1-vitl, metric-hypersim-vitl, ...",
)
@click.option(
    "--weights", type=click.Path(), help="Checkpoint file or folder (default: $DA2K_WEIGHTS_DIR, then the hub)."
)
@click.option(
    "--input-size",
    type=int,
    default=518,
    show_default=True,
    help="Short side the network sees (multiple of 14 after resizing).",
)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="Output folder.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(list(FORMATS)),
    default="npy",
    show_default=True,
    help="npy: raw float32 map; png16: 16-bit normalised; color: colour-mapped preview.",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option(
    "--precision",
    type=click.Choice(["auto", "fp32", "bf16", "fp16"]),
    default="auto",
    show_default=True,
    help="auto: bf16 only on CPUs with native bf16, fp16 on CUDA, else fp32.",
)
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
@user_errors
def predict(images, model_name, weights, input_size, out_dir, fmt, device, precision, overwrite):
    """Predict depth for IMAGES (files or folders, searched recursively).

    One output file per image, at the original size (EXIF orientation applied); folder
    structure is kept. Relative models give disparity (larger = closer), metric-* models metres.

    \b
    Example:
      da2k predict photos/ --model vitl --out depth/ --format color
    """
    from tqdm import tqdm

    from da2k.models import load_pretrained
    from da2k.models import predict as run

    if input_size < 14:
        raise Da2kError("--input-size must be at least 14")
    jobs = collect_images(images)
    out = Path(out_dir)
    targets = {src: out / rel.with_suffix(FORMATS[fmt]) for src, rel in jobs}
    if len(set(targets.values())) != len(targets):
        raise Da2kError("two inputs map to the same output name; predict folders separately or rename files")
    existing = [t for t in targets.values() if t.exists()]
    if existing and not overwrite:
        raise Da2kError(
            f"{len(existing)} output file(s) already exist (e.g. {existing[0]}); pass --overwrite to replace them"
        )

    model = load_pretrained(model_name, weights)
    failed = 0
    progress = tqdm(run(model, [src for src, _ in jobs], input_size, device, precision), total=len(jobs), unit="img")
    for src, result in progress:
        if isinstance(result, Exception):
            failed += 1
            progress.write(f"skipped {src}: {result}", file=sys.stderr)
            continue
        save_map(result.upsample(), targets[src], fmt)
    click.echo(f"wrote {len(jobs) - failed} depth map(s) to {out}" + (f"; {failed} image(s) failed" if failed else ""))
    if failed:
        raise SystemExit(1)
