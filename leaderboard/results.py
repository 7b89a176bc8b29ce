"""Read and validate `da2k.result/1` files into `Entry` rows for the leaderboard.

The file contract is DESIGN.md's: accuracies are fractions in [0, 1], `provenance` is
"measured" (our run) or "reported" (a paper's number, with a `citation`), unknown fields are
ignored. Anything else is a `Da2kError` whose one line names the file.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from da2k.errors import Da2kError
from da2k.results import SCHEMA
from da2k.scoring import wilson_ci

log = logging.getLogger(__name__)

SCENARIO_LABELS = {
    "indoor": "Indoor",
    "outdoor": "Outdoor",
    "non_real": "Non-real",
    "transparent_reflective": "Transparent/Reflective",
    "adverse_style": "Adverse style",
    "aerial": "Aerial",
    "underwater": "Underwater",
    "object": "Object",
}


@dataclass(frozen=True)
class Score:
    """One accuracy (a fraction) with its pair counts and 95 % CI when known.

    `ci_approx` marks an interval derived from an assumed pair count (reported numbers
    without counts), which the site labels as such.
    """

    accuracy: float
    n: int | None = None
    correct: int | None = None
    ci95: tuple[float, float] | None = None
    ci_approx: bool = False


@dataclass(frozen=True)
class Entry:
    """One leaderboard row: one (model, benchmark) result, measured or reported."""

    provenance: str
    model_id: str | None
    name: str
    group: str
    benchmark: str
    overall: Score
    scenario_mean: float | None
    scenarios: dict[str, Score]
    citation: str | None = None
    details: dict[str, str] = field(default_factory=dict)
    source: Path | None = None
    pairs_path: Path | None = None
    n_params: float | None = None
    latency_ms: float | None = None
    latency_note: str | None = None
    notes: tuple[str, ...] = ()  # caveats shown with the row, e.g. a run over part of the benchmark

    @property
    def sort_key(self) -> tuple:
        return (self.benchmark, self.group, self.provenance != "measured", self.name, str(self.source))


def scenario_label(key: str) -> str:
    """Display name of a scenario key (DA-2K's eight, or a custom benchmark's folder name)."""
    return SCENARIO_LABELS.get(key, key.replace("_", " ").capitalize())


def approx_ci(accuracy: float, n: int) -> tuple[float, float]:
    """Wilson 95 % interval for an accuracy measured on an assumed number of pairs."""
    lo, hi = wilson_ci(int(round(accuracy * n)), n)
    return float(lo), float(hi)


class _Checker:
    """Field access that turns a schema violation into a one-line error naming the file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, what: str) -> Da2kError:
        return Da2kError(f"{self.path}: {what}; expected a '{SCHEMA}' result file (see DESIGN.md)")

    def obj(self, data: Any, where: str) -> dict:
        if not isinstance(data, dict):
            raise self.fail(f"'{where}' must be an object")
        return data

    def text(self, data: dict, key: str, where: str, required: bool = True) -> str | None:
        value = data.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"'{where}.{key}' must be a non-empty string")
        return value

    def number(self, data: dict, key: str, where: str, required: bool = True) -> float | None:
        value = data.get(key)
        if value is None and not required:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.fail(f"'{where}.{key}' must be a number")
        return float(value)

    def count(self, data: dict, key: str, where: str) -> int | None:
        value = data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.fail(f"'{where}.{key}' must be a non-negative integer")
        return value

    def score(self, data: Any, where: str) -> Score:
        data = self.obj(data, where)
        acc = self.number(data, "accuracy", where)
        if not 0.0 <= acc <= 1.0:
            raise self.fail(f"'{where}.accuracy' is {acc}, not a fraction in [0, 1]")
        n, correct = self.count(data, "n", where), self.count(data, "correct", where)
        if n is not None and correct is not None:
            if correct > n:
                raise self.fail(f"'{where}' has correct={correct} > n={n}")
            if n and abs(correct / n - acc) > 1e-6:
                raise self.fail(f"'{where}.accuracy' {acc} disagrees with correct/n = {correct}/{n}")
        ci = data.get("ci95")
        if ci is not None:
            ok = (
                isinstance(ci, list)
                and len(ci) == 2
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in ci)
                and 0.0 <= ci[0] <= acc + 1e-9
                and acc - 1e-9 <= ci[1] <= 1.0
            )
            if not ok:
                raise self.fail(f"'{where}.ci95' must be [lo, hi] fractions around the accuracy")
            ci = (float(ci[0]), float(ci[1]))
        return Score(accuracy=acc, n=n, correct=correct, ci95=ci)


def _complete_ci(score: Score, n_pairs: int | None = None) -> Score:
    """Fill a missing interval: exact Wilson from the counts, else approximate at `n_pairs`."""
    if score.ci95 is not None:
        return score
    if score.n and score.correct is not None:
        lo, hi = wilson_ci(score.correct, score.n)
        return Score(score.accuracy, score.n, score.correct, (float(lo), float(hi)))
    if n_pairs:
        return Score(score.accuracy, score.n, score.correct, approx_ci(score.accuracy, n_pairs), ci_approx=True)
    return score


