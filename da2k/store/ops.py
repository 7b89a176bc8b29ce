"""Small store operations shared by the miner, import, merge and the annotation app."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Optional, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from da2k.store.core import Store
from da2k.store.schema import AuditEvent, ExpertRun, Image


def settings_sha256(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


def expert_run_id(
    store: Store, spec: str, checkpoint_sha256: Optional[str], settings: dict[str, Any], kind: str
) -> int:
    """The id of the (spec, checkpoint, settings) expert run, created on first use."""
    digest = settings_sha256(settings)
    checkpoint = checkpoint_sha256 or ""
    with store.write() as s:
        found = s.scalar(
            select(ExpertRun.id).where(
                ExpertRun.spec == spec,
                ExpertRun.checkpoint_sha256 == checkpoint,
                ExpertRun.settings_sha256 == digest,
            )
        )
        if found is not None:
            return found
        run = ExpertRun(spec=spec, checkpoint_sha256=checkpoint, settings=settings, settings_sha256=digest, kind=kind)
        s.add(run)
        s.flush()
        return run.id


def log_event(session: Session, actor: str, action: str, pair_id: Optional[int] = None, **detail: Any) -> None:
    session.add(AuditEvent(actor=actor, action=action, pair_id=pair_id, detail=detail))


def decide(votes: Sequence[tuple[str, float]], min_margin: float) -> tuple[str, Optional[str]]:
    """(status, consensus) from each expert's (closer, margin).

    `auto_agreed` iff every expert names the same closer point (a tie agrees with nothing)
    and every margin is at least `min_margin`; otherwise `needs_human`. The consensus is the
    shared answer when all agree (whatever the margins), else None.
    """
    answers = {closer for closer, _ in votes}
    consensus = next(iter(answers)) if len(answers) == 1 and "tie" not in answers and votes else None
    confident = all(margin >= min_margin for _, margin in votes)
    return ("auto_agreed" if consensus is not None and confident else "needs_human"), consensus


def audit_draw(seed: int, image_sha256: str, point1: Sequence[int], point2: Sequence[int]) -> float:
    """A uniform number in [0, 1) fixed by the seed and the pair: the same pairs are audited
    on every run, whatever the order, sharding or resumption."""
    text = f"{seed}:{image_sha256}:{point1[0]},{point1[1]}:{point2[0]},{point2[1]}"
    return int(hashlib.sha256(text.encode()).hexdigest()[:13], 16) / float(16**13)


def image_by_sha(session: Session, sha256: str) -> Optional[Image]:
    return session.scalar(select(Image).where(Image.sha256 == sha256))
