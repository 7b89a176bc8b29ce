"""`build_site`: result files (+ reported paper numbers, + benchmark images) -> a static site.

Output is deterministic (sorted inputs, fixed figure metadata, no clock unless `stamp`) and
self-contained: HTML, one CSS and one JS file, SVG figures, JPEG thumbnails, the combined
downloads and copies of the result files it shows (local paths redacted), all linked
relatively so it works from `file://` or any static host.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

from PIL import Image

from da2k import __version__
from da2k.benchmark import SCENARIOS, load_benchmark
from da2k.errors import Da2kError
from da2k.leaderboard import figures
from da2k.leaderboard.boards import BoardSpec, row_labels, split_boards
from da2k.leaderboard.downloads import downloads
from da2k.leaderboard.gallery import make_thumbnail, select_hard_pairs, thumb_name
from da2k.leaderboard.paper import Reported, load_reported
from da2k.leaderboard.ranking import mcnemar_matrix, rank_entries
from da2k.leaderboard.redact import redact_json
from da2k.leaderboard.render import Board, FigureView, render_gallery, render_index
from da2k.leaderboard.results import Entry, find_result_files, load_results
from da2k.leaderboard.table import TableRow
from da2k.results import PairKey, PairRow, read_pairs

log = logging.getLogger(__name__)

MARKER = ".da2k-leaderboard"
_STATIC = ("style.css", "leaderboard.js")


def _check_out(out: Path) -> None:
    """Refuse an `--out` that is a file, or a non-empty folder an earlier build did not make."""
    if out.exists():
        if not out.is_dir():
            raise Da2kError(f"{out} is a file; --out needs a folder")
        if any(out.iterdir()) and not (out / MARKER).is_file():
            raise Da2kError(
                f"{out} is not empty and was not made by 'da2k leaderboard build'; pick an empty or new --out"
            )


def _swap_in(tmp: Path, out: Path) -> None:
    """Replace `out` by the finished build in `tmp` (a failed build leaves `out` as it was)."""
    (tmp / MARKER).write_text("Made by 'da2k leaderboard build'; rebuilding replaces everything in this folder.\n")
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; a site is meant to be read
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)


def _write(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)


def _published(src: Path) -> bytes:
    """A result file as the site offers it: verbatim, unless it records local paths (redacted)."""
    raw = src.read_bytes()
    data = json.loads(raw)
    clean = redact_json(data)
    return raw if clean == data else (json.dumps(clean, indent=1, ensure_ascii=False) + "\n").encode()


def _copy_results(entries: list[Entry], out: Path) -> dict[int, tuple[tuple[str, str], ...]]:
    """Copy each result JSON (and its pairs file, same relative layout) under `results/`;
    returns the download links per entry (keyed by `id(entry)`)."""
    links: dict[int, tuple[tuple[str, str], ...]] = {}
    used: set[str] = set()
    for e in entries:
        if e.source is None:
            continue
        files = [(e.source, Path(e.source.name))]
        if e.pairs_path is not None:
            files.append((e.pairs_path, e.pairs_path.relative_to(e.source.parent)))
        prefix, k = Path("results"), 1
        while any((prefix / rel).as_posix() in used for _, rel in files):
            k += 1
            prefix = Path("results") / str(k)
        hrefs = []
        for n, (src, rel) in enumerate(files):
            dst = prefix / rel
            used.add(dst.as_posix())
            _write(out / dst, _published(src) if n == 0 else src.read_bytes())
            hrefs.append(dst.as_posix())
        links[id(e)] = (("result JSON", hrefs[0]),) + ((("pairs CSV", hrefs[1]),) if len(hrefs) > 1 else ())
    return links


def _load_outcomes(entry: Entry) -> dict[PairKey, PairRow]:
    outcomes = read_pairs(entry.pairs_path)
    n, correct = len(outcomes), sum(o.correct for o in outcomes.values())
    if (entry.overall.n, entry.overall.correct) != (n, correct):
        raise Da2kError(
            f"{entry.pairs_path}: {correct} of {n} pairs correct, but {entry.source} says "
            f"{entry.overall.correct} of {entry.overall.n}; were they written by the same run?"
        )
    return outcomes


def _figure(out: Path, rel: str, svg: bytes, alt: str, caption: str) -> FigureView:
    _write(out / rel, svg)
    width, height = figures.svg_size(svg)
    return FigureView(rel, alt, caption, width, height)


def _scenarios_of(entries: list[Entry]) -> list[str]:
    present = set().union(*(e.scenarios.keys() for e in entries)) if entries else set()
    return [s for s in SCENARIOS if s in present] + sorted(present - set(SCENARIOS))


def build_site(
    inputs: list[str | Path],
    out: str | Path,
    *,
    title: str = "DA-2K leaderboard",
    reported: str | Path | list[str | Path] | None = None,
    include_reported: bool = True,
    images: str | Path | None = None,
    hard_pairs_per_scenario: int = 6,
    stamp: bool = False,
) -> Path:
    """Build the site into `out` and return the path of its `index.html`.

    `inputs`: result JSON files or folders of them. `reported`: reported-numbers files (paper
    tables or condition tables, see `da2k.leaderboard.paper`; default: the packaged Depth
    Anything V2 and Depth Anything AC numbers; `include_reported=False` leaves them out).
    `images`: a DA-2K-format benchmark (folder or zip), for the hard-pairs gallery.
    """
    entries = load_results(find_result_files(inputs))
    paths = [reported] if isinstance(reported, (str, Path)) else reported
    extra = load_reported(paths) if include_reported else Reported([], [], {})
    entries += extra.entries
    if not entries:
        raise Da2kError("no results to show: pass result JSON files or folders (or keep the reported paper rows)")
    entries.sort(key=lambda e: e.sort_key)
    out = Path(out)
    _check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
    try:
        _render_site(tmp, entries, extra, title, images, hard_pairs_per_scenario, stamp)
        _swap_in(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out / "index.html"


def _make_board(spec: BoardSpec, links: dict[int, tuple], out: Path, cache: dict) -> Board:
    """Rank the full rows, set the partial runs apart, draw the figures, test the pairs."""
    ranked = rank_entries([e for e in spec.entries if not e.partial])
    partial = sorted((e for e in spec.entries if e.partial), key=lambda e: (-e.overall.accuracy, e.sort_key))
    labels = row_labels([r.entry for r in ranked] + partial)
    rows = [TableRow(r.entry, label, r, links.get(id(r.entry), ())) for r, label in zip(ranked, labels)]
    apart = [TableRow(e, label, None, links.get(id(e), ())) for e, label in zip(partial, labels[len(ranked) :])]
    board = Board(spec, rows, apart, _scenarios_of(spec.entries))
    name, slug = spec.title, spec.slug
    if rows:
        board.figures.append(
            _figure(
                out,
                f"figures/{slug}-overall.svg",
                figures.overall_accuracy(ranked, labels[: len(ranked)]),
                f"Dot plot of overall accuracy with 95 % confidence intervals for the {len(rows)} ranked rows of {name}; the table above has the same numbers.",
                "Overall accuracy of the ranked rows, 95 % CI as bars. Circles: measured; open squares: reported (dashed bars: approximate CI).",
            )
        )
    with_scen = [k for k, r in enumerate(ranked) if r.entry.scenarios]
    if with_scen:
        board.figures.append(
            _figure(
                out,
                f"figures/{slug}-scenarios.svg",
                figures.scenario_heatmap(
                    [ranked[k] for k in with_scen], [labels[k] for k in with_scen], board.scenarios
                ),
                f"Heatmap of per-scenario accuracy for {len(with_scen)} ranked rows of {name}; the table above has the same numbers.",
                "Accuracy per scenario (cividis scale, lighter is better). Rows without per-scenario numbers are left out.",
            )
        )
    paired = [r for r in rows if r.entry.pairs_path is not None]
    for r in paired:
        cache[id(r.entry)] = _load_outcomes(r.entry)
    if spec.key.sha is None:
        if len(paired) >= 2:
            board.pairwise_note = "No pairwise tests: these results do not record their annotation file."
    elif len(paired) >= 2:
        pair_labels = [r.label for r in paired]
        matrix = mcnemar_matrix([cache[id(r.entry)] for r in paired])
        board.pairwise = (pair_labels, matrix)
        board.pairwise_figure = _figure(
            out,
            f"figures/{slug}-mcnemar.svg",
            figures.mcnemar_figure(pair_labels, matrix),
            f"Matrix of exact McNemar p-values between {len(paired)} full runs on {name}; the table below has the same numbers.",
            "Exact McNemar test on the pairs both runs were scored on (same annotation file, matched by image and "
            "pair index). Darker cells: stronger evidence that the two differ. No multiple-comparison correction.",
        )
    return board


def _references(boards: list[Board], reported: Reported) -> list[tuple[str, tuple[str, ...]]]:
    """Citations numbered in the order the tables show them, then the condition tables'."""
    seen: list[str] = []
    for board in boards:
        for row in board.rows + board.partial:
            citation = row.entry.citation
            if row.entry.provenance == "reported" and citation and citation not in seen:
                seen.append(citation)
    seen += [t.citation for t in reported.tables if t.citation not in seen]
    return [(c, reported.caveats.get(c, ())) for c in seen]


