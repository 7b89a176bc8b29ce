"""`da2k evaluate`, `da2k validate`, `da2k compare`: thin commands over da2k.evaluate,
da2k.benchmark and da2k.results."""

from __future__ import annotations

import click

from da2k.cli.errors import user_errors
from da2k.cli.options import compile_option, device_option, precision_option, weights_option, workers_option
from da2k.scoring import KINDS

DATA_HELP = (
    "DA-2K folder, its annotations.json, or DA-2K.zip (read in place). Default: DA-2K.zip from the hub (cached)."
)


def _pct(x: float) -> str:
    return f"{100 * x:5.1f}"


def _score_line(label: str, s: dict, width: int) -> str:
    lo, hi = s["ci95"]
    return f"{label:<{width}} {s['n']:>6} {s['correct']:>7} {_pct(s['accuracy'])} %  [{_pct(lo)}, {_pct(hi)}]"


def format_table(result: dict) -> str:
    """Per-scenario n, correct, accuracy and 95 % CI, then the overall lines."""
    width = max([len("scenario mean"), *map(len, result["scenarios"])]) + 2
    lines = [f"{'scenario':<{width}} {'n':>6} {'correct':>7} {'accuracy':>8}  95 % CI"]
    lines += [_score_line(name, s, width) for name, s in result["scenarios"].items()]
    lines.append(_score_line("overall", result["overall"], width))
    lines.append(
        f"{'scenario mean':<{width}} {'':>6} {'':>7} {_pct(result['overall']['scenario_mean'])} %  (unweighted)"
    )
    return "\n".join(lines)


SHOWN_PROBLEMS = 20


def _echo_problems(problems, err: bool = False, limit: int | None = None) -> None:
    shown = problems if limit is None else problems[:limit]
    for problem in shown:
        click.echo(str(problem), err=err)
    if len(problems) > len(shown):
        click.echo(
            f"... and {len(problems) - len(shown)} more (all in the result file; da2k validate lists them)", err=err
        )


def _announce_problems(bench, report, strict: bool) -> None:
    """Errors on stderr (the first few), a count of warnings; with `strict`, refuse any problem."""
    from da2k.evaluate import InvalidBenchmark

    if strict and not report.ok:
        _echo_problems(report.problems, err=True, limit=SHOWN_PROBLEMS)
        raise InvalidBenchmark(bench, report)
    _echo_problems(report.errors, err=True, limit=SHOWN_PROBLEMS)
    if report.warnings:
        click.echo(
            f"{len(report.warnings)} warning(s) (duplicate, swapped or contradictory pairs, unknown scenarios): "
            "scored as written; da2k validate lists them",
            err=True,
        )


@click.command()
@click.option(
    "--model",
    "spec",
    required=True,
    help=(
        "vits|vitb|vitl|vitg|v1-*|metric-*, precomputed:DIR, hf:REPO, marigold:REPO, depthfm:CKPT, "
        "geowizard:REPO or python:MODULE:FUNCTION; options follow ';' (depthfm:CKPT;vae=DIR;steps=2)."
    ),
)
@weights_option
@click.option(
    "--kind",
    type=click.Choice(KINDS),
    help="Output kind: required for precomputed:, overrides the declared one otherwise.",
)
@click.option("--data", type=click.Path(), help=DATA_HELP)
@click.option(
    "--input-size",
    type=click.IntRange(min=14),
    help=(
        "Network input size (ours: short side, default 518; hf, marigold: processing size; depthfm, "
        "geowizard: longer side, default the image's / 768)."
    ),
)
@click.option("--scenarios", help="Comma-separated scenarios to score (default: all).")
@click.option("--limit", type=click.IntRange(min=1), help="Score only the first N images (after --scenarios).")
@device_option
@precision_option(
    "fp32",
    "fp32 (default) is the reference every published score is computed at; bf16 and fp16 are "
    "faster opt-ins (bf16 reorders about 0.1-0.9 % of pairs); auto means fp32 here. The result "
    "records the precision.",
)
@compile_option
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default="results",
    show_default=True,
    help="Folder for <run>.json and <run>.pairs.csv.",
)
@click.option(
    "--run", "run", help="Run name (default: <model>[-<sha256 first 8>]-<benchmark>[-<scenarios>][-first<N>])."
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    help="Per-image value cache (default: $DA2K_CACHE_DIR or ~/.cache/da2k).",
)
@click.option(
    "--strict",
    is_flag=True,
    help="Refuse a benchmark with any problem, warnings included (exit 1, nothing scored): for benchmark builders and CI.",
)
@click.option(
    "--skip-invalid",
    is_flag=True,
    help="Accepted for compatibility, does nothing: pairs that cannot be scored are always skipped and listed.",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing result file that holds a different result.")
@click.option("--allow-scenario", multiple=True, metavar="NAME", help="Accept an extra scenario folder (repeatable).")
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="marigold, depthfm, geowizard: noise seed, reset before each image.",
)
@click.option(
    "--ensemble-size",
    type=click.IntRange(min=1),
    help="marigold, depthfm, geowizard: predictions merged per image (default: the model's: 1, 4, 10).",
)
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    help="marigold, depthfm, geowizard: denoising/ODE steps (default: the model's: checkpoint's, 2, 10).",
)
@workers_option()
@user_errors
def evaluate(
    spec,
    weights,
    kind,
    data,
    input_size,
    scenarios,
    limit,
    device,
    precision,
    compile_network,
    out_dir,
    run,
    cache_dir,
    strict,
    skip_invalid,
    overwrite,
    allow_scenario,
    seed,
    ensemble_size,
    steps,
    workers,
):
    """Score a depth model on DA-2K (or any DA-2K-format benchmark), per scenario.

    Every pair that can be scored is scored, in file order, duplicates included; pairs that
    cannot be (missing or undecodable image, point outside it, malformed pair) are skipped,
    listed in the result file and counted in the summary line. --strict refuses instead.

    \b
    da2k evaluate --model vitl
    da2k evaluate --model vits --weights depth_anything_v2_vits.pth --data DA-2K.zip
    da2k evaluate --model precomputed:maps/ --kind depth --data DA-2K/
    """
    from da2k.benchmark import load_benchmark, validate
    from da2k.evaluate import evaluate as run_evaluation
    from da2k.models import scoring_precision
    from da2k.predictors import PredictorOptions, make_predictor

    del skip_invalid  # the old opt-in to skipping; skipping what cannot be scored is the policy now
    precision = scoring_precision(precision)
    bench = load_benchmark(data)
    report = validate(bench, allow_scenario)
    _announce_problems(bench, report, strict)  # before any model is loaded
    options = PredictorOptions(
        weights=weights,
        kind=kind,
        input_size=input_size,
        device=device,
        precision=precision,
        compile=compile_network,
        seed=seed,
        ensemble_size=ensemble_size,
        steps=steps,
    )
    chosen = [s.strip() for s in scenarios.split(",") if s.strip()] if scenarios else None
    predictor = make_predictor(spec, options)
    outcome = run_evaluation(
        bench,
        predictor,
        out_dir,
        scenarios=chosen,
        limit=limit,
        strict=strict,
        overwrite=overwrite,
        cache_dir=cache_dir,
        name=run,
        workers=workers,
        report=report,
    )
    result = outcome.result
    precision = result["model"].get("settings", {}).get("precision")
    compiled = outcome.timings["compile_s"] if predictor.compile else None
    click.echo(
        f"{result['model']['id']} ({result['model']['kind']}) on {bench.name}: "
        f"{outcome.computed} image(s) predicted, {outcome.cached} from the cache"
        + (f"; precision {precision}" if precision else "")
        + (f"; compiling took {compiled:.1f} s (not in latency_ms)" if compiled is not None else "")
    )
    click.echo(format_table(result))
    click.echo(result["summary"])
    click.echo(f"wrote {outcome.result_path} and {outcome.pairs_path}")


