"""Reported rows: numbers printed in papers, shipped as package data (`da2k/data/`).

Two file shapes are read, each with a `source` (the citation) and optional `short` (the source
in a few words), `date`, `row_note` (a caveat shown on every row) and `caveats` (listed with the
reference):

- *paper tables* (`da2k_paper_tables.json`, Depth Anything V2's Tables 3 and 14): `table3`
  {model: overall %}, `table14` {model: {scenario column: %}};
- *condition tables* (`depth_anything_ac_da2k.json`, Depth Anything AC's README table):
  `columns` [benchmark, condition...] and `rows` {model: {"encoder": ..., column: fraction}};
  the first column gives the row's overall accuracy on that benchmark, the others become a
  table of their own.

Papers give no pair counts, so each overall accuracy gets an *approximate* Wilson interval at
the paper's "2K pairs" (Section 6.2), flagged as approximate on the site.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from da2k.errors import JSON_ERRORS, Da2kError, json_problem
from da2k.leaderboard.identity import counted_params
from da2k.leaderboard.names import PAPER_MODEL_IDS, official_repo
from da2k.leaderboard.results import Entry, Score
from da2k.results import approx_ci

NOMINAL_PAIRS = 2000  # "we annotate 1K images with 2K pixel pairs in total" (Section 6.2)

# Paper's Table 14 column names -> our scenario keys.
PAPER_SCENARIOS = {
    "Indoor": "indoor",
    "Outdoor": "outdoor",
    "Non-real": "non_real",
    "Transparent/Reflective": "transparent_reflective",
    "Adverse style": "adverse_style",
    "Aerial": "aerial",
    "Underwater": "underwater",
    "Object": "object",
}

# Figure 1 of the V2 paper (parameters, latency), from the JSON's `fig1_latency_params` note.
FIG1_PARAMS_LATENCY = {
    "Marigold": (948e6, 5200.0, "V100 · precision not stated (Figure 1, Marigold LCM)"),
    "DepthFM": (891e6, 2100.0, "V100 · precision not stated (Figure 1)"),
    "Depth Anything V2 ViT-S": (25e6, 60.0, "V100 · precision not stated (Figure 1)"),
    "Depth Anything V2 ViT-L": (335e6, 213.0, "V100 · precision not stated (Figure 1)"),
}

PACKAGED = ("da2k_paper_tables.json", "depth_anything_ac_da2k.json")


@dataclass(frozen=True)
class ConditionTable:
    """A source's extra columns (e.g. DA-2K under dark/fog/snow/blur), shown as their own table."""

    benchmark: str
    citation: str
    source_short: str | None
    caveats: tuple[str, ...]
    columns: tuple[str, ...]
    rows: tuple[tuple[str, str | None, tuple[float | None, ...]], ...]  # (name, encoder, values)


@dataclass(frozen=True)
class Reported:
    """What reported-numbers files add to the site: rows, extra tables, caveats per citation."""

    entries: list[Entry]
    tables: list[ConditionTable]
    caveats: dict[str, tuple[str, ...]]


def packaged_tables_path(name: str = PACKAGED[0]) -> Path:
    return Path(str(resources.files("da2k").joinpath("data", name)))


def _fraction(value: object, path: Path, where: str, scale: float) -> float:
    top = 100 if scale == 100 else 1
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= top:
        raise Da2kError(
            f"{path}: {where} must be a {'percentage in [0, 100]' if top == 100 else 'fraction in [0, 1]'}, got {value!r}"
        )
    return float(value) / scale


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise Da2kError(f"{path}: cannot read reported tables ({exc})") from None
    except JSON_ERRORS as exc:
        raise Da2kError(f"{path}: {json_problem(exc)}") from None
    if not isinstance(data, dict) or not isinstance(data.get("source"), str) or not data["source"].strip():
        raise Da2kError(f"{path}: expected a reported-numbers file with a 'source' (like da2k_paper_tables.json)")
    return data


