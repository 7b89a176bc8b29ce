"""Which rows share a table: one table per annotation file, titled so that clashes are visible.

Rows are keyed by their benchmark's `annotations_sha256`: results on different annotation files
are never tabled, ranked or tested together, whatever their benchmark is called. Reported rows
that do not name their annotation file (a paper's numbers) join the one table of their
benchmark's name; when several annotation files carry that name they cannot be told apart, so
they get a table of their own. Titles are the benchmark name, plus the first 8 hex digits of
the annotation file's sha256 whenever two tables share a name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from da2k.leaderboard.results import Entry

NOT_RECORDED = "not-recorded"  # measured rows whose result names no annotation file
REPORTED = "reported"  # reported rows that name none either, apart from measured tables


@dataclass(frozen=True)
class BoardKey:
    name: str
    sha: str | None  # the annotation file's sha256; None for the two kinds above
    kind: str = "file"  # "file", NOT_RECORDED or REPORTED

    @property
    def order(self) -> tuple:
        return (self.name != "DA-2K", self.name, ("file", NOT_RECORDED, REPORTED).index(self.kind), self.sha or "")


@dataclass(frozen=True)
class BoardSpec:
    key: BoardKey
    title: str
    slug: str
    entries: list[Entry]
    floating: bool  # holds reported rows whose annotation file is not recorded


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "benchmark"


def _key(entry: Entry) -> BoardKey | None:
    if entry.annotations_sha256:
        return BoardKey(entry.benchmark, entry.annotations_sha256)
    if entry.provenance == "measured":
        return BoardKey(entry.benchmark, None, NOT_RECORDED)
    return None  # placed once every measured table is known


def _title(key: BoardKey, clash: bool) -> tuple[str, str]:
    if not clash:
        return key.name, _slug(key.name)
    if key.kind == "file":
        return f"{key.name} · {key.sha[:8]}", f"{_slug(key.name)}-{key.sha[:8]}"
    if key.kind == NOT_RECORDED:
        return f"{key.name} · annotation file not recorded", f"{_slug(key.name)}-unrecorded"
    return f"{key.name} · reported numbers", f"{_slug(key.name)}-reported"


def split_boards(entries: list[Entry]) -> list[BoardSpec]:
    """Tables in page order (DA-2K first, then by name), each with its rows in input order."""
    keyed: dict[BoardKey, list[Entry]] = {}
    loose = []
    for entry in entries:
        key = _key(entry)
        if key is None:
            loose.append(entry)
        else:
            keyed.setdefault(key, []).append(entry)
    measured_keys = list(keyed)
    floating: set[BoardKey] = set()
    for entry in loose:
        same_name = [k for k in measured_keys if k.name == entry.benchmark]
        key = same_name[0] if len(same_name) == 1 else BoardKey(entry.benchmark, None, REPORTED)
        keyed.setdefault(key, []).append(entry)
        floating.add(key)
    names = [k.name for k in keyed]
    specs, slugs = [], set()
    for key in sorted(keyed, key=lambda k: k.order):
        title, slug = _title(key, names.count(key.name) > 1)
        while slug in slugs:  # names that differ only in punctuation
            slug += "-x"
        slugs.add(slug)
        specs.append(BoardSpec(key, title, slug, keyed[key], key in floating))
    return specs


def row_labels(entries: list[Entry]) -> list[str]:
    """One label per row, unique within its table, shared by the table, figures and gallery.

    Measured rows: their name; reported rows: "<name> (reported)". A clash adds the source of a
    reported row or the result file of a measured one, then "#k" if still needed."""
    base = [e.name if e.provenance == "measured" else f"{e.name} (reported)" for e in entries]
    labels = []
    for e, label in zip(entries, base):
        if base.count(label) > 1:
            if e.provenance == "reported" and e.source_short:
                label = f"{e.name} (reported, {e.source_short})"
            elif e.provenance == "measured" and e.source is not None:
                label = f"{e.name} [{e.source.stem}]"
        labels.append(label)
    seen: dict[str, int] = {}
    unique = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        unique.append(label if labels.count(label) == 1 else f"{label} #{seen[label]}")
    return unique
