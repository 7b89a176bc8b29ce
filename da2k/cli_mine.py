"""CLI for building your own benchmark: `mine`, `stats`, `export`, `import-benchmark`, `store merge`."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from da2k.cli import user_errors

DB_HELP = "Annotation database: a SQLite file path or any SQLAlchemy URL (postgresql+psycopg://...)."
DEFAULT_EXPERTS = ("vitl", "v1-vitl", "marigold:prs-eth/marigold-depth-v1-1", "hf:Intel/dpt-large")


def _db_option(fn):
    return click.option("--db", default="da2k.db", show_default=True, help=DB_HELP)(fn)


@click.command()
@click.option(
    "--images",
    "images",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="Folder of images (scanned recursively).",
)
@_db_option
@click.option("--scenario", help="Scenario of every image (default: the first sub-folder under --images).")
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
        "marigold:REPO, hf:REPO, python:MODULE:FUNCTION, precomputed:DIR;kind=depth. Options follow "
        "';': vit-tiny;weights=PATH. Default: " + ", ".join(DEFAULT_EXPERTS) + "."
    ),
)
@click.option(
    "--min-margin",
    default=0.05,
    show_default=True,
    type=float,
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
    "--shard", help="INDEX/COUNT: mine only this share of the images (default: RANK/WORLD_SIZE under torchrun)."
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default="auto", show_default=True)
@click.option(
    "--workers",
    default=2,
    show_default=True,
    type=click.IntRange(1),
    help="Threads decoding and proposing points ahead of the experts.",
)
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
    workers,
):
    """Propose point pairs on unlabeled images and let expert models vote on which is closer.

    Pairs all experts agree on (with a clear margin) are kept automatically; the others wait
    for humans (`da2k annotate`). Re-running continues where a run stopped and adds nothing
    twice.

    \b
    da2k mine --images photos/ --expert vitl --expert v1-vitl \\
        --expert 'marigold:prs-eth/marigold-depth-v1-1' --expert 'precomputed:geowizard/;kind=depth'
    """
    from da2k.mine import mine as run_mine
    from da2k.mine import parse_shard
    from da2k.store import Store

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    with Store(db) as store:
        report = run_mine(
            store,
            Path(images),
            list(experts) or list(DEFAULT_EXPERTS),
            scenario=scenario,
            shard=parse_shard(shard),
            device=device,
            precision=precision,
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


@click.command()
@_db_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@user_errors
def stats(db, as_json):
    """Images, pairs per status and scenario, expert agreement (Cohen's kappa), human progress."""
    from da2k.store import Store
    from da2k.store.stats import format_stats, store_stats

    with Store(db, create=False) as store:
        data = store_stats(store)
    click.echo(json.dumps(data, indent=1) if as_json else format_stats(data))


@click.command()
@_db_option
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for annotations.json and images/.")
@click.option("--copy", is_flag=True, help="Copy images instead of hard-linking them.")
@click.option(
    "--images-root",
    type=click.Path(exists=True, file_okay=False),
    help="Folder to find images in that moved since mining (paths relative to it as under --images).",
)
@user_errors
def export(db, out, copy, images_root):
    """Write settled pairs (auto_agreed, resolved) as an official-format DA-2K benchmark.

    \b
    da2k export --out my-bench/ && da2k validate my-bench/ && da2k evaluate --data my-bench/ --model vits
    """
    from da2k.export import export_benchmark
    from da2k.store import Store

    with Store(db, create=False) as store:
        report = export_benchmark(
            store, Path(out), link=not copy, images_root=Path(images_root) if images_root else None
        )
    click.echo(f"{report.out}: {report.images} images, {report.pairs} pairs")


@click.command("import-benchmark")
@click.argument("path", type=click.Path(exists=True))
@_db_option
@click.option(
    "--reannotate", is_flag=True, help="Queue the pairs for humans (needs_human) instead of marking them resolved."
)
@click.option(
    "--extract-to",
    type=click.Path(file_okay=False),
    help="Where images of a zip go (default: a folder named after the zip).",
)
@click.option("--allow-scenario", multiple=True, help="Accept this scenario name besides the eight of DA-2K.")
@user_errors
def import_benchmark(path, db, reannotate, extract_to, allow_scenario):
    """Load a DA-2K-format benchmark (folder or zip) into the store; its pairs can serve as gold."""
    from da2k.export import import_benchmark as run_import
    from da2k.store import Store

    with Store(db) as store:
        report = run_import(
            store,
            Path(path),
            status="needs_human" if reannotate else "resolved",
            extract_to=Path(extract_to) if extract_to else None,
            allow_scenarios=tuple(allow_scenario),
        )
    click.echo(
        f"{report.images} images, {report.pairs_added} pairs added, {report.pairs_existing} already there, "
        f"{report.skipped} invalid skipped"
    )


@click.group()
def store():
    """Maintain annotation databases."""


@store.command()
@click.argument("sources", nargs=-1, required=True)
@click.option("--into", required=True, help="Database to merge into (created if missing).")
@user_errors
def merge(sources, into):
    """Merge stores written by separate shards (e.g. `da2k mine --shard i/n` on SQLite).

    \b
    da2k store merge shard0.db shard1.db --into da2k.db
    """
    from da2k.store.merge import merge_stores

    report = merge_stores(list(sources), into)
    click.echo(", ".join(f"{k} +{v}" for k, v in sorted(report.added.items())) or "nothing new")
