"""HTML of one leaderboard table: the header, one row per entry, its provenance popover.

Markup contract (what the page's script, the style sheet and readers of the HTML rely on):
every body row carries `data-group` (rows of one official model share it), `data-weights`
(`official`, `custom` or `reported`), `data-provenance` and `data-filter` (the text the filter
box searches); the Model cell is a `th[scope=row]` whose `data-value` is the row's label, the
same label the figures and the gallery use; scenario columns have the class `scen` (the
"scenario columns" toggle hides them); a measured row's run details sit in a `[popover]`
element, which takes no room in the row until it is opened.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from da2k.leaderboard.names import scenario_label
from da2k.leaderboard.ranking import Ranked
from da2k.leaderboard.results import Entry

_SCHEME = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://")
_NA = '<span class="na" aria-hidden="true">–</span><span class="visually-hidden">{}</span>'
_DETAIL_LABELS = {
    "checkpoint_source": "weights from",
    "checkpoint_sha256": "checkpoint sha256",
    "annotations_sha256": "annotations sha256",
    "predictor": "predictor",
    "kind": "output",
    "input_size": "input size",
    "settings": "settings",
    "hardware": "hardware",
    "toolkit_version": "toolkit",
    "date": "date",
    "wall_time_s": "wall time (s)",
}
# Narrow headers for the wide labels, so that every column fits a 1366 px screen.
SHORT_HEADERS = {
    "Scenario mean %": "Mean %",
    "Transparent/Reflective": "Transp./ refl.",
    "Adverse style": "Adverse",
    "Underwater": "Under\u00adwater",
}
CARD_URL = "https://huggingface.co/"  # model cards of official models: links, never fetched


def esc(text: object) -> str:
    """HTML-escaped text with URL schemes removed (addresses stay readable, never fetchable)."""
    return html.escape(_SCHEME.sub("", str(text)), quote=True)


def pct(value: float) -> str:
    return f"{100 * value:.1f}"


def human_params(n: float) -> str:
    return f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.1f} M"


def human_latency(ms: float) -> str:
    return f"{ms / 1000:.1f} s" if ms >= 1000 else f"{ms:.0f} ms"


@dataclass(frozen=True)
class TableRow:
    """One row to draw: its entry, its label, its rank (None: not ranked) and its links."""

    entry: Entry
    label: str
    ranked: Ranked | None
    links: tuple[tuple[str, str], ...] = ()


def _na(why: str) -> str:
    return f'<td data-value="">{_NA.format(esc(why))}</td>'


def _overall_cell(entry: Entry) -> str:
    s = entry.overall
    title = f' title="{s.correct} of {s.n} pairs correct"' if s.n is not None else ""
    ci = ""
    if s.ci95 is not None:
        mark = "†" if s.ci_approx else ""
        ci = f'<span class="ci">{pct(s.ci95[0])}–{pct(s.ci95[1])}{mark}</span>'
    return f'<td class="overall" data-value="{s.accuracy:.6f}"{title}>{pct(s.accuracy)}{ci}</td>'


def _scenario_cell(entry: Entry, scenario: str) -> str:
    s = entry.scenarios.get(scenario)
    if s is None:
        return f'<td class="scen" data-value="">{_NA.format("not available")}</td>'
    parts = [f"{s.correct} of {s.n} pairs correct"] if s.n is not None else []
    if s.ci95 is not None:
        parts.append(f"95 % CI {pct(s.ci95[0])}–{pct(s.ci95[1])}")
    title = f' title="{esc("; ".join(parts))}"' if parts else ""
    return f'<td class="scen" data-value="{s.accuracy:.6f}"{title}>{pct(s.accuracy)}</td>'


def _number_cell(value: float | None, text: str, note: str | None, sub: str = "") -> str:
    """A number with its note as a tooltip, or (`sub`: the cell's class) printed under it."""
    if value is None:
        return _na("not known")
    title = f' title="{esc(note)}"' if note else ""
    extra = f'<span class="sub">{esc(note)}</span>' if sub and note else ""
    cls = f' class="{sub}"' if sub else ""
    return f'<td{cls} data-value="{value:.6g}"{title}>{esc(text)}{extra}</td>'


def _popover(row: TableRow, popover_id: str) -> str:
    e = row.entry
    items = []
    for key, label in _DETAIL_LABELS.items():
        if key in e.details:
            items.append(f"<dt>{esc(label)}</dt><dd>{esc(e.details[key])}</dd>")
    items += [f"<dt>coverage</dt><dd>{esc(note)}</dd>" for note in e.notes]
    links = " · ".join(f'<a href="{esc(href)}">{esc(text)}</a>' for text, href in row.links)
    return (
        f'<button type="button" class="prov-btn" popovertarget="{popover_id}">run details</button>'
        f'<div class="prov" id="{popover_id}" popover role="dialog" aria-label="Run details: {esc(row.label)}">'
        f'<p class="prov-title">{esc(row.label)}</p><dl>{"".join(items)}</dl><p>{links}</p>'
        f'<button type="button" popovertarget="{popover_id}" popovertargetaction="hide">Close</button></div>'
    )


def _source_cell(row: TableRow, ref_ids: dict[str, int], popover_id: str) -> str:
    e = row.entry
    if e.provenance == "reported":
        ref = ref_ids.get(e.citation or "")
        cite = f' <a href="#ref-{ref}" aria-label="reference {ref}">[{ref}]</a>' if ref else ""
        extra = f'<span class="sub">{esc(e.details["table"])}</span>' if "table" in e.details else ""
        return f'<td class="text source" data-value="reported"><span class="badge reported">reported</span>{cite}{extra}</td>'
    return (
        '<td class="text source" data-value="measured"><span class="badge measured">measured</span>'
        f"{_popover(row, popover_id)}</td>"
    )


def _model_cell(row: TableRow) -> str:
    e = row.entry
    rank = ""
    if row.ranked is not None:
        rank = f'<span class="rank-inline">#{"≈" if row.ranked.tied else ""}{row.ranked.rank}</span>'
    parts = [f'{rank}<span class="name">{esc(row.label)}</span>']
    weights = e.weights.removeprefix(f"{row.label} · ").removeprefix(f"{e.name} · ")
    if weights and weights not in (row.label, e.name):
        parts.append(f'<span class="weights">{esc(weights)}</span>')
    if e.card:
        parts.append(f'<a class="card" href="{CARD_URL}{esc(e.card)}" rel="external noopener">model card</a>')
    if e.model_id and e.model_id not in (e.name, row.label):
        parts.append(f"<code>{esc(e.model_id)}</code>")
    parts += [f'<span class="caveat">{esc(note)}</span>' for note in e.notes]
    return f'<th scope="row" class="model text" data-value="{esc(row.label)}">{"".join(parts)}</th>'


def _rank_cell(row: TableRow) -> str:
    r = row.ranked
    if r is None:
        return '<td class="rank" data-value="" title="not ranked: a partial run">–</td>'
    title = "95 % CI overlaps another row's" if r.tied else "separated from every other row by the 95 % CIs"
    return f'<td class="rank" data-value="{r.rank}" title="{title}">{"≈" if r.tied else ""}{r.rank}</td>'


def body_row(row: TableRow, scenarios: list[str], ref_ids: dict[str, int], popover_id: str) -> str:
    e = row.entry
    kind = "reported" if e.provenance == "reported" else ("official" if e.official else "custom")
    search = " ".join(x for x in (row.label, e.weights, e.model_id or "", e.benchmark) if x).lower()
    attrs = (
        f'class="{e.provenance} {kind}" data-group="{esc(e.group)}" data-weights="{kind}" '
        f'data-provenance="{e.provenance}" data-partial="{str(e.partial).lower()}" data-filter="{esc(search)}"'
    )
    mean = (
        _na("not available")
        if e.scenario_mean is None
        else f'<td data-value="{e.scenario_mean:.6f}">{pct(e.scenario_mean)}</td>'
    )
    cells = [_rank_cell(row), _model_cell(row), _overall_cell(e), mean]
    cells += [_scenario_cell(e, s) for s in scenarios]
    cells.append(_source_cell(row, ref_ids, popover_id))
    cells.append(_number_cell(e.n_params, human_params(e.n_params) if e.n_params else "", e.params_note))
    latency_text = human_latency(e.latency_ms) if e.latency_ms else ""
    cells.append(_number_cell(e.latency_ms, latency_text, e.latency_note, sub="latency"))
    cells.append(
        f'<td class="text date" data-value="{esc(e.date or "")}">{esc(e.date) if e.date else _NA.format("no date")}</td>'
    )
    return f"<tr {attrs}>" + "".join(cells) + "</tr>"


def header(scenarios: list[str], hard: set[str]) -> str:
    def th(label: str, kind: str, first: str, cls: str = "", extra: str = "", sort: str | None = None) -> str:
        aria = f' aria-sort="{sort}"' if sort else ""
        short = SHORT_HEADERS.get(label)
        shown = (
            f'<span aria-hidden="true">{esc(short)}</span><span class="visually-hidden">{esc(label)}</span>'
            if short
            else esc(label)
        )
        title = f' title="{esc(label)}"' if short else ""
        return (
            f'<th scope="col" class="{cls}" data-type="{kind}" data-first="{first}" data-label="{esc(label)}"{title}{aria}>'
            f'<button type="button" class="sort">{shown}</button>{extra}</th>'
        )

    cells = [
        th("Rank", "number", "ascending", "rank"),
        th("Model", "text", "ascending", "model text"),
        th("Overall %", "number", "descending", "overall", sort="descending"),
        th("Scenario mean %", "number", "descending", "mean"),
    ]
    for s in scenarios:
        link = ""
        if s in hard:
            label = esc(scenario_label(s))
            link = f'<a class="hard-link" href="gallery.html#{esc(s)}">hard pairs<span class="visually-hidden"> in {label}</span></a>'
        cells.append(th(scenario_label(s), "number", "descending", "scen", extra=link))
    cells += [
        th("Source", "text", "ascending", "text source"),
        th("Params", "number", "ascending"),
        th("Latency", "number", "ascending"),
        th("Date", "text", "descending", "text date"),
    ]
    return "<thead><tr>" + "".join(cells) + "</tr></thead>"


def table(
    rows: list[TableRow], scenarios: list[str], hard: set[str], ref_ids: dict[str, int], table_id: str, caption: str
) -> str:
    """A sortable, filterable leaderboard table (`table_id` also prefixes its popover ids)."""
    body = "".join(body_row(r, scenarios, ref_ids, f"{table_id}-run-{k}") for k, r in enumerate(rows))
    return (
        f'<div class="table-wrap" role="region" aria-labelledby="{table_id}-caption" tabindex="0">'
        f'<table class="leaderboard filterable" id="{table_id}" data-status="{table_id}-status">'
        f'<caption id="{table_id}-caption"><span class="cap">{caption}</span></caption>'
        f"{header(scenarios, hard)}<tbody>{body}</tbody></table></div>"
        f'<p class="visually-hidden" id="{table_id}-status" aria-live="polite"></p>'
    )
