"""Reported rows from the Depth Anything V2 paper (Tables 3 and 14), shipped as package data.

`da2k/data/da2k_paper_tables.json` is a verbatim copy of the team's transcription, citation
included. Paper numbers are percentages; rows hold fractions. The paper gives no pair counts,
so each reported overall accuracy gets an *approximate* Wilson interval at the paper's
"2K pairs" (Section 6.2), flagged as approximate on the site.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from da2k.errors import Da2kError
from da2k.leaderboard.names import PAPER_MODEL_IDS
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

# Figure 1 of the paper (V100 latency, parameters), from the JSON's `fig1_latency_params` note.
FIG1_PARAMS_LATENCY = {
    "Marigold": (948e6, 5200.0, "V100, Marigold (LCM), paper Figure 1"),
    "DepthFM": (891e6, 2100.0, "V100, paper Figure 1"),
    "Depth Anything V2 ViT-S": (25e6, 60.0, "V100, paper Figure 1"),
    "Depth Anything V2 ViT-L": (335e6, 213.0, "V100, paper Figure 1"),
}

_DATA_FILE = "da2k_paper_tables.json"


def packaged_tables_path() -> Path:
    return Path(str(resources.files("da2k").joinpath("data", _DATA_FILE)))


def _percent(value: object, path: Path, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
        raise Da2kError(f"{path}: {where} must be a percentage in [0, 100], got {value!r}")
    return float(value) / 100.0


def load_paper_tables(path: str | Path | None = None) -> list[Entry]:
    """Reported entries from a `da2k_paper_tables.json`-like file (default: the packaged copy).

    One entry per Table 3 model; the Table 14 per-scenario numbers are attached to the
    models that have them. Table 14's synthetic-only ablation rows are not leaderboard models
    and are left out.
    """
    path = Path(path) if path is not None else packaged_tables_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise Da2kError(f"{path}: cannot read reported tables ({exc})") from None
    except json.JSONDecodeError as exc:
        raise Da2kError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(data, dict) or not isinstance(data.get("table3"), dict) or not data.get("source"):
        raise Da2kError(
            f"{path}: expected a reported-tables file with 'source' and 'table3' (like da2k_paper_tables.json)"
        )
    citation = str(data["source"])
    table14 = data.get("table14") or {}
    if not isinstance(table14, dict):
        raise Da2kError(f"{path}: 'table14' must be an object of model -> scenario percentages")

    entries = []
    for name in sorted(data["table3"]):
        overall = _percent(data["table3"][name], path, f"table3[{name!r}]")
        scenarios: dict[str, Score] = {}
        row = table14.get(name)
        if isinstance(row, dict):
            for paper_key, key in PAPER_SCENARIOS.items():
                if paper_key in row:
                    scenarios[key] = Score(_percent(row[paper_key], path, f"table14[{name!r}][{paper_key!r}]"))
        model_id = PAPER_MODEL_IDS.get(name)
        params, latency, note = FIG1_PARAMS_LATENCY.get(name, (None, None, None))
        entries.append(
            Entry(
                provenance="reported",
                model_id=model_id,
                name=name,
                group=model_id or f"paper:{name}",
                benchmark="DA-2K",
                overall=Score(overall, ci95=approx_ci(overall, NOMINAL_PAIRS), ci_approx=True),
                scenario_mean=(
                    sum(s.accuracy for s in scenarios.values()) / len(scenarios)
                    if len(scenarios) == len(PAPER_SCENARIOS)
                    else None
                ),
                scenarios=scenarios,
                citation=citation,
                details={"table": "Table 3" + (" and Table 14" if scenarios else "")},
                n_params=params,
                latency_ms=latency,
                latency_note=note,
            )
        )
    return entries
