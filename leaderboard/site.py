"""`build_site`: result files (+ reported paper numbers, + benchmark images) -> a static site.

Output is deterministic (sorted inputs, fixed figure metadata, no clock unless `stamp`) and
self-contained: HTML, one CSS and one JS file, PNG figures, JPEG thumbnails and copies of the
result files it shows, all linked relatively so it works from `file://` or any static host.
"""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import tempfile
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

from PIL import Image

from da2k import __version__
from da2k.benchmark import SCENARIOS
from da2k.errors import Da2kError
from da2k.leaderboard import figures
from da2k.leaderboard.gallery import load_annotations, make_thumbnail, select_hard_pairs, thumb_name
from da2k.leaderboard.paper import load_paper_tables
from da2k.leaderboard.ranking import mcnemar_matrix, rank_entries
from da2k.leaderboard.render import Board, FigureView, render_gallery, render_index
from da2k.leaderboard.results import Entry, find_result_files, load_result
from da2k.results import PairKey, PairRow, read_pairs

log = logging.getLogger(__name__)

MARKER = ".da2k-leaderboard"
_STATIC = ("style.css", "sort.js")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "benchmark"


def row_labels(entries: list[Entry]) -> list[str]:
    """Short unique labels for figures: the model name, "(reported)" for paper rows, "#k" for repeats."""
    labels, seen = [], {}
    for e in entries:
        base = e.name if e.provenance == "measured" else f"{e.name} (reported)"
        seen[base] = seen.get(base, 0) + 1
        labels.append(base if seen[base] == 1 else f"{base} #{seen[base]}")
    return labels


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


def _copy_results(entries: list[Entry], out: Path) -> dict[int, list[tuple[str, str]]]:
    """Copy each result JSON (and its pairs file, same relative layout) under `results/`."""
    links: dict[int, list[tuple[str, str]]] = {}
    used: set[str] = set()
    for i, e in enumerate(entries):
        if e.source is None:
            continue
        files = [(e.source, Path(e.source.name))]
        if e.pairs_path is not None:
            files.append((e.pairs_path, e.pairs_path.relative_to(e.source.parent)))
        prefix = Path("results")
        k = 1
        while any((prefix / rel).as_posix() in used for _, rel in files):
            k += 1
            prefix = Path("results") / str(k)
        hrefs = []
        for src, rel in files:
            dst = prefix / rel
            used.add(dst.as_posix())
            _write(out / dst, src.read_bytes())
            hrefs.append(dst.as_posix())
        links[i] = [("result JSON", hrefs[0])] + ([("pairs CSV", hrefs[1])] if len(hrefs) > 1 else [])
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


def _figure(out: Path, rel: str, png: bytes, alt: str, caption: str) -> FigureView:
    _write(out / rel, png)
    with Image.open(io.BytesIO(png)) as img:
        width, height = img.size
    return FigureView(rel, alt, caption, width, height)


def _scenarios_of(entries: list[Entry]) -> list[str]:
    present = set().union(*(e.scenarios.keys() for e in entries))
    return [s for s in SCENARIOS if s in present] + sorted(present - set(SCENARIOS))