def _render_site(
    out: Path, entries: list[Entry], reported: Reported, title: str, images, per_scenario: int, stamp: bool
) -> None:
    """Write every file of the site into the (empty) folder `out`."""
    for name in _STATIC:
        _write(out / name, resources.files("da2k.leaderboard").joinpath("assets", name).read_bytes())
    links = _copy_results(entries, out)
    cache: dict[int, dict[PairKey, PairRow]] = {}
    boards = [_make_board(spec, links, out, cache) for spec in split_boards(entries)]
    stamp_text = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if stamp else None
    has_gallery = False
    if images is not None:
        has_gallery = _build_gallery(out, Path(images), boards, cache, title, per_scenario, stamp_text)
    csv_text, json_text = downloads(boards, reported.tables)
    _write(out / "leaderboard.csv", csv_text)
    _write(out / "leaderboard.json", json_text)
    page = render_index(
        title, boards, reported.tables, _references(boards, reported), __version__, stamp_text, has_gallery
    )
    _write(out / "index.html", page)


def _open_benchmark(bench: Path):
    """The sha256 of `bench`'s annotation file, and a maker of JPEG thumbnails of its pairs
    (the one place the site reads the benchmark)."""
    benchmark = load_benchmark(bench)  # a folder or a zip, through the one archive reader
    return benchmark.annotations_sha256, lambda key: make_thumbnail(benchmark, key)


