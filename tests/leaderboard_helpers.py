"""Shared by the leaderboard tests: the fixtures folder, a matching benchmark, an HTML reader."""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

from PIL import Image

FIXTURES = Path(__file__).parent / "fixtures" / "leaderboard"
VOID = {"meta", "link", "img", "br", "hr", "input", "source", "col", "wbr"}


class Page(HTMLParser):
    """Checks tag nesting; collects every leaderboard table's body rows and the sections."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tables: dict[str, list[dict]] = {}  # table id -> rows {"attrs", "cells"}
        self.sections: list[dict] = []  # attrs of every <section>
        self.attrs_seen: list[tuple[str, dict]] = []
        self.text = ""
        self._table: str | None = None
        self._cell: dict | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.attrs_seen.append((tag, attrs))
        if tag not in VOID:
            self.stack.append(tag)
        if tag == "section":
            self.sections.append(attrs)
        if tag == "table" and "leaderboard" in (attrs.get("class") or ""):
            self._table = attrs["id"]
            self.tables[self._table] = []
        if self._table and tag == "tr" and "tbody" in self.stack:
            self.tables[self._table].append({"attrs": attrs, "cells": []})
        if self._table and tag in ("td", "th") and "tbody" in self.stack and self._cell is None:
            self._cell = {"tag": tag, "attrs": attrs, "text": "", "class": (attrs.get("class") or "").split()}

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        self.stack.pop()
        if tag in ("td", "th") and self._cell is not None and self._cell["tag"] == tag:
            self.tables[self._table][-1]["cells"].append(self._cell)
            self._cell = None
        if tag == "table":
            self._table = None

    def handle_data(self, data):
        self.text += data
        if self._cell is not None:
            self._cell["text"] += data

    @property
    def rows(self) -> list[dict]:
        return [row for rows in self.tables.values() for row in rows]


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    assert page.stack == [], f"unclosed tags {page.stack}"
    return page


def cell(row: dict, cls: str) -> dict:
    """The cell of `row` with class `cls` (rank, model, overall, source, date, latency)."""
    return next(c for c in row["cells"] if cls in c["class"])


def label(row: dict) -> str:
    return cell(row, "model")["attrs"]["data-value"]


def row_labelled(rows: list[dict], text: str) -> dict:
    found = [r for r in rows if label(r) == text]
    assert len(found) == 1, (text, [label(r) for r in rows])
    return found[0]


def scenario_cells(row: dict) -> list[dict]:
    return [c for c in row["cells"] if "scen" in c["class"]]


def make_bench(root: Path) -> Path:
    """A DA-2K-format folder matching the fixtures' pairs (tiny generated JPEGs)."""
    bench = root / "bench"
    annotations = json.loads((FIXTURES / "bench" / "annotations.json").read_text())
    for key in annotations:
        (bench / key).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (64, 48), (90, 120, 60)).save(bench / key)
    shutil.copy(FIXTURES / "bench" / "annotations.json", bench / "annotations.json")
    return bench


def changed(data: dict, **changes) -> dict:
    """A deep copy of a result dict with top-level `changes` and dotted ones (`model__name="x"`
    sets model.name)."""
    data = json.loads(json.dumps(data))
    for key, value in changes.items():
        target, *path = key.split("__")
        if path:
            data[target][path[0]] = value
        else:
            data[target] = value
    return data


def write_result(folder: Path, name: str, base: str = "vitl", **changes) -> Path:
    """A copy of fixture `base` as `folder/name.json` (+ its pairs CSV), `changed` as asked."""
    data = changed(json.loads((FIXTURES / f"{base}.json").read_text()), **changes)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURES / f"{base}.pairs.csv", folder / f"{name}.pairs.csv")
    data["pairs_file"] = f"{name}.pairs.csv"
    path = folder / f"{name}.json"
    path.write_text(json.dumps(data, indent=1))
    return path
