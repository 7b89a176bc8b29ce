"""Result files: `results/<run>.json` (schema `da2k.result/1`, DESIGN.md) and the per-pair CSV.

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
import os
import tempfile
from dataclasses import astuple, dataclass
from pathlib import Path

import numpy as np

from da2k.benchmark import SCENARIOS
from da2k.errors import Da2kError
from da2k.scoring import Paired, order_scenarios, paired

SCHEMA = "da2k.result/1"
PAIR_FIELDS = ("image", "pair_index", "scenario", "value_closer", "value_other", "correct")


@dataclass(frozen=True)
class PairRow:
    """One scored pair, as written to the per-pair CSV."""

    image: str
    pair_index: int
    scenario: str
    value_closer: float
    value_other: float
    correct: bool


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` to `path` so readers see the old file or the new one, never a partial one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_pairs_csv(path: str | Path, rows: list[PairRow]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(PAIR_FIELDS)
    for row in rows:
        values = list(astuple(row))
        values[-1] = int(row.correct)
        writer.writerow([repr(v) if isinstance(v, float) else v for v in values])
    atomic_write_text(path, buf.getvalue())


def read_pairs_csv(path: str | Path) -> list[PairRow]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = set(PAIR_FIELDS) - set(reader.fieldnames or ())
            if missing:
                raise Da2kError(f"{path} is not a da2k per-pair file (missing columns: {', '.join(sorted(missing))})")
            return [
                PairRow(
                    image=r["image"],
                    pair_index=int(r["pair_index"]),
                    scenario=r["scenario"],
                    value_closer=float(r["value_closer"]),
                    value_other=float(r["value_other"]),
                    correct=r["correct"] == "1",
                )
                for r in reader
            ]
    except FileNotFoundError:
        raise Da2kError(f"per-pair file {path} does not exist") from None
    except ValueError as exc:
        raise Da2kError(f"{path}: malformed per-pair row ({exc})") from None


def write_result(path: str | Path, result: dict) -> None:
    atomic_write_text(path, json.dumps(result, indent=2) + "\n")


def load_result(path: str | Path) -> dict:
    """A result file; a one-line error if it is missing or not a da2k result."""
    path = Path(path)
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise Da2kError(f"result file {path} does not exist") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Da2kError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(result, dict) or result.get("schema") != SCHEMA:
        raise Da2kError(f"{path} is not a da2k result file (schema {SCHEMA})")
    return result


def pairs_path(result_path: str | Path, result: dict) -> Path:
    """The per-pair CSV a result refers to (`pairs_file` is relative to the JSON's folder)."""
    name = result.get("pairs_file")
    if not name:
        raise Da2kError(f"{result_path} names no per-pair file (a reported result cannot be compared pair by pair)")
    return Path(result_path).parent / name


@dataclass(frozen=True)
class Comparison:
    """Two runs paired on their common pairs (image key, pair index), per scenario and overall."""

    a: dict
    b: dict
    scenarios: dict[str, Paired]
    overall: Paired
    only_a: int  # pairs scored by A alone
    only_b: int


def compare(path_a: str | Path, path_b: str | Path) -> Comparison:
    """Read two result files and their per-pair CSVs; pair outcomes on the common pairs."""
    a, b = load_result(path_a), load_result(path_b)
    rows_a = {(r.image, r.pair_index): r for r in read_pairs_csv(pairs_path(path_a, a))}
    rows_b = {(r.image, r.pair_index): r for r in read_pairs_csv(pairs_path(path_b, b))}
    common = [k for k in rows_a if k in rows_b]
    if not common:
        raise Da2kError(f"{path_a} and {path_b} share no pairs (different benchmarks?)")
    by_scenario: dict[str, list] = {}
    for k in common:
        by_scenario.setdefault(rows_a[k].scenario, []).append(k)

    def outcome(keys: list) -> Paired:
        return paired(np.array([rows_a[k].correct for k in keys]), np.array([rows_b[k].correct for k in keys]))

    return Comparison(
        a=a,
        b=b,
        scenarios={s: outcome(by_scenario[s]) for s in order_scenarios(by_scenario, SCENARIOS)},
        overall=outcome(common),
        only_a=len(rows_a) - len(common),
        only_b=len(rows_b) - len(common),
    )
