"""Every row of the site in one file: `leaderboard.csv` and `leaderboard.json`.

One record per row of every table (ranked rows, partial runs, reported rows), with the table
it sits in (benchmark name and annotation file), its label, where its weights came from, and
every number the page shows. Accuracies are fractions in [0, 1], as in result files. The JSON
adds the reported condition tables.
"""

from __future__ import annotations

import csv
import io
import json

from da2k.benchmark import SCENARIOS
from da2k.leaderboard.paper import ConditionTable
from da2k.leaderboard.render import Board
from da2k.leaderboard.table import TableRow

FIELDS = (
    "table",
    "benchmark",
    "annotations_sha256",
    "label",
    "model_id",
    "weights",
    "official",
    "group",
    "provenance",
    "partial",
    "rank",
    "rank_tied",
    "overall",
    "ci95_low",
    "ci95_high",
    "ci_approximate",
    "n",
    "correct",
    "scenario_mean",
    "n_params",
    "latency_ms",
    "latency_where",
    "date",
    "citation",
    "notes",
)


def _record(board: Board, row: TableRow) -> dict:
    e, ci = row.entry, row.entry.overall.ci95
    record = {
        "table": board.spec.title,
        "benchmark": e.benchmark,
        "annotations_sha256": board.spec.key.sha,
        "label": row.label,
        "model_id": e.model_id,
        "weights": e.weights,
        "official": e.official,
        "group": e.group,
        "provenance": e.provenance,
        "partial": e.partial,
        "rank": row.ranked.rank if row.ranked else None,
        "rank_tied": row.ranked.tied if row.ranked else None,
        "overall": e.overall.accuracy,
        "ci95_low": ci[0] if ci else None,
        "ci95_high": ci[1] if ci else None,
        "ci_approximate": e.overall.ci_approx,
        "n": e.overall.n,
        "correct": e.overall.correct,
        "scenario_mean": e.scenario_mean,
        "n_params": int(e.n_params) if e.n_params is not None else None,
        "latency_ms": e.latency_ms,
        "latency_where": e.latency_note,
        "date": e.date,
        "citation": e.citation,
        "notes": "; ".join(e.notes),
    }
    return record | {"scenarios": {k: s.accuracy for k, s in e.scenarios.items()}}


def _scenario_columns(records: list[dict]) -> list[str]:
    present = set().union(*(r["scenarios"] for r in records)) if records else set()
    return [s for s in SCENARIOS if s in present] + sorted(present - set(SCENARIOS))


def downloads(boards: list[Board], conditions: list[ConditionTable]) -> tuple[str, str]:
    """(CSV text, JSON text) of every row, in page order."""
    records = [_record(b, r) for b in boards for r in b.rows + b.partial]
    scenarios = _scenario_columns(records)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*FIELDS, *scenarios])
    for r in records:
        values = [r[f] for f in FIELDS] + [r["scenarios"].get(s) for s in scenarios]
        writer.writerow(["" if v is None else repr(v) if isinstance(v, float) else v for v in values])
    tables = [
        {
            "benchmark": t.benchmark,
            "citation": t.citation,
            "caveats": list(t.caveats),
            "columns": list(t.columns),
            "rows": [{"model": n, "encoder": enc, "values": list(v)} for n, enc, v in t.rows],
        }
        for t in conditions
    ]
    data = {"rows": records, "reported_condition_tables": tables}
    return buf.getvalue(), json.dumps(data, indent=1, ensure_ascii=False) + "\n"
