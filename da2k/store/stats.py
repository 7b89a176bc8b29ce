"""`da2k stats`: what the store holds, how the experts agree, how far the humans got, and
which images the annotation app found missing or changed."""

from __future__ import annotations

import collections
import itertools
import math
import warnings
from typing import Any, Optional

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from da2k.store.core import Store
from da2k.store.schema import PAIR_STATUSES, ExpertImage, ExpertRun, ExpertVote, HumanVote, Image, Pair


def cohen_kappa(a: list[str], b: list[str]) -> Optional[float]:
    """Cohen's kappa (scikit-learn); None where undefined (both raters constant)."""
    from sklearn.metrics import cohen_kappa_score

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = float(cohen_kappa_score(a, b))
    return None if math.isnan(value) else value


def expert_labels(runs: list[ExpertRun]) -> dict[int, str]:
    """A readable unique name per expert run: its spec, where specs repeat with the start of
    its checkpoint hash (`vit-tiny@3f2a1c0d`), else its row id (`vits#2`)."""
    specs = collections.Counter(run.spec for run in runs)
    tagged = collections.Counter((run.spec, run.checkpoint_sha256[:8]) for run in runs)
    labels = {}
    for run in runs:
        if specs[run.spec] == 1:
            labels[run.id] = run.spec
        elif run.checkpoint_sha256 and tagged[(run.spec, run.checkpoint_sha256[:8])] == 1:
            labels[run.id] = f"{run.spec}@{run.checkpoint_sha256[:8]}"
        else:
            labels[run.id] = f"{run.spec}#{run.id}"
    return labels


def agreement(store: Store) -> list[dict[str, Any]]:
    """For every two experts: pairs both voted on, share of identical answers, Cohen's kappa."""
    with store.read() as s:
        runs = list(s.scalars(select(ExpertRun).order_by(ExpertRun.id)))
        answers: dict[int, dict[int, str]] = collections.defaultdict(dict)
        for pair_id, run_id, closer in s.execute(
            select(ExpertVote.pair_id, ExpertVote.expert_run_id, ExpertVote.closer)
        ):
            answers[run_id][pair_id] = closer
    labels = expert_labels(runs)
    rows = []
    for a, b in itertools.combinations([run.id for run in runs], 2):
        shared = sorted(answers[a].keys() & answers[b].keys())
        la, lb = [answers[a][p] for p in shared], [answers[b][p] for p in shared]
        rows.append(
            {
                "a": labels[a],
                "b": labels[b],
                "pairs": len(shared),
                "agreement": sum(x == y for x, y in zip(la, lb)) / len(shared) if shared else None,
                "kappa": cohen_kappa(la, lb) if shared else None,
            }
        )
    return rows


def _unavailable(s: Session) -> tuple[list[dict[str, Any]], int]:
    """Images the annotation app found missing or changed, and the waiting pairs they hold back."""
    images = [
        {"path": im.path, "root": im.root, "reason": im.unavailable, "since": str(im.unavailable_at)[:19]}
        for im in s.scalars(select(Image).where(Image.unavailable.is_not(None)).order_by(Image.id))
    ]
    held_back = select(func.count()).select_from(Pair).join(Image, Pair.image_id == Image.id)
    held_back = held_back.where(Image.unavailable.is_not(None), Pair.status == "needs_human")
    return images, s.scalar(held_back) or 0


