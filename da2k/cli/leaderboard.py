"""`da2k leaderboard build|add-result`: thin commands over `da2k.leaderboard`."""

from __future__ import annotations

from pathlib import Path

import click

from da2k.cli.errors import user_errors


@click.group()
def leaderboard() -> None:
    """Publish a comparison of DA-2K results as a static site.

    \b
    da2k leaderboard add-result my-model.json              validate, copy into results/
    da2k leaderboard build results/ --out site/ --images DA-2K/
    """


@leaderboard.command()
@click.argument("results", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the site (created; an earlier build there is replaced).",
)
@click.option("--title", default="DA-2K leaderboard", show_default=True, help="Page title.")
@click.option(
    "--reported",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A file of reported numbers (paper tables like da2k_paper_tables.json, or condition tables like "
    "depth_anything_ac_da2k.json); repeatable; replaces the packaged Depth Anything V2 and AC numbers.",
)
@click.option("--no-reported", is_flag=True, help="Leave the reported paper rows out.")
@click.option(
    "--images",
    "images",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="DA-2K-format benchmark (folder with annotations.json + images/, or zip): adds the hard-pairs gallery.",
)
@click.option(
    "--hard-pairs", default=6, show_default=True, type=click.IntRange(1, 100), help="Gallery pairs per scenario."
)
@click.option(
    "--stamp", is_flag=True, help="Print the build time in the footer (the output is then no longer reproducible)."
)
@user_errors
def build(results, out, title, reported, no_reported, images, hard_pairs, stamp) -> None:
    """Build the site from RESULTS (result JSON files or folders of them).

    Example: da2k leaderboard build results/ --out site/ --images DA-2K/
    """
    from da2k.leaderboard import build_site

    index = build_site(
        list(results),
        out,
        title=title,
        reported=list(reported) or None,
        include_reported=not no_reported,
        images=images,
        hard_pairs_per_scenario=hard_pairs,
        stamp=stamp,
    )
    click.echo(f"wrote {index} (open it in a browser, or publish {out} on any static host)")


@leaderboard.command("add-result")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--results-dir",
    default=Path("results"),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of results the leaderboard is built from.",
)
@click.option("--force", is_flag=True, help="Replace a result file of the same name.")
@user_errors
def add_result(file, results_dir, force) -> None:
    """Validate a result FILE (from `da2k evaluate`, or a hand-written reported one) and add it.

    Example: da2k leaderboard add-result runs/my-model-DA-2K.json
    """
    from da2k.leaderboard import add_result as add

    entry, dest = add(file, results_dir, force=force)
    o = entry.overall
    ci = f", 95% CI {100 * o.ci95[0]:.1f}-{100 * o.ci95[1]:.1f}" if o.ci95 else ""
    click.echo(
        f"added {entry.name} ({entry.provenance}, {entry.benchmark}): overall {100 * o.accuracy:.1f}%{ci} -> {dest}"
    )
    click.echo(f"next: da2k leaderboard build {results_dir} --out site/")
