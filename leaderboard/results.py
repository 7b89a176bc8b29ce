"""Leaderboard rows: `Entry`, built from result files read and validated by `da2k.results`."""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from da2k.errors import Da2kError
from da2k.leaderboard.identity import Identity, OfficialHashes, counted_params, identify_measured, official_hashes
from da2k.leaderboard.names import display_name, group_of, official_repo
from da2k.leaderboard.redact import redact
from da2k.results import Result, ResultScore, read_result

log = logging.getLogger(__name__)

Score = ResultScore  # a row's accuracies: fraction, counts and interval when known


@dataclass(frozen=True)
class Entry:
    """One leaderboard row: one (model, benchmark) result, measured or reported.

    `name` is what the table, the figures and the gallery call the row; `weights` says where
    its weights came from; rows sharing `group` are one official model (measured and
    reported). `partial` rows cover part of their benchmark and are never ranked."""

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
    latency_note: str | None = None  # where the latency was measured: hardware, precision, size
    notes: tuple[str, ...] = ()  # caveats shown with the row, e.g. a run over part of the benchmark
    annotations_sha256: str | None = None
    weights: str = ""
    official: bool = False
    card: str | None = None  # hub repo of an official model's card
    partial: bool = False
    date: str | None = None
    params_note: str | None = None
    source_short: str | None = None  # a reported row's source in a few words ("Yang et al. 2024")

    @property
    def sort_key(self) -> tuple:
        return (self.benchmark, self.group, self.provenance != "measured", self.name, str(self.source))


def _coverage_notes(data: dict, overall: Score, n_pairs: int | None) -> tuple[str, ...]:
    """Say when a row does not cover its whole benchmark (a subset run, skipped pairs).

    Reads `da2k evaluate`'s optional `complete` / `selection` / `skipped_invalid` fields when well-formed."""
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
    if data.get("complete") is False and not notes:
        notes.append("incomplete run (the result says complete: false)")
    return tuple(notes)


def load_result(path: str | Path, known: OfficialHashes = frozenset()) -> Entry:
    """Read, validate (`da2k.results.read_result`) and turn one result file into a row.

    `known`: official checkpoint hashes recorded by other results (see `load_results`)."""
    return entry_from_result(read_result(path), known)


def load_results(paths: list[Path]) -> list[Entry]:
    """Rows of several result files; a checkpoint downloaded from its official repo by one run
    makes every run of the same file (same sha256) official too."""
    results = [read_result(p) for p in paths]
    known = official_hashes([r.model for r in results if r.provenance == "measured"])
    return [entry_from_result(r, known) for r in results]


def _details(data: dict, model: dict, bench: dict) -> dict[str, str]:
    details = {}
    for key in ("toolkit_version", "hardware", "date", "wall_time_s"):
        if data.get(key) is not None:
            details[key] = redact(str(data[key]))
    for key in ("predictor", "kind", "checkpoint_sha256", "checkpoint_source", "input_size"):
        if model.get(key) is not None:
            details[key] = redact(str(model[key]))
    if model.get("settings"):
        details["settings"] = redact(json.dumps(model["settings"], sort_keys=True, separators=(", ", ": ")))
    if bench.get("annotations_sha256"):
        details["annotations_sha256"] = str(bench["annotations_sha256"])
    return details


def _latency(data: dict) -> tuple[float | None, str | None]:
    """The latency and where it was measured; a latency without its hardware is not shown."""
    latency = data.get("latency_ms")
    block = data.get("latency") if isinstance(data.get("latency"), dict) else {}
    hardware = block.get("hardware") or data.get("hardware")
    if latency is None or not hardware:
        return None, None
    parts = [redact(str(hardware)), str(block.get("precision") or "precision not stated")]
    if block.get("input_size"):
        parts.append(f"{block['input_size']} px")
    return float(latency), " · ".join(parts)


def _identity(result: Result, known: OfficialHashes) -> Identity:
    model = result.model
    if result.provenance == "measured":
        return identify_measured(model, known, fallback=str(result.path))
    model_id = str(model["id"])
    repo = official_repo(model_id)
    return Identity(display_name(model_id), "", repo is not None, group_of(model_id), repo)


def _params(model: dict) -> tuple[float | None, str | None]:
    if model.get("n_params") is not None:
        return float(model["n_params"]), "recorded in the result file"
    counted = counted_params(str(model["id"]))
    return (float(counted), "counted from the architecture") if counted else (None, None)


def entry_from_result(result: Result, known: OfficialHashes = frozenset()) -> Entry:
    data, model, bench = result.data, result.model, result.benchmark
    identity = _identity(result, known)
    notes = _coverage_notes(data, result.overall, bench.get("n_pairs"))
    latency, latency_note = _latency(data)
    n_params, params_note = _params(model)
    return Entry(
        provenance=result.provenance,
        model_id=redact(str(model["id"])),
        name=redact(str(model.get("name") or identity.label)),
        group=identity.group,
        benchmark=bench["name"],
        overall=result.overall,
        scenario_mean=result.scenario_mean,
        scenarios=result.scenarios,
        citation=result.citation,
        details=_details(data, model, bench),
        source=result.path,
        pairs_path=result.pairs_path,
        n_params=n_params,
        latency_ms=latency,
        latency_note=latency_note,
        notes=notes,
        annotations_sha256=result.annotations_sha256,
        weights=identity.weights,
        official=identity.official,
        card=identity.card,
        partial=bool(notes) or data.get("complete") is False,
        date=str(data["date"])[:10] if data.get("date") else None,
        params_note=params_note,
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
        relative = entry.pairs_path.relative_to(Path(file).parent)  # read_result keeps it inside
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
