"""Row order, ranks with CI-aware ties, and pairwise McNemar tests."""

from __future__ import annotations

from dataclasses import dataclass

from da2k.leaderboard.results import Entry
from da2k.results import PairKey, PairRow, pair_up


@dataclass(frozen=True)
class Ranked:
    """An entry with its rank: 1 + the number of rows whose 95 % CI lies wholly above its own.

    `tied` is True when its CI overlaps another row's, i.e. the data do not order the two;
    the site prints such ranks as "≈N".
    """

    entry: Entry
    rank: int
    tied: bool


def _interval(entry: Entry) -> tuple[float, float]:
    ci = entry.overall.ci95
    return ci if ci is not None else (entry.overall.accuracy, entry.overall.accuracy)


def rank_entries(entries: list[Entry]) -> list[Ranked]:
    """Rank comparable rows (full runs and reported numbers of one annotation file) and return
    them in display order: overall accuracy, descending (measured first on equal accuracy).

    Partial runs are not comparable (each covers another subset) and must not be passed here.
    """
    if any(e.partial for e in entries):
        raise ValueError("partial runs are not ranked against full runs")
    intervals = [_interval(e) for e in entries]
    ranked = []
    for i, entry in enumerate(entries):
        lo_i, hi_i = intervals[i]
        better = sum(1 for j, (lo_j, _) in enumerate(intervals) if j != i and lo_j > hi_i)
        tied = any(j != i and lo_i <= hi_j and lo_j <= hi_i for j, (lo_j, hi_j) in enumerate(intervals))
        ranked.append(Ranked(entry, 1 + better, tied))
    return sorted(ranked, key=lambda r: (-r.entry.overall.accuracy, r.entry.provenance != "measured", r.entry.sort_key))


@dataclass(frozen=True)
class PairwiseTest:
    """Exact McNemar test of model a vs model b on the pairs both were scored on.

    `a_only` counts pairs a got right and b wrong, `b_only` the reverse.
    """

    n_common: int
    a_only: int
    b_only: int
    p_value: float | None


def mcnemar_matrix(outcomes: list[dict[PairKey, PairRow]]) -> list[list[PairwiseTest]]:
    """All-pairs exact McNemar tests, matching pairs on (image, pair_index)."""
    matrix = []
    for a in outcomes:
        row = []
        for b in outcomes:
            test, n_common = pair_up(a, b)
            row.append(PairwiseTest(n_common, test.b, test.c, float(test.p_value) if n_common else None))
        matrix.append(row)
    return matrix