def _coverage_notes(data: dict, overall: Score, n_pairs: int | None) -> tuple[str, ...]:
    """Say when a row does not cover its whole benchmark (a subset run, skipped pairs).

    Reads `da2k evaluate`'s optional `selection` / `skipped_invalid` fields when well-formed."""
    notes = []
    if overall.n is not None and n_pairs and overall.n < n_pairs:
        notes.append(f"scored {overall.n} of {n_pairs} pairs")
    selection = data.get("selection")
    if isinstance(selection, dict):
        if isinstance(selection.get("scenarios"), list) and selection["scenarios"]:
            notes.append("scenarios: " + ", ".join(str(s) for s in selection["scenarios"]))
        if isinstance(selection.get("limit"), int) and not isinstance(selection["limit"], bool):
            notes.append(f"first {selection['limit']} images only")
    skipped = data.get("skipped_invalid")
    if isinstance(skipped, dict) and isinstance(skipped.get("pairs"), int) and skipped["pairs"] > 0:
        notes.append(f"{skipped['pairs']} invalid pairs skipped")
    return tuple(notes)


def load_result(path: str | Path) -> Entry:
    """Parse and validate one result JSON file (and check its pairs file exists)."""
    from da2k.leaderboard.paper import display_name, group_of

    path = Path(path)
    check = _Checker(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise Da2kError(f"{path}: cannot read result file ({exc.__class__.__name__}: {exc})") from None
    except json.JSONDecodeError as exc:
        raise Da2kError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    data = check.obj(data, "<top level>")
    if data.get("schema") != SCHEMA:
        raise check.fail(f"schema is {data.get('schema')!r}")
    provenance = data.get("provenance")
    if provenance not in ("measured", "reported"):
        raise check.fail(f"provenance is {provenance!r}, not 'measured' or 'reported'")
    model = check.obj(data.get("model"), "model")
    model_id = check.text(model, "id", "model")
    bench = check.obj(data.get("benchmark"), "benchmark")
    bench_name = check.text(bench, "name", "benchmark")
    n_pairs = check.count(bench, "n_pairs", "benchmark")
    overall_raw = check.obj(data.get("overall"), "overall")
    overall = check.score(overall_raw, "overall")
    scen_raw = check.obj(data.get("scenarios", {}), "scenarios")
    scenarios = {key: _complete_ci(check.score(scen_raw[key], f"scenarios.{key}")) for key in sorted(scen_raw)}
    citation = check.text(data, "citation", "<top level>", required=provenance == "reported")
    if provenance == "measured" and (overall.n is None or overall.correct is None):
        raise check.fail("a measured result needs 'overall.n' and 'overall.correct'")
    scenario_mean = check.number(overall_raw, "scenario_mean", "overall", required=False)
    if scenario_mean is None and scenarios:
        scenario_mean = sum(s.accuracy for s in scenarios.values()) / len(scenarios)

    pairs_path = None
    if data.get("pairs_file") is not None:
        name = check.text(data, "pairs_file", "<top level>")
        pairs_path = path.parent / name
        if not pairs_path.is_file():
            raise Da2kError(
                f"{path}: its pairs file {pairs_path} is missing; copy it next to the JSON or remove 'pairs_file'"
            )

    details = {}
    for key in ("toolkit_version", "hardware", "date", "wall_time_s"):
        if data.get(key) is not None:
            details[key] = str(data[key])
    for key in ("predictor", "kind", "checkpoint_sha256", "input_size"):
        if model.get(key) is not None:
            details[key] = str(model[key])
    if model.get("settings"):
        details["settings"] = json.dumps(model["settings"], sort_keys=True, separators=(", ", ": "))
    if bench.get("annotations_sha256"):
        details["annotations_sha256"] = str(bench["annotations_sha256"])

    n_params = check.number(model, "n_params", "model", required=False)
    latency = check.number(data, "latency_ms", "<top level>", required=False)
    return Entry(
        provenance=provenance,
        model_id=model_id,
        name=str(model.get("name") or display_name(model_id)),
        group=group_of(model_id),
        benchmark=bench_name,
        overall=_complete_ci(overall, n_pairs),
        scenario_mean=scenario_mean,
        scenarios=scenarios,
        citation=citation,
        details=details,
        source=path,
        pairs_path=pairs_path,
        n_params=n_params,
        latency_ms=latency,
        latency_note=str(data["hardware"]) if latency is not None and data.get("hardware") else None,
        notes=_coverage_notes(data, overall, n_pairs),
    )


def find_result_files(inputs: list[str | Path]) -> list[Path]:
    """Expand files and directories (their `*.json`, not recursive) into a sorted file list."""
    files: set[Path] = set()
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            files.update(p for p in item.glob("*.json") if p.is_file())
        elif item.is_file():
            files.add(item)
        else:
            raise Da2kError(f"{item}: no such result file or directory")
    return sorted(files)


def add_result(file: str | Path, results_dir: str | Path, *, force: bool = False) -> tuple[Entry, Path]:
    """Validate a result file and copy it (with its pairs file) into `results_dir`.

    Returns the parsed entry and the copied JSON's path. Refuses to overwrite unless `force`.
    """
    entry = load_result(file)
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    copies = [(Path(file), results_dir / Path(file).name)]
    if entry.pairs_path is not None:
        relative = entry.pairs_path.relative_to(Path(file).parent)
        copies.append((entry.pairs_path, results_dir / relative))
    for src, dst in copies:
        if dst.exists() and not force and dst.resolve() != src.resolve():
            raise Da2kError(f"{dst} already exists; pass --force to replace it")
    for src, dst in copies:
        if dst.resolve() != src.resolve():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
    log.info("added %s (%s, %s) to %s", entry.name, entry.provenance, entry.benchmark, results_dir)
    return entry, copies[0][1]