def store_stats(store: Store) -> dict[str, Any]:
    """Everything `da2k stats` prints, as JSON-ready data."""
    with store.read() as s:
        images_by_scenario = dict(s.execute(select(Image.scenario, func.count()).group_by(Image.scenario)).all())
        by_status_scenario: dict[str, dict[str, int]] = collections.defaultdict(dict)
        for scenario, status, n in s.execute(
            select(Image.scenario, Pair.status, func.count())
            .join(Image, Pair.image_id == Image.id)
            .group_by(Image.scenario, Pair.status)
        ):
            by_status_scenario[scenario][status] = n
        by_source = dict(s.execute(select(Pair.source, func.count()).group_by(Pair.source)).all())
        gold = s.scalar(select(func.count()).select_from(Pair).where(Pair.is_gold)) or 0
        runs = list(s.scalars(select(ExpertRun).order_by(ExpertRun.id)))
        per_image_run = select(ExpertImage.expert_run_id, func.count(), func.sum(ExpertImage.seconds))
        run_images, run_seconds = {}, {}
        for run_id, n, seconds in s.execute(per_image_run.group_by(ExpertImage.expert_run_id)):
            run_images[run_id], run_seconds[run_id] = n, seconds
        per_vote_run = select(ExpertVote.expert_run_id, func.count()).group_by(ExpertVote.expert_run_id)
        run_votes = dict(s.execute(per_vote_run).all())
        run_no_answer = dict(s.execute(per_vote_run.where(ExpertVote.closer == "none")).all())
        human = s.execute(
            select(HumanVote.annotator, HumanVote.answer, Pair.is_gold, Pair.reference_answer, HumanVote.seconds).join(
                Pair, HumanVote.pair_id == Pair.id
            )
        ).all()
        voted_pairs = s.scalar(select(func.count(func.distinct(HumanVote.pair_id)))) or 0
        unavailable, unavailable_pairs = _unavailable(s)
    by_status = {status: sum(row.get(status, 0) for row in by_status_scenario.values()) for status in PAIR_STATUSES}
    annotators: dict[str, dict[str, Any]] = {}
    for name, answer, is_gold, reference, seconds in human:
        entry = annotators.setdefault(name, {"votes": 0, "unsure": 0, "gold": 0, "gold_correct": 0, "seconds": 0.0})
        entry["votes"] += 1
        entry["unsure"] += answer == "unsure"
        entry["seconds"] += seconds or 0.0
        if is_gold and reference is not None:
            entry["gold"] += 1
            entry["gold_correct"] += answer == reference
    for entry in annotators.values():
        entry["gold_accuracy"] = entry["gold_correct"] / entry["gold"] if entry["gold"] else None
    labels = expert_labels(runs)
    return {
        "database": store.engine.url.render_as_string(hide_password=True),
        "schema_version": store.schema_version,
        "images": {
            "total": sum(images_by_scenario.values()),
            "by_scenario": dict(sorted(images_by_scenario.items())),
            "unavailable": unavailable,
            "unavailable_waiting_pairs": unavailable_pairs,
        },
        "pairs": {
            "total": sum(by_status.values()),
            "by_status": by_status,
            "by_scenario": {k: dict(sorted(v.items())) for k, v in sorted(by_status_scenario.items())},
            "by_source": by_source,
            "gold": gold,
        },
        "experts": [
            {
                "name": labels[run.id],
                "kind": run.kind,
                "checkpoint_sha256": run.checkpoint_sha256 or None,
                "images": run_images.get(run.id, 0),
                "votes": run_votes.get(run.id, 0),
                "no_answer": run_no_answer.get(run.id, 0),
                "seconds": float(run_seconds.get(run.id) or 0.0),
            }
            for run in runs
        ],
        "agreement": agreement(store),
        "humans": {
            "needs_human": by_status["needs_human"],
            "pairs_with_votes": voted_pairs,
            "votes": len(human),
            "resolved": by_status["resolved"],
            "annotators": dict(sorted(annotators.items())),
        },
    }


def format_stats(stats: dict[str, Any]) -> str:
    """The human-readable form of `store_stats`."""
    lines = [f"database {stats['database']} (schema v{stats['schema_version']})"]
    images = stats["images"]
    lines.append(f"images: {images['total']}  " + "  ".join(f"{k}={v}" for k, v in images["by_scenario"].items()))
    if images["unavailable"]:
        lines.append(
            f"images the annotation app cannot show: {len(images['unavailable'])} "
            f"({images['unavailable_waiting_pairs']} waiting pairs held back until the files are back)"
        )
        for im in images["unavailable"][:20]:
            lines.append(f"  {im['path']}: {im['reason']} (since {im['since']})")
    pairs = stats["pairs"]
    lines.append(
        f"pairs: {pairs['total']} (gold {pairs['gold']})  "
        + "  ".join(f"{k}={v}" for k, v in pairs["by_status"].items())
    )
    for scenario, row in pairs["by_scenario"].items():
        lines.append(f"  {scenario:<24} " + "  ".join(f"{k}={v}" for k, v in row.items()))
    if stats["experts"]:
        lines.append("experts:")
        for e in stats["experts"]:
            no_answer = f", {e['no_answer']} without an answer (not finite)" if e.get("no_answer") else ""
            lines.append(
                f"  {e['name']}  ({e['kind']}, {e['images']} images, {e['votes']} votes{no_answer}, "
                f"{e['seconds']:.1f} s)"
            )
    if stats["agreement"]:
        lines.append("expert agreement (pairs, agreement, Cohen's kappa):")
        for row in stats["agreement"]:
            agree = "-" if row["agreement"] is None else f"{row['agreement']:.3f}"
            kappa = "-" if row["kappa"] is None else f"{row['kappa']:.3f}"
            lines.append(f"  {row['a']}  vs  {row['b']}: {row['pairs']}, {agree}, {kappa}")
    humans = stats["humans"]
    lines.append(
        f"humans: {humans['votes']} votes on {humans['pairs_with_votes']} pairs; "
        f"{humans['needs_human']} pairs wait, {humans['resolved']} resolved"
    )
    for name, entry in humans["annotators"].items():
        gold = "-" if entry["gold_accuracy"] is None else f"{entry['gold_accuracy']:.2f}"
        lines.append(
            f"  {name}: {entry['votes']} votes, {entry['unsure']} unsure, gold accuracy {gold} ({entry['gold']})"
        )
    return "\n".join(lines)