@click.command()
@click.argument("path", required=False)
@click.option("--allow-scenario", multiple=True, metavar="NAME", help="Accept an extra scenario folder (repeatable).")
@click.option("--strict", is_flag=True, help="Treat warnings as errors (exit 1 on any problem).")
@user_errors
def validate(path, allow_scenario, strict):
    """Check a DA-2K-format benchmark (folder, annotations.json or zip; default: the official one).

    Errors (the pair cannot be scored): an image missing, unreadable or undecodable, an unsafe
    path, a point malformed or outside its EXIF-oriented image, two identical points, a
    closer_point other than point1/point2. Warnings (scored as written): duplicate, swapped or
    contradictory pairs, a scenario folder outside the eight. Lists every problem; exit 1 on
    errors (with --strict, on warnings too)."""
    from da2k.benchmark import load_benchmark
    from da2k.benchmark import validate as check

    bench = load_benchmark(path)
    report = check(bench, allow_scenario)
    summary = f"{bench.name}: {bench.n_images} images, {bench.n_pairs} pairs"
    if report.ok:
        click.echo(f"{summary}, no problems")
        return
    _echo_problems(report.problems)
    skipped = report.skipped_pairs(bench.annotations)
    click.echo(
        f"{summary}: {len(report.errors)} error(s) ({skipped} pair(s) cannot be scored), "
        f"{len(report.warnings)} warning(s)"
    )
    if report.errors or strict:
        raise SystemExit(1)


@click.command()
@click.argument("result_a", type=click.Path(dir_okay=False))
@click.argument("result_b", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Compare results scored on different annotation files anyway.")
@user_errors
def compare(result_a, result_b, force):
    """Paired comparison of two result files on their common pairs: per scenario and overall,
    accuracies, discordant pairs and the exact McNemar p-value (reads the per-pair CSVs).
    Results on different annotation files are refused unless --force."""
    from da2k.results import compare as pair_up

    c = pair_up(result_a, result_b, force=force)
    name_a, name_b = c.a["model"]["id"], c.b["model"]["id"]
    click.echo(f"A = {name_a} ({result_a})\nB = {name_b} ({result_b})")
    if c.a["benchmark"].get("annotations_sha256") != c.b["benchmark"].get("annotations_sha256"):
        click.echo("warning: the two runs used different annotation files (--force)", err=True)
    if c.only_a or c.only_b:
        click.echo(f"note: comparing common pairs only ({c.only_a} scored by A alone, {c.only_b} by B alone)", err=True)
    width = max([len("overall"), *map(len, c.scenarios)]) + 2
    click.echo(f"{'scenario':<{width}} {'n':>6} {'A acc':>7} {'B acc':>7} {'A only':>7} {'B only':>7}  exact McNemar p")
    for label, p in [*c.scenarios.items(), ("overall", c.overall)]:
        click.echo(
            f"{label:<{width}} {p.n:>6} {_pct(p.a_correct / p.n):>7} {_pct(p.b_correct / p.n):>7} "
            f"{p.b:>7} {p.c:>7}  {p.p_value:.4g}"
        )
