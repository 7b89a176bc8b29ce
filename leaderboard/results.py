"""Leaderboard rows: `Entry`, built from result files read and validated by `da2k.results`."""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from da2k.errors import Da2kError
from da2k.leaderboard.names import display_name, group_of
from da2k.results import Result, ResultScore, read_result

log = logging.getLogger(__name__)

Score = ResultScore  # a row's accuracies: fraction, counts and interval when known


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
    """Read, validate (`da2k.results.read_result`) and turn one result file into a row."""
    return entry_from_result(read_result(path))


def entry_from_result(result: Result) -> Entry:
    data, model, bench = result.data, result.model, result.benchmark
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
    latency = data.get("latency_ms")
    return Entry(
        provenance=result.provenance,
        model_id=model["id"],
        name=str(model.get("name") or display_name(model["id"])),
        group=group_of(model["id"]),
        benchmark=bench["name"],
        overall=result.overall,
        scenario_mean=result.scenario_mean,
        scenarios=result.scenarios,
        citation=result.citation,
        details=details,
        source=result.path,
        pairs_path=result.pairs_path,
        n_params=float(model["n_params"]) if model.get("n_params") is not None else None,
        latency_ms=float(latency) if latency is not None else None,
        latency_note=str(data["hardware"]) if latency is not None and data.get("hardware") else None,
        notes=_coverage_notes(data, result.overall, bench.get("n_pairs")),
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
