"""Leaderboard figures as deterministic SVG bytes (matplotlib, no pyplot state).

SVG keeps them sharp on any screen, and model names stay text (`svg.fonttype: none`), never
parsed as mathtext (`text.parse_math: False`: a name with `$` in it is just a name).
Determinism: a fixed style, a fixed hash salt for the SVG ids, no date or creator metadata,
inputs in a fixed order.
Palette: cividis/viridis for colour scales and Okabe-Ito blue/vermillion plus distinct marker
shapes for measured vs reported, so nothing relies on red/green.
"""

from __future__ import annotations

import io
import math
import re

import matplotlib
import matplotlib.ticker
import numpy as np
from matplotlib.figure import Figure

from da2k.leaderboard.names import scenario_label
from da2k.leaderboard.ranking import PairwiseTest, Ranked

MEASURED_COLOUR = "#0072B2"  # Okabe-Ito blue
REPORTED_COLOUR = "#D55E00"  # Okabe-Ito vermillion
_STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "svg.hashsalt": "da2k-leaderboard",
    "svg.fonttype": "none",
    "text.parse_math": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
_METADATA = {"Date": None, "Creator": None, "Format": None, "Type": None}


def _svg(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata=_METADATA)
    return buf.getvalue()


def svg_size(svg: bytes) -> tuple[int, int]:
    """(width, height) in CSS pixels of a matplotlib SVG (its size is given in points)."""
    head = svg[: svg.index(b">", svg.index(b"<svg")) + 1].decode()
    width, height = (float(re.search(rf'{k}="([0-9.]+)pt"', head).group(1)) for k in ("width", "height"))
    return round(width * 4 / 3), round(height * 4 / 3)


def _text_colour(cmap, value: float) -> str:
    r, g, b, _ = cmap(value)
    return "black" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.45 else "white"


def _cells(ax, values: np.ndarray, cmap, vmin: float, vmax: float):
    """A matrix of coloured cells as vectors (imshow would embed a raster), centred on integer
    coordinates with row 0 at the top, as `imshow` draws it."""
    rows, cols = values.shape
    mesh = ax.pcolormesh(
        np.arange(cols + 1) - 0.5,
        np.arange(rows + 1) - 0.5,
        np.ma.masked_invalid(values),
        cmap=cmap,
        vmin=vmin,
        vmax=vmax,
        edgecolors="face",  # no seams between cells
    )
    ax.set_xlim(-0.5, cols - 0.5)
    ax.set_ylim(rows - 0.5, -0.5)
    return mesh


def scenario_heatmap(rows: list[Ranked], labels: list[str], scenarios: list[str]) -> bytes:
    """Models (rows, display order) x scenarios, accuracy in %, missing cells grey."""
    values = np.array(
        [[r.entry.scenarios[s].accuracy if s in r.entry.scenarios else np.nan for s in scenarios] for r in rows]
    )
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(1.0 + 0.9 * len(scenarios), 1.0 + 0.38 * len(rows)))
        ax = fig.add_subplot()
        cmap = matplotlib.colormaps["cividis"].with_extremes(bad="#e6e6e6")
        finite = values[np.isfinite(values)]
        vmin = math.floor(float(finite.min()) * 20) / 20 if finite.size else 0.0
        vmin = min(vmin, 0.95)
        image = _cells(ax, values, cmap, vmin, 1.0)
        ax.set_xticks(range(len(scenarios)), [scenario_label(s) for s in scenarios], rotation=35, ha="right")
        ax.set_yticks(range(len(rows)), labels)
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v):
                norm = (v - vmin) / (1.0 - vmin) if vmin < 1.0 else 1.0
                ax.text(j, i, f"{100 * v:.1f}", ha="center", va="center", fontsize=8, color=_text_colour(cmap, norm))
            else:
                ax.text(j, i, "–", ha="center", va="center", fontsize=8, color="#555555")
        ax.spines[:].set_visible(False)
        bar = fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
        bar.solids.set_rasterized(False)  # matplotlib rasterises long colour bars; keep it vector
        bar.solids.set_edgecolor("face")  # no seams between the bar's vector steps
        bar.set_label("accuracy")
        bar.ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(xmax=1.0, decimals=0))
        ax.set_title("Accuracy per scenario (%); grey: not available")
        return _svg(fig)


def overall_accuracy(rows: list[Ranked], labels: list[str]) -> bytes:
    """Overall accuracy with 95 % CI per row; dashed bars are approximate (reported) CIs."""
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(7.0, 1.0 + 0.38 * len(rows)))
        ax = fig.add_subplot()
        seen = set()
        for y, row in enumerate(rows):
            score = row.entry.overall
            measured = row.entry.provenance == "measured"
            colour = MEASURED_COLOUR if measured else REPORTED_COLOUR
            kind = "measured" if measured else "reported"
            label = None if kind in seen else kind
            seen.add(kind)
            x = 100 * score.accuracy
            err = None
            if score.ci95 is not None:
                err = [[max(0.0, x - 100 * score.ci95[0])], [max(0.0, 100 * score.ci95[1] - x)]]  # float noise
            bars = ax.errorbar(
                [x],
                [y],
                xerr=err,
                fmt="o" if measured else "s",
                color=colour,
                capsize=3,
                markerfacecolor=colour if measured else "white",
                markersize=6,
                label=label,
            )
            if score.ci_approx and err is not None:
                for line in bars.lines[2]:
                    line.set_linestyle("--")
        ax.set_yticks(range(len(rows)), labels)
        ax.invert_yaxis()
        label = "overall accuracy (%), 95 % CI"
        if any(r.entry.overall.ci_approx for r in rows):
            label += "; dashed: approximate (reported numbers have no pair counts)"
        ax.set_xlabel(label)
        ax.grid(axis="x", color="#dddddd", linewidth=0.6)
        ax.set_axisbelow(True)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        ax.set_title("Overall accuracy")
        return _svg(fig)


def mcnemar_figure(labels: list[str], matrix: list[list[PairwiseTest]]) -> bytes:
    """Pairwise exact McNemar p-values on common pairs; darker = stronger evidence of a difference."""
    k = len(labels)
    strength = np.full((k, k), np.nan)
    for i in range(k):
        for j in range(k):
            p = matrix[i][j].p_value
            if i != j and p is not None:
                strength[i, j] = min(-math.log10(max(p, 1e-12)), 6.0)
    with matplotlib.rc_context(_STYLE):
        size = 2.0 + 0.7 * k
        fig = Figure(figsize=(size + 1.5, size))
        ax = fig.add_subplot()
        cmap = matplotlib.colormaps["viridis_r"].with_extremes(bad="#f2f2f2")
        image = _cells(ax, strength, cmap, 0.0, 6.0)
        ax.set_aspect("equal")
        ax.set_xticks(range(k), labels, rotation=35, ha="right")
        ax.set_yticks(range(k), labels)
        for i in range(k):
            for j in range(k):
                test = matrix[i][j]
                if i == j or test.p_value is None:
                    continue
                text = f"p={test.p_value:.2g}\n{test.a_only}:{test.b_only}"
                ax.text(
                    j, i, text, ha="center", va="center", fontsize=7, color=_text_colour(cmap, strength[i, j] / 6.0)
                )
        ax.spines[:].set_visible(False)
        bar = fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
        bar.solids.set_rasterized(False)  # matplotlib rasterises long colour bars; keep it vector
        bar.solids.set_edgecolor("face")  # no seams between the bar's vector steps
        bar.set_label("−log10 p (capped at 6)")
        ax.set_title("Exact McNemar test on common pairs\n(cell: p, then row-only right : column-only right)")
        return _svg(fig)
