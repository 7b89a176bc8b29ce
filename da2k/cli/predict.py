"""`da2k predict`: depth maps for a folder of photos with any registered model."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from da2k.cli.errors import user_errors
from da2k.cli.options import compile_option, device_option, precision_option, weights_option
from da2k.predict import FORMATS


@click.command()
@click.argument("images", nargs=-1, required=True)
@click.option(
    "--model",
    "model_name",
    default="vits",
    show_default=True,
    help="Registered model: vits, vitb, vitl, vitg, v1-vitl, metric-hypersim-vitl, ...",
)
@weights_option
@click.option(
    "--input-size",
    type=click.IntRange(min=14),
    help="Short side the network sees (multiple of 14 after resizing; default: the model's, 518 for the official ones).",
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
@device_option
@precision_option()
@compile_option
@click.option(
    "--overwrite",
    is_flag=True,
    help="Recompute every map and replace existing files (default: keep maps already made).",
)
@user_errors
def predict(images, model_name, weights, input_size, out_dir, fmt, device, precision, compile_network, overwrite):
    """Predict depth for IMAGES (files or folders, searched recursively).

    One output file per image, at the original size (EXIF orientation applied); folder
    structure is kept. Relative models give disparity (larger = closer), metric-* models metres.
    A rerun skips maps already made with the same settings (recorded in OUT/da2k-predict.jsonl).

    \b
    Example:
      da2k predict photos/ --model vitl --out depth/ --format color
    """
    from tqdm import tqdm

    from da2k.models import build_model, file_sha256, resolve_weights
    from da2k.models import predict as run
    from da2k.predict import Manifest, pending_jobs, plan_jobs, save_map

    jobs = plan_jobs(images, out_dir, fmt)
    out = Path(out_dir)
    checkpoint = resolve_weights(model_name, weights)
    settings = {
        "model": model_name,
        "checkpoint_sha256": file_sha256(checkpoint),
        "input_size": input_size,
        "precision": precision,
        "format": fmt,
    }
    todo, done = pending_jobs(jobs, out, settings, overwrite)
    model = build_model(model_name, checkpoint)
    manifest = Manifest(out)
    targets = {job.image: job for job in todo}
    failed = 0
    progress = tqdm(
        run(model, list(targets), input_size, device, precision, compile=compile_network), total=len(todo), unit="img"
    )
    for src, result in progress:
        if isinstance(result, Exception):
            failed += 1
            progress.write(f"skipped {src}: {result}", file=sys.stderr)
            continue
        save_map(result.upsample(), targets[src].target, fmt)
        manifest.record(targets[src], out, settings)
    kept = f", {done} already there" if done else ""
    click.echo(
        f"wrote {len(todo) - failed} depth map(s) to {out}{kept}" + (f"; {failed} image(s) failed" if failed else "")
    )
    if failed:
        raise SystemExit(1)
