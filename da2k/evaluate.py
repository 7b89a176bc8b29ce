"""`da2k evaluate`: validate, predict (cached per image, decoding overlapped with the forward),
sample at the annotated points, score, write `<run>.json` + `<run>.pairs.csv` atomically.

Resumability: the values sampled for one image are cached under the user cache directory,
keyed by model id, checkpoint sha256, input size, settings and the image's sha256; a restarted
run recomputes only what is missing and writes the same result (timing and date aside).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from da2k import __version__
from da2k.benchmark import SCENARIOS, Benchmark, Pair, Report, scenario_of, validate
from da2k.errors import Da2kError
from da2k.models.files import atomic_write_text
from da2k.models.prefetch import prefetch
from da2k.predictors import Prediction, Predictor
from da2k.results import SCHEMA, PairRow, refuse_replacing, write_pairs_csv, write_result
from da2k.scoring import order_scenarios, overall, pair_correct, sample_bilinear, score_by_scenario, to_disparity

CACHE_ENV = "DA2K_CACHE_DIR"


def default_cache_dir() -> Path:
    """`$DA2K_CACHE_DIR`, else `$XDG_CACHE_HOME/da2k`, else `~/.cache/da2k`."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "da2k"


class InvalidBenchmark(Da2kError):
    """`--strict` and the benchmark has problems (warnings included); `report` lists them."""

    def __init__(self, bench: Benchmark, report: Report) -> None:
        self.report = report
        super().__init__(
            f"{bench.name} has {len(report.errors)} error(s) and {len(report.warnings)} warning(s), the first: "
            f"{report.problems[0]}; --strict refuses to score it: fix them (da2k validate lists them all) "
            "or leave out --strict to score every pair that can be scored"
        )


class ValueCache:
    """Per-image sampled values: `{kind, points, values}` JSON files, one per (model, image)."""

    def __init__(self, root: Path, predictor: Predictor) -> None:
        self.root = root / "values"
        self.model_key = {
            "model": predictor.id,
            "checkpoint_sha256": predictor.checkpoint_sha256,
            "input_size": predictor.input_size,
            "settings": predictor.settings,
        }

    def _path(self, image_sha256: str) -> Path:
        blob = json.dumps({**self.model_key, "image_sha256": image_sha256}, sort_keys=True, default=str)
        digest = hashlib.sha256(blob.encode()).hexdigest()
        return self.root / digest[:2] / f"{digest}.json"

    def get(self, image_sha256: str, points: np.ndarray) -> tuple[str, np.ndarray] | None:
        """(kind, values at `points`) if every point is cached for this image, else None."""
        try:
            entry = json.loads(self._path(image_sha256).read_text())
        except (OSError, ValueError):
            return None
        table = {tuple(p): v for p, v in zip(entry["points"], entry["values"])}
        try:
            return entry["kind"], np.array([table[tuple(p)] for p in points.tolist()], dtype=np.float64)
        except KeyError:
            return None

    def put(self, image_sha256: str, kind: str, points: np.ndarray, values: np.ndarray) -> None:
        entry = {"kind": kind, "points": points.tolist(), "values": values.tolist()}
        atomic_write_text(self._path(image_sha256), json.dumps(entry))


@dataclass
class Outcome:
    """What a run produced: the result dict (as written), where it went, the rows, the report."""

    result: dict
    result_path: Path
    pairs_path: Path
    rows: list[PairRow]
    report: Report
    computed: int = 0  # images predicted in this run
    cached: int = 0  # images whose values came from the cache
    timings: dict = field(default_factory=dict)


def run_name(predictor: Predictor, bench: Benchmark, scenarios: Sequence[str] | None, limit: int | None) -> str:
    """`<model>[-<sha8>]-<benchmark>`, plus what makes a run partial, safe as a file name.

    `<sha8>`: the first 8 hex digits of the checkpoint's sha256 (of a precomputed folder's
    content hash), so two checkpoints of one architecture never share a default name."""
    model = predictor.id.split(":", 1)[1] if predictor.id.startswith("precomputed:") else predictor.id
    parts = [model]
    if predictor.checkpoint_sha256:
        parts.append(predictor.checkpoint_sha256[:8])
    parts.append(bench.name)
    if scenarios:
        parts.append("+".join(scenarios))
    if limit is not None:
        parts.append(f"first{limit}")
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", "-".join(parts)).strip("-")


