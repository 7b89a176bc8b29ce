"""`da2k mine`: propose pairs on your images and let expert models vote on them."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from da2k.cli.errors import user_errors
from da2k.cli.options import compile_option, db_option, device_option, precision_option, workers_option

# The paper's four voters (Depth Anything V2 paper, Section 6.2): V1, Marigold, GeoWizard and V2.
DEFAULT_EXPERTS = ("v1-vitl", "marigold:prs-eth/marigold-depth-v1-1", "geowizard:lemonaddie/Geowizard", "vitl")


def _shard(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, int]:
    from da2k.errors import Da2kError
    from da2k.mining import parse_shard

    try:
        return parse_shard(value)
    except Da2kError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command()
@click.option(
    "--images",
    "images",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="Folder of images (scanned recursively).",
)
@db_option
@click.option(
    "--scenario",
    help="Scenario of every image (default: the first sub-folder under --images; images directly in it: its name).",
)
@click.option(
    "--pairs-per-image",
    default=2,
    show_default=True,
    type=click.IntRange(1),
    help="Candidate pairs proposed per image.",
)
@click.option(
    "--expert",
    "experts",
    multiple=True,
    help=(
        "Expert predictor spec, repeatable, at least two (DA-2K used four): vitl, v1-vitl, "
        "marigold:REPO, geowizard:REPO, depthfm:CKPT, hf:REPO (e.g. hf:Intel/dpt-large), "
        "python:MODULE:FUNCTION, precomputed:DIR;kind=depth. Options follow ';': vit-tiny;weights=PATH. "
        "Default, the paper's four: " + ", ".join(DEFAULT_EXPERTS) + "."
    ),
)
@click.option(
    "--min-margin",
    default=0.05,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Smallest margin (|disparity difference| / the expert's disparity range on the image) for an automatic answer.",
)
@click.option(
    "--audit-rate",
    default=0.05,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of agreed pairs sent to humans as gold questions.",
)
@click.option("--seed", default=0, show_default=True, help="Seeds point proposal and audit sampling.")
@click.option(
    "--points",
    type=click.Choice(["auto", "sam", "felzenszwalb"]),
    default="auto",
    show_default=True,
    help="Segments for candidate points: SAM (pip install 'da2k[sam]') or scikit-image; auto tries SAM first.",
)
@click.option(
    "--shard",
    callback=_shard,
    help="INDEX/COUNT: mine only this share of the images (default: RANK/WORLD_SIZE under torchrun).",
)
@device_option
@precision_option()
@compile_option
@workers_option("Threads decoding and proposing points ahead of the experts.")
@user_errors
def mine(
    images,
    db,
    scenario,
    pairs_per_image,
    experts,
    min_margin,
    audit_rate,
    seed,
    points,
    shard,
    device,
    precision,
    compile_network,
    workers,
):
    """Propose point pairs on unlabeled images and let expert models vote on which is closer.

    Pairs all experts agree on (with a clear margin) are kept automatically; the others wait
    for humans (`da2k annotate`). Re-running continues where a run stopped and adds nothing
    twice.

    \b
    da2k mine --images photos/        # the paper's four experts (V1, Marigold, GeoWizard, V2)
    da2k mine --images photos/ --expert vitl --expert v1-vitl \\
        --expert 'geowizard:lemonaddie/Geowizard;ensemble_size=3' --expert 'precomputed:maps/;kind=depth'
    """
    from da2k.mining import mine as run_mine
    from da2k.store import open_store

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    with open_store(db) as store:
        report = run_mine(
            store,
            Path(images),
            list(experts) or list(DEFAULT_EXPERTS),
            scenario=scenario,
            shard=shard,
            device=device,
            precision=precision,
            compile=compile_network,
            pairs_per_image=pairs_per_image,
            min_margin=min_margin,
            audit_rate=audit_rate,
            seed=seed,
            points=points,
            workers=workers,
        )
    statuses = ", ".join(f"{k} {v}" for k, v in sorted(report.statuses.items())) or "none"
    timing = ""
    if any(report.expert_seconds.values()):
        timing = f"; {report.outside_experts_share:.0%} of {report.wall_seconds:.1f} s outside the experts"
    click.echo(
        f"{report.files} files: {report.images_new} new images, {report.images_done_before} done before, "
        f"{report.duplicates} duplicates, {len(report.failed)} failed; {report.pairs_added} pairs added; "
        f"decided: {statuses}{timing}"
    )
    if report.failed:
        for path, reason in report.failed:
            click.echo(f"failed: {path}: {reason}", err=True)
        raise click.ClickException(
            f"{len(report.failed)} image(s) could not be mined (listed above); the rest are stored"
        )
