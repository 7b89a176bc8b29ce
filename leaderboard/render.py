"""HTML for the leaderboard pages: `string.Template` pages in `assets/`, fragments built here.

Every piece of text that comes from a result or reported-tables file goes through `esc`,
which HTML-escapes it and drops URL schemes, so the pages never reference the network.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from importlib import resources
from string import Template

from da2k.leaderboard.gallery import HardPair, thumb_name
from da2k.leaderboard.names import scenario_label
from da2k.leaderboard.ranking import PairwiseTest, Ranked, group_runs

_SCHEME = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://")


@dataclass(frozen=True)
class FigureView:
    src: str
    alt: str
    caption: str
    width: int
    height: int


@dataclass
class Board:
    """Everything one benchmark's section shows."""

    benchmark: str
    slug: str
    rows: list[Ranked]
    labels: list[str]
    scenarios: list[str]
    links: dict[int, list[tuple[str, str]]] = field(default_factory=dict)  # row index -> (text, href)
    figures: list[FigureView] = field(default_factory=list)
    pairwise: tuple[list[str], list[list[PairwiseTest]]] | None = None
    pairwise_figure: FigureView | None = None
    hard_scenarios: set[str] = field(default_factory=set)


def esc(text: object) -> str:
    """HTML-escaped text with URL schemes removed (addresses stay readable, never fetchable)."""
    return html.escape(_SCHEME.sub("", str(text)), quote=True)


def pct(value: float) -> str:
    return f"{100 * value:.1f}"


def _template(name: str) -> Template:
    return Template(resources.files("da2k.leaderboard").joinpath("assets", name).read_text(encoding="utf-8"))


def _human_params(n: float) -> str:
    return f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.0f} M"


def _human_latency(ms: float) -> str:
    return f"{ms / 1000:.1f} s" if ms >= 1000 else f"{ms:.0f} ms"


def _ci_text(lo: float, hi: float) -> str:
    return f"{pct(lo)}–{pct(hi)}"


def _score_cell(score, with_counts: bool = True) -> str:
    if score is None:
        return '<td data-value=""><span class="na" aria-hidden="true">–</span><span class="visually-hidden">not available</span></td>'
    title = f' title="{score.correct} of {score.n} pairs correct"' if with_counts and score.n is not None else ""
    ci = ""
    if score.ci95 is not None:
        mark = "†" if score.ci_approx else ""
        ci = f'<span class="ci">{_ci_text(*score.ci95)}{mark}</span>'
    return f'<td data-value="{score.accuracy:.6f}"{title}>{pct(score.accuracy)}{ci}</td>'


def _number_cell(value: float | None, text: str, note: str | None = None) -> str:
    if value is None:
        return '<td data-value=""><span class="na" aria-hidden="true">–</span><span class="visually-hidden">not known</span></td>'
    title = f' title="{esc(note)}"' if note else ""
    return f'<td data-value="{value:.6g}"{title}>{esc(text)}</td>'


def _source_cell(row: Ranked, links: list[tuple[str, str]], ref_ids: dict[str, int]) -> str:
    e = row.entry
    if e.provenance == "reported":
        ref = ref_ids.get(e.citation or "")
        cite = f' <a href="#ref-{ref}" aria-label="citation {ref}">[{ref}]</a>' if ref else ""
        extra = f' <span class="ci">{esc(e.details["table"])}</span>' if "table" in e.details else ""
        return f'<td class="text" data-value="reported"><span class="badge reported">reported</span>{cite}{extra}</td>'
    labels = {
        "toolkit_version": "toolkit",
        "hardware": "hardware",
        "date": "date",
        "checkpoint_sha256": "checkpoint sha256",
        "input_size": "input size",
        "predictor": "predictor",
        "kind": "output",
        "settings": "settings",
        "wall_time_s": "wall time (s)",
    }
    items = []
    for key, label in labels.items():
        if key in e.details:
            value = e.details[key]
            shown = value[:12] + "…" if key == "checkpoint_sha256" and len(value) > 12 else value
            items.append(f'<dt>{esc(label)}</dt><dd title="{esc(value)}">{esc(shown)}</dd>')
    link_html = " · ".join(f'<a href="{esc(href)}">{esc(text)}</a>' for text, href in links)
    return (
        '<td class="text" data-value="measured"><span class="badge measured">measured</span>'
        f"<details><summary>run</summary><dl>{''.join(items)}</dl>{link_html}</details></td>"
    )


