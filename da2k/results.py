"""Result files: `results/<run>.json` (schema `da2k.result/1`, DESIGN.md) and the per-pair CSV.

Per-pair CSV columns (one row per scored pair, annotation order):

    key          image key in annotations.json (images/<scenario>/<file>)
    pair_index   index of the pair in that image's list
    scenario     the path component after images/
    closer_point "point1" or "point2", as annotated
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

from da2k.errors import Da2kError

SCHEMA = "da2k.result/1"
PAIR_FIELDS = ("key", "pair_index", "scenario", "closer_point", "value_closer", "value_other", "correct")


@dataclass(frozen=True)
class PairRow:
    """One scored pair, as written to the per-pair CSV."""

    key: str
    pair_index: int
    scenario: str
    closer_point: str
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
                    key=r["key"],
                    pair_index=int(r["pair_index"]),
                    scenario=r["scenario"],
                    closer_point=r["closer_point"],
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
