"""`da2k store merge A.db B.db --into C.db`: combine stores written by separate shards or apps.

Rows are matched on their natural keys (image sha256; pair = image + points; expert run =
spec + checkpoint + settings; vote or presentation = pair + expert run or annotator), never
on row ids, so merging is idempotent and the same image mined in two shards ends up once.
Where both sides hold a pair, the more settled status wins (pending < auto_agreed/needs_human
< resolved/discarded). Presentations are copied (A/B order, gold flag, whether the answer
counted), so "never shown twice" and the agreement numbers survive a merge; claims and
display tokens are transient and are not carried over.

The copy is table-driven (`TABLES`) and commits in batches of about 1,000 rows, so an
annotator answering on the target meanwhile never waits long for the write lock.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from sqlalchemy import Table as SqlTable
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from da2k.errors import Da2kError
from da2k.store.core import Store, check_database, database_url
from da2k.store.ops import log_event
from da2k.store.schema import (
    AuditEvent,
    ExpertImage,
    ExpertRun,
    ExpertVote,
    HumanVote,
    Image,
    Pair,
    Presentation,
    Review,
)
from da2k.store.writes import chunks, write_in_batches

_SETTLED = {"pending": 0, "auto_agreed": 1, "needs_human": 1, "resolved": 2, "discarded": 2}
_DECISION_FIELDS = ("status", "is_gold", "reference_answer", "answer", "updated_at")
Row = dict[str, Any]


def _more_settled(new: Row, have: Row) -> Optional[Row]:
    """A pair settled further in the source takes the source's decision."""
    if _SETTLED[new["status"]] > _SETTLED[have["status"]]:
        return {name: new[name] for name in _DECISION_FIELDS}
    return None


def _proposed_later(new: Row, have: Row) -> Optional[Row]:
    """An image proposed in the source (candidate pairs written) is proposed in the target."""
    if have["proposed_at"] is None and new["proposed_at"] is not None:
        return {"proposed_at": new["proposed_at"], "points_method": new["points_method"]}
    return None


@dataclass(frozen=True)
class TableCopy:
    """How one table is merged: its natural key, the columns that hold ids of other tables
    (mapped from source to target ids), the id map it fills, and what an existing row takes."""

    model: type
    key: tuple[str, ...]
    refs: dict[str, str] = field(default_factory=dict)
    ids: Optional[str] = None
    refresh: Optional[Callable[[Row, Row], Optional[Row]]] = None
    refreshed: str = ""
    """Name counted in the report when `refresh` changes a row."""
    transient: tuple[str, ...] = ()
    """Columns not carried over (left empty in the target)."""

    @property
    def table(self) -> SqlTable:
        return self.model.__table__


TABLES = (
    TableCopy(Image, ("sha256",), ids="images", refresh=_proposed_later),
    TableCopy(ExpertRun, ("spec", "checkpoint_sha256", "settings_sha256"), ids="expert_runs"),
    TableCopy(
        Pair,
        ("image_id", "p1_row", "p1_col", "p2_row", "p2_col"),
        {"image_id": "images"},
        ids="pairs",
        refresh=_more_settled,
        refreshed="pairs_settled",
    ),
    TableCopy(ExpertImage, ("image_id", "expert_run_id"), {"image_id": "images", "expert_run_id": "expert_runs"}),
    TableCopy(ExpertVote, ("pair_id", "expert_run_id"), {"pair_id": "pairs", "expert_run_id": "expert_runs"}),
    TableCopy(HumanVote, ("pair_id", "annotator"), {"pair_id": "pairs"}),
    TableCopy(Presentation, ("pair_id", "annotator"), {"pair_id": "pairs"}, transient=("token",)),
    TableCopy(Review, ("pair_id", "reviewer", "created_at"), {"pair_id": "pairs"}),
    TableCopy(AuditEvent, ("at", "actor", "action", "pair_id"), {"pair_id": "pairs"}),
)
"""In dependency order: a table's references are mapped before it is copied."""


