"""HTML for the leaderboard pages: `string.Template` pages in `assets/`, sections built here.

Every piece of text that comes from a result or reported-numbers file goes through `esc`,
which HTML-escapes it and drops URL schemes, so the pages never reference the network; the
only addresses written as links are the hub model cards of official models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from string import Template

from da2k.leaderboard.boards import BoardSpec
from da2k.leaderboard.gallery import HardPair, thumb_name
from da2k.leaderboard.names import scenario_label
from da2k.leaderboard.paper import ConditionTable
from da2k.leaderboard.ranking import PairwiseTest
from da2k.leaderboard.table import TableRow, esc, pct, table


@dataclass(frozen=True)
class FigureView:
    src: str
    alt: str
    caption: str
    width: int
    height: int


@dataclass
class Board:
    """Everything one annotation file's section shows: ranked rows, partial runs apart."""

    spec: BoardSpec
    rows: list[TableRow]  # ranked, in display order
    partial: list[TableRow]
    scenarios: list[str]
    figures: list[FigureView] = field(default_factory=list)
    pairwise: tuple[list[str], list[list[PairwiseTest]]] | None = None
    pairwise_figure: FigureView | None = None
    hard_scenarios: set[str] = field(default_factory=set)
    pairwise_note: str | None = None


def _template(name: str) -> Template:
    return Template(resources.files("da2k.leaderboard").joinpath("assets", name).read_text(encoding="utf-8"))


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
        '<table class="plain"><caption>Exact McNemar p-values on the pairs both runs were scored on '
        "(same annotation file); below each, pairs only the row run got right : pairs only the column run "
        "got right, of the common pairs. No correction for multiple comparisons.</caption>"
        f"<thead><tr><td></td>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div></details>"
    )


def _figure(fig: FigureView) -> str:
    return (
        f'<figure><img src="{esc(fig.src)}" alt="{esc(fig.alt)}" width="{fig.width}" height="{fig.height}">'
        f"<figcaption>{esc(fig.caption)}</figcaption></figure>"
    )


def _identity_line(board: Board) -> str:
    spec = board.spec
    parts = []
    if spec.key.sha:
        parts.append(f'annotation file sha256 <code title="{esc(spec.key.sha)}">{esc(spec.key.sha[:8])}</code>…')
    elif spec.key.kind != "reported":
        parts.append("annotation file not recorded in these results")
    if spec.floating:
        parts.append(
            f"reported rows are papers' numbers for a benchmark named {esc(spec.key.name)}; "
            "which annotation file they used is not recorded"
        )
    return f'<p class="bench-id">{"; ".join(parts)}.</p>' if parts else ""


def _notes(board: Board) -> str:
    rows = [r.entry for r in board.rows + board.partial]
    notes = ["≈: the rank's 95 % CI overlaps another row's."]
    if any(e.overall.ci_approx for e in rows):
        notes.append("†: approximate CI for a reported number without pair counts (at ~2K pairs or the stated size).")
    hardware = {e.latency_note.split(" · ")[0] for e in rows if e.latency_ms is not None and e.latency_note}
    if len(hardware) > 1:
        notes.append(
            "Latency is per image on the hardware printed under each number: "
            f"{len(hardware)} different machines here, so compare latencies only between rows on the same one."
        )
    return '<p class="notes">' + " ".join(esc(n) for n in notes) + "</p>"


def _board(board: Board, ref_ids: dict[str, int]) -> str:
    spec, slug = board.spec, board.spec.slug
    title = esc(spec.title)
    caption = (
        f"{title}: accuracy (%) per model, overall with its 95 % CI and per scenario. Every column sorts; "
        "the grouping switch keeps the measured and reported rows of one model together."
    )
    attrs = f'data-benchmark="{esc(spec.key.name)}" data-annotations-sha256="{esc(spec.key.sha or "")}"'
    parts = [
        f'<section class="board" id="{slug}" aria-labelledby="{slug}-title" {attrs}>',
        f'<h2 id="{slug}-title">{title}</h2>',
        _identity_line(board),
        '<div class="toolbar">'
        f'<label><input type="checkbox" class="group-toggle" data-tables="{slug}-table {slug}-partial-table">'
        " Keep each model's measured and reported rows together</label>"
        f'<label><input type="checkbox" class="scen-toggle" checked> Show the {len(board.scenarios)} scenario columns</label>'
        "</div>",
        table(board.rows, board.scenarios, board.hard_scenarios, ref_ids, f"{slug}-table", caption),
        _notes(board),
    ]
    if board.partial:
        parts += [
            f'<section class="partial-runs" id="{slug}-partial" aria-labelledby="{slug}-partial-title">',
            f'<h3 id="{slug}-partial-title">Partial runs of {title} (not ranked)</h3>',
            "<p>These runs scored only part of the annotation file (<code>--scenarios</code>, <code>--limit</code> "
            "or pairs that could not be scored): their accuracies are on other subsets, so they are listed apart "
            "and never ranked against full runs.</p>",
            table(
                board.partial,
                board.scenarios,
                set(),
                ref_ids,
                f"{slug}-partial-table",
                f"{title}: partial runs, not ranked.",
            ),
            "</section>",
        ]
    parts.append("".join(_figure(f) for f in board.figures))
    if board.pairwise is not None:
        parts.append("<h3>Pairwise significance</h3>")
        if board.pairwise_figure is not None:
            parts.append(_figure(board.pairwise_figure))
        parts.append(_pairwise_table(board))
    elif board.pairwise_note:
        parts.append(f'<p class="notes">{esc(board.pairwise_note)}</p>')
    parts.append("</section>")
    return "\n".join(p for p in parts if p)