def _header(board: Board) -> str:
    def th(label: str, kind: str, first: str, extra: str = "", sort: str | None = None, cls: str = "") -> str:
        aria = f' aria-sort="{sort}"' if sort else ""
        cls_attr = f' class="{cls}"' if cls else ""
        return (
            f'<th scope="col"{cls_attr} data-type="{kind}" data-first="{first}" data-label="{esc(label)}"{aria}>'
            f'<button type="button" class="sort">{esc(label)}</button>{extra}</th>'
        )

    cells = [
        th("Rank", "number", "ascending"),
        th("Model", "text", "ascending", cls="text"),
        th("Source", "text", "ascending", cls="text"),
        th("Overall %", "number", "descending", sort="descending"),
        th("Scenario mean %", "number", "descending"),
    ]
    for s in board.scenarios:
        link = ""
        if s in board.hard_scenarios:
            link = f'<a class="hard-link" href="gallery.html#{esc(s)}">hard pairs<span class="visually-hidden"> in {esc(scenario_label(s))}</span></a>'
        cells.append(th(scenario_label(s), "number", "descending", extra=link))
    cells += [th("Params", "number", "ascending"), th("Latency", "number", "ascending")]
    return "<thead><tr>" + "".join(cells) + "</tr></thead>"


def _row(board: Board, i: int, ref_ids: dict[str, int]) -> str:
    row = board.rows[i]
    e = row.entry
    rank_text = f"≈{row.rank}" if row.tied else str(row.rank)
    rank_title = "95 % CI overlaps another row's" if row.tied else "separated from every other row by the 95 % CIs"
    model_code = f"<code>{esc(e.model_id)}</code>" if e.model_id and e.model_id != e.name else ""
    model_code += "".join(f'<span class="caveat">{esc(note)}</span>' for note in e.notes)
    cells = [
        f'<td class="rank" data-value="{row.rank}" title="{rank_title}">{rank_text}</td>',
        f'<th scope="row" data-value="{esc(e.name)}">{esc(e.name)}{model_code}</th>',
        _source_cell(row, board.links.get(i, []), ref_ids),
        _score_cell(e.overall),
    ]
    if e.scenario_mean is None:
        cells.append(_score_cell(None))
    else:
        cells.append(f'<td data-value="{e.scenario_mean:.6f}">{pct(e.scenario_mean)}</td>')
    cells += [_score_cell(e.scenarios.get(s)) for s in board.scenarios]
    cells.append(_number_cell(e.n_params, _human_params(e.n_params) if e.n_params else "", e.latency_note))
    cells.append(_number_cell(e.latency_ms, _human_latency(e.latency_ms) if e.latency_ms else "", e.latency_note))
    return f'<tr class="{e.provenance}">' + "".join(cells) + "</tr>"


def _pairwise_table(board: Board) -> str:
    labels, matrix = board.pairwise
    head = "".join(f'<th scope="col">{esc(label)}</th>' for label in labels)
    body = []
    for i, label in enumerate(labels):
        cells = []
        for j in range(len(labels)):
            t = matrix[i][j]
            if i == j:
                cells.append('<td><span class="na">–</span></td>')
            elif t.p_value is None:
                cells.append('<td><span class="na">no common pairs</span></td>')
            else:
                cells.append(
                    f'<td>p = {t.p_value:.3g}<span class="ci">{t.a_only} : {t.b_only} of {t.n_common}</span></td>'
                )
        body.append(f'<tr><th scope="row">{esc(label)}</th>{"".join(cells)}</tr>')
    return (
        '<details><summary>The same tests as a table</summary><div class="table-wrap">'
        '<table class="plain"><caption>Exact McNemar p-values on the pairs both models were scored on; '
        "below each, pairs only the row model got right : pairs only the column model got right, "
        "of the common pairs. No correction for multiple comparisons.</caption>"
        f"<thead><tr><td></td>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div></details>"
    )


def _figure(fig: FigureView) -> str:
    return (
        f'<figure><img src="{esc(fig.src)}" alt="{esc(fig.alt)}" width="{fig.width}" height="{fig.height}">'
        f"<figcaption>{esc(fig.caption)}</figcaption></figure>"
    )


