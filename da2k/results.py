"""Result files, the one reader and writer: `<run>.json` (schema `da2k.result/1`) and the per-pair CSV.

The result file (see `docs/design.md`): accuracies are fractions in [0, 1], `provenance` is
"measured" (our run) or "reported" (a paper's number, with a `citation`, counts optional);
unknown fields are ignored so newer files still load. Every problem is a `Da2kError` whose one
line names the file.

Per-pair CSV columns (one row per scored pair, annotation order):

    image        image key in annotations.json (images/<scenario>/<file>)
    pair_index   index of the pair in that image's list
    scenario     the path component after images/
    value_closer disparity-like value (larger = closer) at the annotated closer point
    value_other  disparity-like value at the other point
    correct      1 if value_closer > value_other (strictly), else 0

Every write is atomic (temporary file in the same folder, then rename).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import astuple, dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from da2k.benchmark import SCENARIOS
from da2k.errors import JSON_ERRORS, Da2kError, json_problem
from da2k.models.files import atomic_write_text
from da2k.scoring import Paired, order_scenarios, paired, wilson_ci

SCHEMA = "da2k.result/1"
PAIR_FIELDS = ("image", "pair_index", "scenario", "value_closer", "value_other", "correct")

PairKey = tuple[str, int]
"""(image key as in annotations.json, index of the pair in that image's list)."""


@dataclass(frozen=True)
class PairRow:
    """One scored pair, as written to the per-pair CSV."""

    image: str
    pair_index: int
    scenario: str
    value_closer: float
    value_other: float
    correct: bool

    @property
    def key(self) -> PairKey:
        return (self.image, self.pair_index)


def write_pairs_csv(path: str | Path, rows: list[PairRow]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(PAIR_FIELDS)
    for row in rows:
        values = list(astuple(row))
        values[-1] = int(row.correct)
        writer.writerow([repr(v) if isinstance(v, float) else v for v in values])
    atomic_write_text(path, buf.getvalue())


def _pair_row(row: dict, path: Path, line: int) -> PairRow:
    try:
        if row["correct"] not in ("0", "1"):
            raise ValueError(f"correct={row['correct']!r}, expected 0 or 1")
        return PairRow(
            image=row["image"],
            pair_index=int(row["pair_index"]),
            scenario=row["scenario"],
            value_closer=float(row["value_closer"]),
            value_other=float(row["value_other"]),
            correct=row["correct"] == "1",
        )
    except (TypeError, ValueError) as exc:
        raise Da2kError(f"{path}:{line}: malformed per-pair row ({exc})") from None


def read_pairs_csv(path: str | Path) -> list[PairRow]:
    """The rows of a per-pair CSV in file order; columns are read by name (extra ones ignored);
    a pair listed twice is an error."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = set(PAIR_FIELDS) - set(reader.fieldnames or ())
            if missing:
                raise Da2kError(
                    f"{path} is not a da2k per-pair file (missing columns: {', '.join(sorted(missing))}; "
                    f"expected {','.join(PAIR_FIELDS)})"
                )
            rows = [_pair_row(r, path, line) for line, r in enumerate(reader, start=2)]
    except FileNotFoundError:
        raise Da2kError(f"per-pair file {path} does not exist") from None
    except UnicodeDecodeError:
        raise Da2kError(f"{path}: per-pair file is not UTF-8 text") from None
    except OSError as exc:
        raise Da2kError(f"{path}: cannot read per-pair file ({exc.strerror or exc})") from None
    seen: set[PairKey] = set()
    for row in rows:
        if row.key in seen:
            raise Da2kError(f"{path}: pair {row.image}#{row.pair_index} appears twice")
        seen.add(row.key)
    return rows


def read_pairs(path: str | Path) -> dict[PairKey, PairRow]:
    """A per-pair CSV keyed by (image, pair_index), in file order."""
    return {row.key: row for row in read_pairs_csv(path)}


def write_result(path: str | Path, result: dict) -> None:
    atomic_write_text(path, json.dumps(result, indent=2) + "\n")


VOLATILE_FIELDS = ("wall_time_s", "date", "hardware", "toolkit_version", "latency_ms", "latency")
"""Fields that differ between two runs of the same thing: ignored when deciding whether a
result file may be rewritten."""


def _plain(value: Any) -> Any:
    """`value` as it reads back from JSON (tuples become lists, ...)."""
    return json.loads(json.dumps(value, default=str))


def identity(result: dict) -> dict:
    """What names a run (docs/design.md, Identity): the model's id, checkpoint sha256, input
    size and settings, the benchmark's annotations_sha256, and the selection of pairs."""
    model = result.get("model") if isinstance(result.get("model"), dict) else {}
    bench = result.get("benchmark") if isinstance(result.get("benchmark"), dict) else {}
    return _plain(
        {
            "model": {k: model.get(k) for k in ("id", "checkpoint_sha256", "input_size", "settings")},
            "annotations_sha256": bench.get("annotations_sha256"),
            "selection": result.get("selection"),
        }
    )


def content(result: dict) -> dict:
    """A result without its volatile fields: equal for two runs that measured the same thing."""
    return _plain({k: v for k, v in result.items() if k not in VOLATILE_FIELDS})


def refuse_replacing(path: str | Path, result: dict, *, identity_only: bool = False) -> None:
    """Raise unless `path` is absent or already holds `result` (its `content`; with
    `identity_only`, its `identity`: the check before a run, when only that is known)."""
    path = Path(path)
    if not path.exists():
        return
    advice = "pass --overwrite to replace it or --run NAME to keep both"
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        raise Da2kError(f"{path} exists and is not a readable result file; {advice}") from None
    if not isinstance(old, dict):
        raise Da2kError(f"{path} exists and is not a result file; {advice}")
    view = identity if identity_only else content
    have, want = view(old), view(result)
    if have != want:
        differ = []
        for k in sorted(set(have) | set(want)):
            a, b = have.get(k), want.get(k)
            if isinstance(a, dict) and isinstance(b, dict):
                differ += [f"{k}.{sub}" for sub in sorted(set(a) | set(b)) if a.get(sub) != b.get(sub)]
            elif a != b:
                differ.append(k)
        raise Da2kError(f"{path} already holds a different result (differs in: {', '.join(differ)}); {advice}")


@dataclass(frozen=True)
class ResultScore:
    """One accuracy (a fraction) with its pair counts and 95 % CI when known.

    `ci_approx` marks an interval derived from an assumed pair count (reported numbers without
    counts)."""

    accuracy: float
    n: int | None = None
    correct: int | None = None
    ci95: tuple[float, float] | None = None
    ci_approx: bool = False

    def with_ci(self, assumed_pairs: int | None = None) -> ResultScore:
        """This score with an interval: exact Wilson from the counts, else approximate at
        `assumed_pairs`, else as it is."""
        if self.ci95 is not None:
            return self
        if self.n and self.correct is not None:
            lo, hi = wilson_ci(self.correct, self.n)
            return ResultScore(self.accuracy, self.n, self.correct, (float(lo), float(hi)))
        if assumed_pairs:
            return ResultScore(self.accuracy, self.n, self.correct, approx_ci(self.accuracy, assumed_pairs), True)
        return self


def approx_ci(accuracy: float, n: int) -> tuple[float, float]:
    """Wilson 95 % interval for an accuracy measured on an assumed number of pairs."""
    lo, hi = wilson_ci(int(round(accuracy * n)), n)
    return float(lo), float(hi)


@dataclass(frozen=True)
class Result:
    """A validated result file: the typed fields every reader needs, and `data`, the JSON as read."""

    path: Path
    data: dict
    provenance: str
    model: dict
    benchmark: dict
    overall: ResultScore
    scenarios: dict[str, ResultScore]
    scenario_mean: float | None
    citation: str | None
    pairs_path: Path | None

    @property
    def annotations_sha256(self) -> str | None:
        return self.benchmark.get("annotations_sha256")


class _Checker:
    """Field access that turns a schema violation into a one-line error naming the file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, what: str) -> Da2kError:
        return Da2kError(f"{self.path}: {what}; expected a '{SCHEMA}' result file")

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

    def number(
        self,
        data: dict,
        key: str,
        where: str,
        required: bool = True,
        low: float | None = None,
        high: float | None = None,
    ) -> float | None:
        value = data.get(key)
        if value is None and not required:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.fail(f"'{where}.{key}' must be a number")
        if (low is not None and value < low) or (high is not None and value > high):
            if (low, high) == (0.0, 1.0):
                raise self.fail(f"'{where}.{key}' is {value}, not a fraction in [0, 1]")
            raise self.fail(f"'{where}.{key}' is {value}, it must be at least {low}")
        return float(value)

    def count(self, data: dict, key: str, where: str) -> int | None:
        value = data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.fail(f"'{where}.{key}' must be a non-negative integer")
        return value

    def score(self, data: Any, where: str) -> ResultScore:
        data = self.obj(data, where)
        acc = self.number(data, "accuracy", where, low=0.0, high=1.0)
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
        return ResultScore(accuracy=acc, n=n, correct=correct, ci95=ci)

    def pairs_file(self, data: dict) -> Path | None:
        """The per-pair CSV named by `pairs_file`, which must stay inside the result's folder."""
        name = self.text(data, "pairs_file", "<top level>", required=False)
        if name is None:
            return None
        rel = PurePosixPath(name.replace("\\", "/"))
        inside = "must be a path inside the result's folder (no '..', not absolute)"
        if rel.is_absolute() or ".." in rel.parts or (rel.parts and ":" in rel.parts[0]):
            raise self.fail(f"'pairs_file' {name!r} {inside}")
        pairs = self.path.parent / Path(*rel.parts)
        if pairs.exists() and not pairs.resolve().is_relative_to(self.path.parent.resolve()):
            raise self.fail(f"'pairs_file' {name!r} is a link that leaves the result's folder; it {inside}")
        return pairs

    def counts_agree(self, overall: ResultScore, scenarios: dict[str, ResultScore], n_pairs: int | None) -> None:
        """A measured result's pair counts: scored <= in the file, scenarios summing to overall."""
        if n_pairs is not None and overall.n is not None and overall.n > n_pairs:
            raise self.fail(f"'overall.n' is {overall.n}, more than the benchmark's n_pairs {n_pairs}")
        counted = [s for s in scenarios.values() if s.n is not None and s.correct is not None]
        if counted and len(counted) == len(scenarios) and overall.n is not None:
            n, correct = sum(s.n for s in counted), sum(s.correct for s in counted)
            if (n, correct) != (overall.n, overall.correct):
                raise self.fail(
                    f"scenarios add up to {correct} of {n} pairs, 'overall' says {overall.correct} of {overall.n}"
                )

    def optional_fields(self, data: dict, model: dict, bench: dict) -> None:
        """Types of the optional fields readers rely on (where present)."""
        for key in ("name", "checkpoint_source", "checkpoint_sha256"):
            self.text(model, key, "model", required=False)
        sha = self.text(bench, "annotations_sha256", "benchmark", required=False)
        if sha is not None and not re.fullmatch(r"[0-9a-f]{64}", sha):
            raise self.fail("'benchmark.annotations_sha256' must be 64 lowercase hex digits")
        for key in ("date", "hardware"):
            self.text(data, key, "<top level>", required=False)
        if "complete" in data and not isinstance(data["complete"], bool):
            raise self.fail("'complete' must be true or false")
        if data.get("latency") is not None:
            latency = self.obj(data["latency"], "latency")
            for key in ("hardware", "precision"):
                self.text(latency, key, "latency", required=False)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise Da2kError(f"result file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise Da2kError(f"{path}: cannot read result file ({exc.__class__.__name__}: {exc})") from None
    except JSON_ERRORS as exc:
        raise Da2kError(f"{path}: {json_problem(exc)}") from None


def read_result(path: str | Path, *, need_pairs_file: bool = True) -> Result:
    """Parse and validate one result file (and, with `need_pairs_file`, check that the per-pair
    CSV it names exists)."""
    path = Path(path)
    check = _Checker(path)
    data = check.obj(_read_json(path), "<top level>")
    if data.get("schema") != SCHEMA:
        raise check.fail(f"schema is {data.get('schema')!r}")
    provenance = data.get("provenance")
    if provenance not in ("measured", "reported"):
        raise check.fail(f"provenance is {provenance!r}, not 'measured' or 'reported'")
    model = check.obj(data.get("model"), "model")
    check.text(model, "id", "model")
    check.number(model, "n_params", "model", required=False, low=0)
    check.number(data, "latency_ms", "<top level>", required=False, low=0)
    bench = check.obj(data.get("benchmark"), "benchmark")
    check.text(bench, "name", "benchmark")
    check.count(bench, "n_pairs", "benchmark")
    overall_raw = check.obj(data.get("overall"), "overall")
    overall = check.score(overall_raw, "overall")
    scen_raw = check.obj(data.get("scenarios", {}), "scenarios")
    scenarios = {key: check.score(scen_raw[key], f"scenarios.{key}").with_ci() for key in sorted(scen_raw)}
    citation = check.text(data, "citation", "<top level>", required=provenance == "reported")
    if provenance == "measured" and (overall.n is None or overall.correct is None):
        raise check.fail("a measured result needs 'overall.n' and 'overall.correct'")
    if provenance == "measured":
        check.counts_agree(overall, scenarios, bench.get("n_pairs"))
    check.optional_fields(data, model, bench)
    scenario_mean = check.number(overall_raw, "scenario_mean", "overall", required=False, low=0.0, high=1.0)
    if scenario_mean is None and scenarios:
        scenario_mean = sum(s.accuracy for s in scenarios.values()) / len(scenarios)
    pairs = check.pairs_file(data)
    if need_pairs_file and pairs is not None and not pairs.is_file():
        raise Da2kError(f"{path}: its pairs file {pairs} is missing; copy it next to the JSON or remove 'pairs_file'")
    return Result(
        path=path,
        data=data,
        provenance=provenance,
        model=model,
        benchmark=bench,
        overall=overall.with_ci(bench.get("n_pairs")),
        scenarios=scenarios,
        scenario_mean=scenario_mean,
        citation=citation,
        pairs_path=pairs,
    )


def load_result(path: str | Path) -> dict:
    """A validated result file, as the JSON dict it holds."""
    return read_result(path, need_pairs_file=False).data


@dataclass(frozen=True)
class Comparison:
    """Two runs paired on their common pairs (image key, pair index), per scenario and overall."""

    a: dict
    b: dict
    scenarios: dict[str, Paired]
    overall: Paired
    only_a: int  # pairs scored by A alone
    only_b: int


def pair_up(rows_a: dict[PairKey, PairRow], rows_b: dict[PairKey, PairRow]) -> tuple[Paired, int]:
    """Paired outcome of two runs on their common pairs (matched on image and pair index), and
    how many pairs they share."""
    common = [k for k in rows_a if k in rows_b]
    outcome = paired(np.array([rows_a[k].correct for k in common]), np.array([rows_b[k].correct for k in common]))
    return outcome, len(common)


def compare(path_a: str | Path, path_b: str | Path, *, force: bool = False) -> Comparison:
    """Read two result files and their per-pair CSVs; pair outcomes on the common pairs.

    Results on different annotation files (`annotations_sha256`) are refused unless `force`:
    the same (image, pair index) may then be a different pair."""
    a, b = read_result(path_a), read_result(path_b)
    if a.annotations_sha256 != b.annotations_sha256 and not force:
        raise Da2kError(
            f"{path_a} and {path_b} were scored on different annotation files (annotations_sha256 "
            f"{str(a.annotations_sha256)[:12]} vs {str(b.annotations_sha256)[:12]}); pass --force to compare anyway"
        )
    for r in (a, b):
        if r.pairs_path is None:
            raise Da2kError(f"{r.path} names no per-pair file (a reported result cannot be compared pair by pair)")
    rows_a, rows_b = read_pairs(a.pairs_path), read_pairs(b.pairs_path)
    total, n_common = pair_up(rows_a, rows_b)
    if not n_common:
        raise Da2kError(f"{path_a} and {path_b} share no pairs (different benchmarks?)")
    by_scenario: dict[str, list[PairKey]] = {}
    for k in rows_a:
        if k in rows_b:
            by_scenario.setdefault(rows_a[k].scenario, []).append(k)
    scenarios = {
        s: pair_up({k: rows_a[k] for k in by_scenario[s]}, rows_b)[0] for s in order_scenarios(by_scenario, SCENARIOS)
    }
    return Comparison(
        a=a.data,
        b=b.data,
        scenarios=scenarios,
        overall=total,
        only_a=len(rows_a) - n_common,
        only_b=len(rows_b) - n_common,
    )