def _entry(
    name: str,
    overall: float,
    data: dict,
    scenarios: dict[str, Score],
    *,
    details: dict[str, str],
    benchmark: str = "DA-2K",
    weights: str = "",
) -> Entry:
    model_id = PAPER_MODEL_IDS.get(name)
    params, latency, note = FIG1_PARAMS_LATENCY.get(name, (None, None, None)) if "table3" in data else (None,) * 3
    counted = counted_params(model_id) if model_id else None
    row_note = data.get("row_note")
    return Entry(
        provenance="reported",
        model_id=model_id,
        name=name,
        group=model_id or f"paper:{name}",
        benchmark=benchmark,
        overall=Score(overall, ci95=approx_ci(overall, NOMINAL_PAIRS), ci_approx=True),
        scenario_mean=(
            sum(s.accuracy for s in scenarios.values()) / len(scenarios)
            if len(scenarios) == len(PAPER_SCENARIOS)
            else None
        ),
        scenarios=scenarios,
        citation=str(data["source"]),
        n_params=float(counted) if counted else params,
        params_note="counted from the architecture" if counted else ("paper Figure 1" if params else None),
        latency_ms=latency,
        latency_note=note,
        notes=(str(row_note),) if row_note else (),
        official=model_id is not None and official_repo(model_id) is not None,
        card=official_repo(model_id) if model_id else None,
        date=str(data["date"]) if data.get("date") else None,
        source_short=str(data["short"]) if data.get("short") else None,
        details=details,
        weights=weights,
    )


def _paper_tables(data: dict, path: Path) -> list[Entry]:
    """One entry per Table 3 model, with Table 14's per-scenario numbers where it has them
    (its synthetic-only ablation rows are not leaderboard models and are left out)."""
    if not isinstance(data["table3"], dict):
        raise Da2kError(f"{path}: 'table3' must be an object of model -> overall percentage")
    table14 = data.get("table14") or {}
    if not isinstance(table14, dict):
        raise Da2kError(f"{path}: 'table14' must be an object of model -> scenario percentages")
    entries = []
    for name in sorted(data["table3"]):
        overall = _fraction(data["table3"][name], path, f"table3[{name!r}]", 100)
        scenarios: dict[str, Score] = {}
        row = table14.get(name)
        if isinstance(row, dict):
            for paper_key, key in PAPER_SCENARIOS.items():
                if paper_key in row:
                    scenarios[key] = Score(_fraction(row[paper_key], path, f"table14[{name!r}][{paper_key!r}]", 100))
        table = "Table 3" + (" and Table 14" if scenarios else "")
        entries.append(_entry(name, overall, data, scenarios, details={"table": table}))
    return entries


def _condition_tables(data: dict, path: Path) -> tuple[list[Entry], ConditionTable]:
    columns, rows = data["columns"], data["rows"]
    if not isinstance(columns, list) or not columns or not all(isinstance(c, str) for c in columns):
        raise Da2kError(f"{path}: 'columns' must list the benchmark column, then the condition columns")
    if not isinstance(rows, dict) or not all(isinstance(r, dict) for r in rows.values()):
        raise Da2kError(f"{path}: 'rows' must be an object of model -> {{column: fraction}}")
    entries, table_rows = [], []
    for name in sorted(rows):
        row = rows[name]
        encoder = str(row["encoder"]) if row.get("encoder") else None
        values = tuple(
            _fraction(row[c], path, f"rows[{name!r}][{c!r}]", 1) if row.get(c) is not None else None for c in columns
        )
        table_rows.append((name, encoder, values))
        if values[0] is None:
            continue
        full = f"{name} {encoder}" if encoder and f"{name} {encoder}" in PAPER_MODEL_IDS else name
        weights = f"encoder: {encoder}" if encoder and full == name else ""
        details = {"table": f"{columns[0]} column"}
        entries.append(_entry(full, values[0], data, {}, benchmark=columns[0], details=details, weights=weights))
    caveats = tuple(str(c) for c in data.get("caveats") or ())
    table = ConditionTable(
        columns[0], str(data["source"]), data.get("short"), caveats, tuple(columns), tuple(table_rows)
    )
    return entries, table


def load_paper_tables(path: str | Path | None = None) -> list[Entry]:
    """Reported entries of one file (default: the packaged Depth Anything V2 tables)."""
    return load_reported([path] if path is not None else [packaged_tables_path()]).entries


def load_reported(paths: list[str | Path] | None = None) -> Reported:
    """Reported rows, condition tables and caveats from `paths` (default: the packaged files)."""
    files = [Path(p) for p in paths] if paths else [packaged_tables_path(name) for name in PACKAGED]
    entries, tables, caveats = [], [], {}
    for path in files:
        data = _read(path)
        if "table3" in data:
            entries += _paper_tables(data, path)
        elif "columns" in data and "rows" in data:
            rows, table = _condition_tables(data, path)
            entries += rows
            if len(table.columns) > 1:
                tables.append(table)
        else:
            raise Da2kError(f"{path}: expected 'table3' (paper tables) or 'columns' and 'rows' (condition tables)")
        if data.get("caveats"):
            caveats[str(data["source"])] = tuple(str(c) for c in data["caveats"])
    return Reported(entries, tables, caveats)
