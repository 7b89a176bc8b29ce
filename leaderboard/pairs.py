"""Per-pair CSV files: columns `image,pair_index,scenario,value_closer,value_other,correct`.

Columns are read by name; extra columns are ignored. The image column may also be called `key`,
as `da2k evaluate` writes it (da2k/results.py)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from da2k.errors import Da2kError

COLUMNS = ["image", "pair_index", "scenario", "value_closer", "value_other", "correct"]

PairKey = tuple[str, int]  # (image key as in annotations.json, index of the pair in its list)


@dataclass(frozen=True)
class PairOutcome:
    scenario: str
    value_closer: float
    value_other: float
    correct: bool


def read_pairs(path: str | Path) -> dict[PairKey, PairOutcome]:
    """Read one model's per-pair outcomes, keyed by (image, pair_index)."""
    path = Path(path)
    out: dict[PairKey, PairOutcome] = {}
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            fields = list(reader.fieldnames or [])
            image_column = "image" if "image" in fields or "key" not in fields else "key"
            missing = [c for c in COLUMNS if c not in fields and not (c == "image" and image_column == "key")]
            if missing:
                raise Da2kError(
                    f"{path}: pairs file lacks column(s) {', '.join(missing)}; expected {','.join(COLUMNS)}"
                )
            for line_no, row in enumerate(reader, start=2):
                try:
                    if row["correct"] not in ("0", "1"):
                        raise ValueError(f"correct={row['correct']!r}")
                    key = (row[image_column], int(row["pair_index"]))
                    outcome = PairOutcome(
                        row["scenario"], float(row["value_closer"]), float(row["value_other"]), row["correct"] == "1"
                    )
                except (TypeError, ValueError) as exc:
                    raise Da2kError(f"{path}:{line_no}: malformed pairs row ({exc})") from None
                if key in out:
                    raise Da2kError(f"{path}:{line_no}: pair {key[0]}#{key[1]} appears twice")
                out[key] = outcome
    except OSError as exc:
        raise Da2kError(f"{path}: cannot read pairs file ({exc})") from None
    except UnicodeDecodeError:
        raise Da2kError(f"{path}: pairs file is not UTF-8 text") from None
    return out