@dataclass
class MergeReport:
    added: collections.Counter = field(default_factory=collections.Counter)


class _Copier:
    """Copies one table of one source: target rows by natural key, rows waiting to be
    inserted, and the id maps shared with later tables."""

    def __init__(self, spec: TableCopy, target: Session, maps: dict[str, dict[int, int]], added: collections.Counter):
        self.spec, self.maps, self.added = spec, maps, added
        self.existing: dict[tuple, Row] = {}
        for row in target.execute(select(spec.table)).mappings():
            self.existing[tuple(row[k] for k in spec.key)] = dict(row)

    def prepare(
        self, rows: Sequence[Row]
    ) -> tuple[list[tuple[int, Row]], list[tuple[int, tuple]], list[tuple[int, Row]]]:
        """Rows to insert as (source id, values); source rows that repeat one of those as
        (source id, key); updates of existing rows as (target id, values)."""
        new, repeats, changes = [], [], []
        for row in rows:
            values = dict(row)
            source_id = values.pop("id")
            for column, name in self.spec.refs.items():
                if values[column] is not None:
                    values[column] = self.maps[name][values[column]]
            for column in self.spec.transient:
                values[column] = None
            key = tuple(values[k] for k in self.spec.key)
            have = self.existing.get(key)
            if have is None:
                self.existing[key] = values  # gets its id once inserted, below
                new.append((source_id, values))
            elif "id" not in have:
                repeats.append((source_id, key))  # the same key twice in this batch: the first wins
            else:
                if self.spec.ids:
                    self.maps[self.spec.ids][source_id] = have["id"]
                change = self.spec.refresh(values, have) if self.spec.refresh else None
                if change:
                    have.update(change)
                    changes.append((have["id"], change))
        return new, repeats, changes

    def write(self, s: Session, batch: Sequence[Row]) -> None:
        new, repeats, changes = self.prepare(batch)
        table = self.spec.table
        if new:
            ids = s.execute(
                insert(table).returning(table.c.id, sort_by_parameter_order=True), [values for _, values in new]
            ).scalars()
            for (source_id, values), target_id in zip(new, ids, strict=True):
                values["id"] = target_id
                if self.spec.ids:
                    self.maps[self.spec.ids][source_id] = target_id
            self.added[table.name] += len(new)
        if self.spec.ids:
            for source_id, key in repeats:
                self.maps[self.spec.ids][source_id] = self.existing[key]["id"]
        for target_id, change in changes:
            s.execute(update(table).where(table.c.id == target_id).values(**change))
        if changes and self.spec.refreshed:
            self.added[self.spec.refreshed] += len(changes)


def _merge_one(src: Store, dst: Store, added: collections.Counter) -> None:
    """Copy every table of `src` into `dst` in batched transactions."""
    maps: dict[str, dict[int, int]] = collections.defaultdict(dict)
    for spec in TABLES:
        with dst.read() as target:
            copier = _Copier(spec, target, maps, added)
        with src.read() as r:
            rows = [dict(row) for row in r.execute(select(spec.table).order_by(spec.table.c.id)).mappings()]
        write_in_batches(dst, chunks(rows), copier.write)


def merge_stores(sources: Sequence[str | Path], into: str | Path, *, actor: str = "merge") -> MergeReport:
    """Add every row of `sources` missing from `into` (created if needed)."""
    target_url = database_url(into)
    if any(database_url(src) == target_url for src in sources):
        raise Da2kError("--into must be a new or different database than the ones merged")
    for source in sources:  # every source is usable before the target is created
        check_database(source, create=False)
    report = MergeReport()
    target = Store(into)
    try:
        for source in sources:
            src = Store(source, create=False)
            try:
                _merge_one(src, target, report.added)
            finally:
                src.close()
            with target.write() as s:
                log_event(s, actor, "merge", source=src.url, added=dict(report.added))
    finally:
        target.close()
    return report
