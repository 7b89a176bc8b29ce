"""CLI for the annotation store: `stats`, `export`, `import-benchmark`, `store merge`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from da2k.cli.errors import user_errors
from da2k.cli.options import db_option


@click.command()
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@user_errors
def stats(db, as_json):
    """Images, pairs per status and scenario, expert agreement (Cohen's kappa), human progress."""
    from da2k.store import open_store
    from da2k.store.stats import format_stats, store_stats

    with open_store(db, create=False) as store:
        data = store_stats(store)
    click.echo(json.dumps(data, indent=1) if as_json else format_stats(data))


@click.command()
@db_option
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for annotations.json and images/.")
@click.option("--copy", is_flag=True, help="Copy images instead of hard-linking them.")
@click.option(
    "--images-root",
    type=click.Path(exists=True, file_okay=False),
    help="Folder to find images in that moved since mining (paths relative to it as under --images).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Write into a non-empty --out that holds no earlier export (an earlier one is replaced).",
)
@user_errors
def export(db, out, copy, images_root, force):
    """Write settled pairs (auto_agreed, resolved) as an official-format DA-2K benchmark.

    \b
    da2k export --out my-bench/ && da2k validate my-bench/ && da2k evaluate --data my-bench/ --model vits
    """
    from da2k.export import check_target, export_benchmark
    from da2k.store import open_store

    check_target(Path(out), force)  # before the database is opened: a refused export touches nothing
    with open_store(db, create=False) as store:
        report = export_benchmark(
            store, Path(out), link=not copy, images_root=Path(images_root) if images_root else None, force=force
        )
    click.echo(f"{report.out}: {report.images} images, {report.pairs} pairs")


@click.command("import-benchmark")
@click.argument("path", type=click.Path(exists=True))
@db_option
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
    from da2k.importing import import_benchmark as run_import
    from da2k.store import open_store

    with open_store(db) as store:
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
    """Merge stores written by separate shards or annotation apps (matched on content; idempotent).

    \b
    da2k store merge shard0.db shard1.db --into da2k.db
    """
    from da2k.store.merge import merge_stores

    report = merge_stores(list(sources), into)
    click.echo(", ".join(f"{k} +{v}" for k, v in sorted(report.added.items())) or "nothing new")