def build_site(
    inputs: list[str | Path],
    out: str | Path,
    *,
    title: str = "DA-2K leaderboard",
    reported: str | Path | None = None,
    include_reported: bool = True,
    images: str | Path | None = None,
    hard_pairs_per_scenario: int = 6,
    stamp: bool = False,
) -> Path:
    """Build the site into `out` and return the path of its `index.html`.

    `inputs`: result JSON files or folders of them. `reported`: a da2k_paper_tables.json-like
    file (default: the packaged DA-2K paper tables; `include_reported=False` leaves them out).
    `images`: a DA-2K-format benchmark folder, for the hard-pairs gallery.
    """
    entries = [load_result(p) for p in find_result_files(inputs)]
    if include_reported:
        entries += load_paper_tables(reported)
    if not entries:
        raise Da2kError("no results to show: pass result JSON files or folders (or keep the reported paper rows)")
    entries.sort(key=lambda e: e.sort_key)
    out = Path(out)
    _check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
    try:
        _render_site(tmp, entries, title, images, hard_pairs_per_scenario, stamp)
        _swap_in(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out / "index.html"


def _render_site(
    out: Path, entries: list[Entry], title: str, images: str | Path | None, per_scenario: int, stamp: bool
) -> None:
    """Write every file of the site into the (empty) folder `out`."""
    for name in _STATIC:
        _write(out / name, resources.files("da2k.leaderboard").joinpath("assets", name).read_bytes())

    links = _copy_results(entries, out)
    index_of = {id(e): i for i, e in enumerate(entries)}
    benchmarks = sorted({e.benchmark for e in entries}, key=lambda b: (b != "DA-2K", b))
    outcomes_cache: dict[int, dict[PairKey, PairRow]] = {}
    boards, slugs = [], set()
    for bench in benchmarks:
        rows = rank_entries([e for e in entries if e.benchmark == bench])
        slug = _slug(bench)
        while slug in slugs:
            slug += "-x"
        slugs.add(slug)
        labels = row_labels([r.entry for r in rows])
        board = Board(bench, slug, rows, labels, _scenarios_of([r.entry for r in rows]))
        board.links = {k: links[index_of[id(r.entry)]] for k, r in enumerate(rows) if index_of[id(r.entry)] in links}
        with_scen = [k for k, r in enumerate(rows) if r.entry.scenarios]
        board.figures.append(
            _figure(
                out,
                f"figures/{slug}-overall.png",
                figures.overall_accuracy(rows, labels),
                f"Dot plot of overall accuracy with 95 % confidence intervals for {len(rows)} rows of {bench}; the table above has the same numbers.",
                "Overall accuracy, 95 % CI as bars. Circles: measured; open squares: reported (dashed bars: approximate CI).",
            )
        )
        if with_scen:
            board.figures.append(
                _figure(
                    out,
                    f"figures/{slug}-scenarios.png",
                    figures.scenario_heatmap(
                        [rows[k] for k in with_scen], [labels[k] for k in with_scen], board.scenarios
                    ),
                    f"Heatmap of per-scenario accuracy for {len(with_scen)} rows of {bench}; the table above has the same numbers.",
                    "Accuracy per scenario (cividis scale, lighter is better). Rows without per-scenario numbers are left out.",
                )
            )
        paired = [k for k, r in enumerate(rows) if r.entry.pairs_path is not None]
        for k in paired:
            outcomes_cache[id(rows[k].entry)] = _load_outcomes(rows[k].entry)
        if len(paired) >= 2:
            pair_labels = [labels[k] for k in paired]
            matrix = mcnemar_matrix([outcomes_cache[id(rows[k].entry)] for k in paired])
            board.pairwise = (pair_labels, matrix)
            board.pairwise_figure = _figure(
                out,
                f"figures/{slug}-mcnemar.png",
                figures.mcnemar_figure(pair_labels, matrix),
                f"Matrix of exact McNemar p-values between {len(paired)} measured models of {bench}; the table below has the same numbers.",
                "Exact McNemar test on the pairs both models were scored on (matched by image and pair index). "
                "Darker cells: stronger evidence that the two models differ. No multiple-comparison correction.",
            )
        boards.append(board)

    has_gallery = False
    if images is not None:
        has_gallery = _build_gallery(out, Path(images), boards, outcomes_cache, title, per_scenario, stamp)

    references = []  # numbered in the order the table shows them
    for board in boards:
        for row in board.rows:
            e = row.entry
            if e.provenance == "reported" and e.citation and e.citation not in references:
                references.append(e.citation)
    stamp_text = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if stamp else None
    _write(out / "index.html", render_index(title, boards, references, __version__, stamp_text, has_gallery))


def _build_gallery(
    out: Path, bench: Path, boards: list[Board], outcomes_cache: dict, title: str, per_scenario: int, stamp: bool
) -> bool:
    annotations, sha = load_annotations(bench)
    for board in boards:
        paired = [
            (label, row.entry)
            for label, row in zip(board.labels, board.rows)
            if row.entry.pairs_path is not None and row.entry.details.get("annotations_sha256", sha) == sha
        ]
        if not paired:
            continue
        hard = select_hard_pairs(
            [loaded for loaded, _ in paired], [outcomes_cache[id(e)] for _, e in paired], per_scenario
        )
        if not hard:
            log.info("no pair of %s was missed by any model: no hard-pairs gallery", board.benchmark)
            return False
        thumbs = {}
        for pairs in hard.values():
            for pair in pairs:
                jpeg = make_thumbnail(bench, annotations, pair.key)
                _write(out / "thumbs" / thumb_name(pair.key), jpeg)
                with Image.open(io.BytesIO(jpeg)) as img:
                    thumbs[pair.key] = img.size
        board.hard_scenarios = set(hard)
        stamp_text = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if stamp else None
        _write(out / "gallery.html", render_gallery(title, board.benchmark, hard, thumbs, __version__, stamp_text))
        return True
    log.warning("--images %s: no result with a pairs file matches its annotations.json; no gallery", bench)
    return False