def _board(board: Board, ref_ids: dict[str, int]) -> str:
    # One <tbody> per model group: sorting moves groups, so a model's rows stay together.
    bodies, i = [], 0
    for run in group_runs(board.rows):
        bodies.append("".join(_row(board, i + k, ref_ids) for k in range(len(run))))
        i += len(run)
    tbody = "".join(f'<tbody class="group">{rows}</tbody>' for rows in bodies)
    status_id = f"status-{board.slug}"
    caption = (
        f"{esc(board.benchmark)}: accuracy (%) per model, overall with its 95 % CI and per scenario. "
        "Measured and reported rows of one model are grouped. Column buttons sort."
    )
    has_approx = any(r.entry.overall.ci_approx for r in board.rows)
    notes = ["≈: the rank's 95 % CI overlaps another row's."]
    if has_approx:
        notes.append(
            "†: approximate CI for a reported number without pair counts, at the paper's ~2K pairs or the stated benchmark size."
        )
    parts = [
        f'<section class="board" id="{board.slug}" aria-labelledby="{board.slug}-title">',
        f'<h2 id="{board.slug}-title">{esc(board.benchmark)}</h2>',
        f'<div class="table-wrap" role="region" aria-labelledby="{board.slug}-caption" tabindex="0">',
        f'<table class="leaderboard" data-status="{status_id}">',
        f'<caption id="{board.slug}-caption"><span class="cap">{caption}</span></caption>',
        _header(board),
        tbody,
        "</table></div>",
        f'<p class="visually-hidden" id="{status_id}" aria-live="polite"></p>',
        '<p class="notes">' + " ".join(notes) + "</p>",
        "".join(_figure(f) for f in board.figures),
    ]
    if board.pairwise is not None:
        parts.append("<h3>Pairwise significance</h3>")
        if board.pairwise_figure is not None:
            parts.append(_figure(board.pairwise_figure))
        parts.append(_pairwise_table(board))
    parts.append("</section>")
    return "\n".join(parts)


def _nav(items: list[tuple[str, str]]) -> str:
    if len(items) < 2:
        return ""
    links = "".join(f'<li><a href="{esc(href)}">{esc(text)}</a></li>' for text, href in items)
    return f'<nav aria-label="Sections"><ul>{links}</ul></nav>'


def _stamp(stamp: str | None) -> str:
    return f" Built {esc(stamp)}." if stamp else ""


def render_index(
    title: str, boards: list[Board], references: list[str], version: str, stamp: str | None, has_gallery: bool
) -> str:
    """The main page: one table (plus figures) per benchmark, then notes and references."""
    ref_ids = {text: i + 1 for i, text in enumerate(references)}
    nav = [(b.benchmark, f"#{b.slug}") for b in boards]
    if has_gallery:
        nav.append(("Hard pairs", "gallery.html"))
    refs = ""
    if references:
        items = "".join(f'<li id="ref-{ref_ids[r]}">{esc(r)}</li>' for r in references)
        refs = f'<section id="references" aria-labelledby="references-title"><h2 id="references-title">References</h2><ol>{items}</ol></section>'
    return _template("index.html").substitute(
        title=esc(title),
        nav=_nav(nav) if len(boards) > 1 or has_gallery else "",
        boards="\n".join(_board(b, ref_ids) for b in boards),
        references=refs,
        version=esc(version),
        stamp=_stamp(stamp),
    )


def render_gallery(
    title: str,
    benchmark: str,
    hard: dict[str, list[HardPair]],
    thumbs: dict[tuple, tuple[int, int]],
    version: str,
    stamp: str | None,
) -> str:
    """The hard-pairs page: one section per scenario, anchored by the scenario key."""
    sections = []
    for scenario, pairs in hard.items():
        items = []
        for pair in pairs:
            image, index = pair.key
            width, height = thumbs[pair.key]
            answers = "".join(
                f'<li class="{"right" if ok else "wrong"}">{esc(label)}: '
                f"{'right (closer point)' if ok else 'wrong (other point, or a tie)'}</li>"
                for label, ok in pair.answers
            )
            alt = f"{image}, pair {index}: blue circle marks the closer point, orange square the other"
            items.append(
                f'<li><figure><img src="thumbs/{esc(thumb_name(pair.key))}" alt="{esc(alt)}" width="{width}" height="{height}" loading="lazy">'
                f"<figcaption><code>{esc(image)}</code> #{index}: {pair.n_wrong} of {len(pair.answers)} models wrong"
                f'<ul class="answers">{answers}</ul></figcaption></figure></li>'
            )
        sections.append(
            f'<section id="{esc(scenario)}" aria-labelledby="{esc(scenario)}-title"><h2 id="{esc(scenario)}-title">{esc(scenario_label(scenario))}</h2>'
            f'<ul class="gallery">{"".join(items)}</ul></section>'
        )
    nav = _nav([(scenario_label(s), f"#{s}") for s in hard])
    return _template("gallery.html").substitute(
        title=esc(title),
        benchmark=esc(benchmark),
        nav=nav,
        sections="\n".join(sections),
        version=esc(version),
        stamp=_stamp(stamp),
    )