def _build_gallery(
    out: Path, bench: Path, boards: list[Board], cache: dict, title: str, per_scenario: int, stamp: str | None
) -> bool:
    """The hard pairs of the full runs scored on `bench`'s very annotation file (same sha256)."""
    sha, thumbnail = _open_benchmark(bench)
    board = next((b for b in boards if b.spec.key.sha == sha), None)
    paired = [r for r in board.rows if r.entry.pairs_path is not None] if board else []
    if not paired:
        log.warning("--images %s: no full run with a pairs file was scored on its annotations.json; no gallery", bench)
        return False
    hard = select_hard_pairs([r.label for r in paired], [cache[id(r.entry)] for r in paired], per_scenario)
    if not hard:
        log.info("no pair of %s was missed by half of the models: no hard-pairs gallery", board.spec.title)
        return False
    thumbs = {}
    for pairs in hard.values():
        for pair in pairs:
            jpeg = thumbnail(pair.key)
            _write(out / "thumbs" / thumb_name(pair.key), jpeg)
            with Image.open(out / "thumbs" / thumb_name(pair.key)) as img:
                thumbs[pair.key] = img.size
    board.hard_scenarios = set(hard)
    _write(out / "gallery.html", render_gallery(title, board.spec.title, hard, thumbs, __version__, stamp))
    return True