def hardware(predictor: Predictor) -> str:
    """CPU model and cores, plus the GPU when the predictor runs on one."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    text = f"{cpu} ({os.cpu_count()} cores)"
    device = getattr(predictor, "device", None)
    if device is not None and getattr(device, "type", "") == "cuda":
        import torch

        text += f", {torch.cuda.get_device_name(device)}"
    return text


def latency_record(predictor: Predictor, forward_seconds: list[float]) -> dict:
    """`latency_ms` (median of the forward time per image: the network alone, decoding and
    resizing excluded) and a `latency` block saying where it was measured; empty when nothing
    was timed (every image came from the cache, or the predictor runs no network)."""
    if not forward_seconds or not predictor.timed:
        return {}
    device = getattr(predictor, "device", None)
    if device is not None and getattr(device, "type", "") == "cuda":
        import torch

        where = torch.cuda.get_device_name(device)
    else:
        where = hardware(None)
    precision = getattr(getattr(predictor, "precision", None), "name", None) or predictor.settings.get("precision")
    compiled = {"compile_s": round(predictor.compile_seconds, 3)} if predictor.compile else {}
    return {
        "latency_ms": round(1000 * float(np.median(forward_seconds)), 3),
        "latency": {
            "statistic": "median over images predicted in this run",
            "images": len(forward_seconds),
            "hardware": where,
            "precision": precision,
            "input_size": predictor.input_size,
            **compiled,
        },
    }


def select_images(
    bench: Benchmark, report: Report, scenarios: Sequence[str] | None, limit: int | None
) -> list[tuple[str, list[Pair]]]:
    """Scorable images (with their scorable pairs) in annotation order, filtered and limited."""
    keys = bench.keys()
    if scenarios:
        present = {scenario_of(k) for k in keys} - {None}
        unknown = [s for s in scenarios if s not in present]
        if unknown:
            raise Da2kError(
                f"--scenarios: {', '.join(unknown)} not in {bench.name} "
                f"(it has: {', '.join(order_scenarios(present, SCENARIOS))})"
            )
        keys = [k for k in keys if scenario_of(k) in scenarios]
    selected = []
    for key in keys:
        if not report.is_valid(key):
            continue
        pairs = bench.pairs(key, valid=lambda i, k=key: report.is_valid(k, i))
        if pairs:
            selected.append((key, pairs))
    return selected[:limit] if limit is not None else selected


def pair_points(pairs: list[Pair]) -> np.ndarray:
    """(2N, 2) float64: closer points then other points."""
    return np.array([p.closer for p in pairs] + [p.other for p in pairs], dtype=np.float64)


def run_predictions(
    predictor: Predictor, bench: Benchmark, keys: Iterable[str], workers: int = 2
) -> Iterator[tuple[str, Prediction, float]]:
    """Yield (key, prediction, forward seconds) in order; `predictor.prepare` (decode, resize)
    runs in `workers` threads up to `2 * workers` images ahead of `predictor.forward`."""

    def prepare(key: str):
        return predictor.prepare(key, lambda: bench.load_image(key))

    for key, future in prefetch(keys, prepare, workers):
        prepared = future.result()
        start = time.perf_counter()
        prediction = predictor.forward(prepared)
        yield key, prediction, time.perf_counter() - start


def summary_line(bench: Benchmark, report: Report, rows: list[PairRow], selection: dict) -> str:
    """`scored 2060 of 2068 pairs on 1031 of 1035 images; 4 images missing from the archive
    (listed in the result file)`: the one line that says what a run covers."""
    line = f"scored {len(rows)} of {bench.n_pairs} pairs on {len({r.image for r in rows})} of {bench.n_images} images"
    notes = [f"{report.skip_reasons(bench.archive.is_folder)} (listed in the result file)"] if report.errors else []
    chosen = [f"--scenarios {','.join(selection['scenarios'])}"] if selection.get("scenarios") else []
    chosen += [f"--limit {selection['limit']}"] if selection.get("limit") else []
    if chosen:
        notes.append(f"selected with {' '.join(chosen)}")
    return line + ("; " + "; ".join(notes) if notes else "")


# --------------------------------------------------------------------------------------------
# The steps of `evaluate`, in order


def check_locations(out_dir: Path, cache_dir: str | Path | None, limit: int | None) -> Path:
    """The cache root; refuses a cache inside `out_dir` and a limit below 1."""
    cache_root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if cache_root.resolve().is_relative_to(out_dir.resolve()):
        raise Da2kError(f"--cache-dir {cache_root} lies inside --out {out_dir}; keep the cache elsewhere")
    if limit is not None and limit < 1:
        raise Da2kError("--limit must be at least 1")
    return cache_root


def plan(
    bench: Benchmark, report: Report, scenarios: Sequence[str] | None, limit: int | None, strict: bool
) -> list[tuple[str, list[Pair]]]:
    """What will be scored: every scorable pair of the selection, in file order (duplicates
    included). `strict` refuses any problem; nothing scorable is an error."""
    if strict and not report.ok:
        raise InvalidBenchmark(bench, report)
    selected = select_images(bench, report, scenarios, limit)
    if not selected:
        why = f": {report.skip_reasons(bench.archive.is_folder)}" if report.errors else ""
        raise Da2kError(f"nothing could be scored in {bench.name} (0 of {bench.n_pairs} pairs){why}")
    return selected


def cached_values(
    cache: ValueCache | None, report: Report, selected: list[tuple[str, list[Pair]]]
) -> tuple[dict[str, tuple[str, np.ndarray]], list[str]]:
    """(values already in the cache by key, keys still to predict)."""
    values: dict[str, tuple[str, np.ndarray]] = {}
    todo = []
    for key, pairs in selected:
        hit = cache.get(report.sha256[key], pair_points(pairs)) if cache else None
        if hit is not None:
            values[key] = hit
        else:
            todo.append(key)
    return values, todo


def predict_values(
    predictor: Predictor,
    bench: Benchmark,
    report: Report,
    pairs_of: dict[str, list[Pair]],
    todo: list[str],
    values: dict[str, tuple[str, np.ndarray]],
    cache: ValueCache | None,
    *,
    workers: int,
    progress: bool,
) -> tuple[dict[str, float], list[float]]:
    """Predict the `todo` images, sample at their points into `values` (and the cache, one
    entry per image as it is done: that is what makes a killed run resumable). Returns the
    seconds spent and the forward time of each image."""
    from tqdm import tqdm

    t_forward = t_sample = 0.0
    forward_seconds: list[float] = []
    compiled = predictor.compile_seconds
    total = len(pairs_of)
    bar = tqdm(total=total, initial=total - len(todo), unit="img", disable=not progress, desc=predictor.id)
    with bar:
        for key, prediction, seconds in run_predictions(predictor, bench, todo, workers):
            # The first image of each input size compiles the network (--compile): counted apart.
            now_compiled = predictor.compile_seconds
            seconds, compiled = seconds - (now_compiled - compiled), now_compiled
            t_forward += seconds
            forward_seconds.append(seconds)
            t1 = time.perf_counter()
            pts = pair_points(pairs_of[key])
            sampled = sample_bilinear(prediction.values, pts, report.sizes[key], prediction.align_corners)
            values[key] = (prediction.kind, sampled)
            if cache:
                cache.put(report.sha256[key], prediction.kind, pts, sampled)
            t_sample += time.perf_counter() - t1
            bar.update(1)
    return {"forward_s": t_forward, "sample_s": t_sample, "compile_s": compiled}, forward_seconds


def score_rows(
    selected: list[tuple[str, list[Pair]]], values: dict[str, tuple[str, np.ndarray]]
) -> tuple[list[PairRow], set[str]]:
    """One row per scored pair in file order, and the output kinds seen."""
    rows, kinds = [], set()
    for key, pairs in selected:
        kind, raw = values[key]
        kinds.add(kind)
        disp = to_disparity(raw, kind)
        closer, other = disp[: len(pairs)], disp[len(pairs) :]
        for pair, vc, vo, ok in zip(pairs, closer.tolist(), other.tolist(), pair_correct(closer, other).tolist()):
            rows.append(PairRow(key, pair.index, pair.scenario, vc, vo, ok))
    return rows, kinds


def build_result(
    bench: Benchmark,
    predictor: Predictor,
    report: Report,
    rows: list[PairRow],
    kinds: set[str],
    selection: dict,
    pairs_file: str,
    wall_time_s: float,
    *,
    name: str | None = None,
    forward_seconds: list[float] = (),
) -> dict:
    """The result file's content (schema `da2k.result/1`). New fields go here; a field that
    differs between two runs of the same measurement also goes into `results.VOLATILE_FIELDS`."""
    scores = score_by_scenario([r.scenario for r in rows], np.array([r.correct for r in rows], dtype=bool))
    model = predictor.describe()
    if name:
        model["name"] = name  # the user's name for the run is the row's name on a leaderboard
    if len(kinds) == 1:
        model["kind"] = next(iter(kinds))
    benchmark = {
        "name": bench.name,
        "annotations_sha256": bench.annotations_sha256,
        "n_pairs": bench.n_pairs,
        "n_images": bench.n_images,
        "n_pairs_scored": len(rows),
        "n_images_scored": len({r.image for r in rows}),
    }
    if bench.revision:
        benchmark["revision"] = bench.revision
    return {
        "schema": SCHEMA,
        "provenance": "measured",
        "model": model,
        "benchmark": benchmark,
        "selection": selection,
        "complete": len(rows) == bench.n_pairs,
        "summary": summary_line(bench, report, rows, selection),
        "skipped_invalid": {
            "pairs": report.skipped_pairs(bench.annotations),
            "images": len(report.image_errors),
            "by_reason": dict(Counter(report.image_errors.values())),
            "problems": [str(p) for p in report.errors],
        },
        "warnings": [str(p) for p in report.warnings],
        "scenarios": {s: scores[s].to_dict() for s in order_scenarios(scores, SCENARIOS)},
        "overall": overall(scores),
        "pairs_file": pairs_file,
        "toolkit_version": __version__,
        "hardware": hardware(predictor),
        **latency_record(predictor, forward_seconds),
        "wall_time_s": round(wall_time_s, 3),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def evaluate(
    bench: Benchmark,
    predictor: Predictor,
    out_dir: str | Path,
    *,
    scenarios: Sequence[str] | None = None,
    limit: int | None = None,
    strict: bool = False,
    overwrite: bool = False,
    skip_invalid: bool = True,
    allowed_scenarios: Iterable[str] = (),
    cache_dir: str | Path | None = None,
    name: str | None = None,
    workers: int = 2,
    progress: bool = True,
    report: Report | None = None,
) -> Outcome:
    """Score `predictor` on `bench` as published (every scorable pair, in file order; see
    docs/design.md); write `<out_dir>/<name>.json` and `<name>.pairs.csv`. `strict`: refuse any
    problem. An existing result with other content is kept unless `overwrite`. `skip_invalid`
    is accepted for compatibility and changes nothing (skipping what cannot be scored is the
    policy)."""
    del skip_invalid
    started = time.perf_counter()
    out_dir = Path(out_dir)
    cache_root = check_locations(out_dir, cache_dir, limit)
    t0 = time.perf_counter()
    if report is None:
        report = validate(bench, allowed_scenarios)
    selected = plan(bench, report, scenarios, limit, strict)
    t_validate = time.perf_counter() - t0
    run = name or run_name(predictor, bench, scenarios, limit)
    result_path, csv_path = out_dir / f"{run}.json", out_dir / f"{run}.pairs.csv"
    selection = {"scenarios": list(scenarios) if scenarios else None, "limit": limit}
    if not overwrite:
        planned = {"model": predictor.describe(), "benchmark": {"annotations_sha256": bench.annotations_sha256}}
        refuse_replacing(result_path, {**planned, "selection": selection}, identity_only=True)

    cache = ValueCache(cache_root, predictor) if predictor.cacheable else None
    values, todo = cached_values(cache, report, selected)
    seconds, forward_seconds = predict_values(
        predictor, bench, report, dict(selected), todo, values, cache, workers=workers, progress=progress
    )
    rows, kinds = score_rows(selected, values)
    wall = time.perf_counter() - started
    result = build_result(
        bench,
        predictor,
        report,
        rows,
        kinds,
        selection,
        csv_path.name,
        wall,
        name=name,
        forward_seconds=forward_seconds,
    )
    if not overwrite:
        refuse_replacing(result_path, result)
    write_pairs_csv(csv_path, rows)
    write_result(result_path, result)
    timings = {"validate_s": t_validate, **seconds, "images": len(todo)}
    return Outcome(result, result_path, csv_path, rows, report, len(todo), len(selected) - len(todo), timings)