def _conditions(t: ConditionTable, slug: str, ref_ids: dict[str, int]) -> str:
    ref = ref_ids.get(t.citation)
    cite = f' <a href="#ref-{ref}">[{ref}]</a>' if ref else ""
    head = "".join(f'<th scope="col">{esc(c)} %</th>' for c in t.columns)
    body = []
    for name, encoder, values in t.rows:
        cells = "".join(f"<td>{pct(v)}</td>" if v is not None else '<td><span class="na">–</span></td>' for v in values)
        search = esc(f"{name} {encoder or ''}".lower())
        label = esc(name) + (f' <span class="sub">{esc(encoder)}</span>' if encoder else "")
        body.append(f'<tr data-filter="{search}"><th scope="row">{label}</th>{cells}</tr>')
    who = esc(t.source_short or "its source")
    return (
        f'<section class="board conditions" id="{slug}" aria-labelledby="{slug}-title">'
        f'<h2 id="{slug}-title">{esc(t.benchmark)} under other conditions, reported by {who}</h2>'
        f"<p>Numbers as printed by {who}{cite}, not comparable with the tables above: "
        + " ".join(esc(c) for c in t.caveats)
        + '</p><div class="table-wrap"><table class="plain filterable">'
        f"<caption>Accuracy (%) on {esc(t.benchmark)} and its perturbed copies, per model (reported).</caption>"
        f'<thead><tr><th scope="col">Model</th>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div></section>'
    )


def _nav(items: list[tuple[str, str]]) -> str:
    if len(items) < 2:
        return ""
    links = "".join(f'<li><a href="{esc(href)}">{esc(text)}</a></li>' for text, href in items)
    return f'<nav aria-label="Sections"><ul>{links}</ul></nav>'


def _stamp(stamp: str | None) -> str:
    return f" Built {esc(stamp)}." if stamp else ""


def render_index(
    title: str,
    boards: list[Board],
    conditions: list[ConditionTable],
    references: list[tuple[str, tuple[str, ...]]],
    version: str,
    stamp: str | None,
    has_gallery: bool,
) -> str:
    """The main page: one table (plus partial runs and figures) per annotation file, the
    reported condition tables, then notes and references (citation, caveats)."""
    ref_ids = {text: i + 1 for i, (text, _) in enumerate(references)}
    nav = [(b.spec.title, f"#{b.spec.slug}") for b in boards]
    cond_slugs = [f"conditions-{k + 1}" for k in range(len(conditions))]
    nav += [
        (f"{t.benchmark} conditions ({t.source_short or 'reported'})", f"#{s}") for t, s in zip(conditions, cond_slugs)
    ]
    if has_gallery:
        nav.append(("Hard pairs", "gallery.html"))
    refs = ""
    if references:
        items = []
        for text, caveats in references:
            extra = "".join(f"<li>{esc(c)}</li>" for c in caveats)
            items.append(f'<li id="ref-{ref_ids[text]}">{esc(text)}{f"<ul>{extra}</ul>" if extra else ""}</li>')
        refs = f'<section id="references" aria-labelledby="references-title"><h2 id="references-title">References</h2><ol>{"".join(items)}</ol></section>'
    return _template("index.html").substitute(
        title=esc(title),
        nav=_nav(nav),
        boards="\n".join(_board(b, ref_ids) for b in boards)
        + "".join(_conditions(t, s, ref_ids) for t, s in zip(conditions, cond_slugs)),
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
                f"<figcaption><code>{esc(image)}</code> #{index}: missed by {pair.n_wrong} of {len(pair.answers)} models"
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
