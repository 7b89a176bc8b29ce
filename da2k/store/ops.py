"""Small store operations shared by the miner, import, merge and the annotation app."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Optional

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


def image_by_sha(session: Session, sha256: str) -> Optional[Image]:
    return session.scalar(select(Image).where(Image.sha256 == sha256))
