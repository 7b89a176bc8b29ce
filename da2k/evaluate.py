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
from da2k.results import SCHEMA, PairRow, write_pairs_csv, write_result
from da2k.scoring import order_scenarios, overall, pair_correct, sample_bilinear, score_by_scenario, to_disparity

CACHE_ENV = "DA2K_CACHE_DIR"


def default_cache_dir() -> Path:
    """`$DA2K_CACHE_DIR`, else `$XDG_CACHE_HOME/da2k`, else `~/.cache/da2k`."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "da2k"


class InvalidBenchmark(Da2kError):
    """The benchmark has problems and `skip_invalid` was not asked for; `report` lists them."""

    def __init__(self, bench: Benchmark, report: Report) -> None:
        self.report = report
        super().__init__(
            f"{bench.name} has {len(report.problems)} problem(s), the first: {report.problems[0]}; refusing to "
            "score it: fix them (da2k validate lists them all) or pass --skip-invalid to score the valid pairs"
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
    """`<model>-<benchmark>`, plus what makes a run partial, safe as a file name."""
    model = predictor.id.split(":", 1)[1] if predictor.id.startswith("precomputed:") else predictor.id
    parts = [model, bench.name]
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
    return {
        "latency_ms": round(1000 * float(np.median(forward_seconds)), 3),
        "latency": {
            "statistic": "median over images predicted in this run",
            "images": len(forward_seconds),
            "hardware": where,
            "precision": precision,
            "input_size": predictor.input_size,
        },
    }


def select_images(
    bench: Benchmark, report: Report, scenarios: Sequence[str] | None, limit: int | None
) -> list[tuple[str, list[Pair]]]:
    """Valid images (with their valid pairs) in annotation order, filtered and limited."""
    keys = [k for k in bench.keys() if report.is_valid(k)]
    if scenarios:
        present = {scenario_of(k) for k in keys}
        unknown = [s for s in scenarios if s not in present]
        if unknown:
            raise Da2kError(
                f"--scenarios: {', '.join(unknown)} not in {bench.name} "
                f"(it has: {', '.join(order_scenarios(present, SCENARIOS))})"
            )
        keys = [k for k in keys if scenario_of(k) in scenarios]
    selected = []
    for key in keys:
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


def evaluate(
    bench: Benchmark,
    predictor: Predictor,
    out_dir: str | Path,
    *,
    scenarios: Sequence[str] | None = None,
    limit: int | None = None,
    skip_invalid: bool = False,
    allowed_scenarios: Iterable[str] = (),
    cache_dir: str | Path | None = None,
    name: str | None = None,
    workers: int = 2,
    progress: bool = True,
    report: Report | None = None,
) -> Outcome:
    """Score `predictor` on `bench`; write `<out_dir>/<name>.json` and `<name>.pairs.csv`."""
    from tqdm import tqdm

    started = time.perf_counter()
    out_dir = Path(out_dir)
    cache_root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if cache_root.resolve().is_relative_to(out_dir.resolve()):
        raise Da2kError(f"--cache-dir {cache_root} lies inside --out {out_dir}; keep the cache elsewhere")
    if limit is not None and limit < 1:
        raise Da2kError("--limit must be at least 1")

    t0 = time.perf_counter()
    if report is None:
        report = validate(bench, allowed_scenarios)
    if not report.ok and not skip_invalid:
        raise InvalidBenchmark(bench, report)
    t_validate = time.perf_counter() - t0
    selected = select_images(bench, report, scenarios, limit)
    if not selected:
        raise Da2kError(f"nothing to score: no valid pairs selected in {bench.name}")

    cache = ValueCache(cache_root, predictor) if predictor.cacheable else None
    values: dict[str, tuple[str, np.ndarray]] = {}
    todo = []
    for key, pairs in selected:
        hit = cache.get(report.sha256[key], pair_points(pairs)) if cache else None
        if hit is not None:
            values[key] = hit
        else:
            todo.append(key)
    pairs_of = dict(selected)

    t_forward = t_sample = 0.0
    forward_seconds: list[float] = []
    bar = tqdm(
        total=len(selected), initial=len(selected) - len(todo), unit="img", disable=not progress, desc=predictor.id
    )
    with bar:
        for key, prediction, seconds in run_predictions(predictor, bench, todo, workers):
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

    rows = []
    kinds = set()
    for key, pairs in selected:
        kind, raw = values[key]
        kinds.add(kind)
        disp = to_disparity(raw, kind)
        closer, other = disp[: len(pairs)], disp[len(pairs) :]
        for pair, vc, vo, ok in zip(pairs, closer.tolist(), other.tolist(), pair_correct(closer, other).tolist()):
            rows.append(PairRow(key, pair.index, pair.scenario, vc, vo, ok))
    scores = score_by_scenario([r.scenario for r in rows], np.array([r.correct for r in rows], dtype=bool))

    run = name or run_name(predictor, bench, scenarios, limit)
    result_path, csv_path = out_dir / f"{run}.json", out_dir / f"{run}.pairs.csv"
    model = predictor.describe()
    if name:
        model["name"] = name  # the user's name for the run is the row's name on a leaderboard
    if len(kinds) == 1:
        model["kind"] = kinds.pop()
    skipped_pairs = report.skipped_pairs(bench.annotations)
    result = {
        "schema": SCHEMA,
        "provenance": "measured",
        "model": model,
        "benchmark": {
            "name": bench.name,
            "annotations_sha256": bench.annotations_sha256,
            "n_pairs": bench.n_pairs,
            "n_images": len(bench.annotations),
        },
        "selection": {"scenarios": list(scenarios) if scenarios else None, "limit": limit},
        "skipped_invalid": {
            "pairs": skipped_pairs,
            "images": len(report.bad_images),
            "problems": [str(p) for p in report.problems],
        },
        "scenarios": {s: scores[s].to_dict() for s in order_scenarios(scores, SCENARIOS)},
        "overall": overall(scores),
        "pairs_file": csv_path.name,
        "toolkit_version": __version__,
        "hardware": hardware(predictor),
        **latency_record(predictor, forward_seconds),
        "wall_time_s": round(time.perf_counter() - started, 3),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    write_pairs_csv(csv_path, rows)
    write_result(result_path, result)
    timings = {"validate_s": t_validate, "forward_s": t_forward, "sample_s": t_sample, "images": len(todo)}
    return Outcome(
        result,
        result_path,
        csv_path,
        rows,
        report,
        computed=len(todo),
        cached=len(selected) - len(todo),
        timings=timings,
    )
