"""Tables of the annotation store (SQLAlchemy 2.x ORM, portable constructs only).

Points are (row, col) pixels of the image decoded with EXIF orientation applied. Every
table that a re-run could write again carries a unique constraint, so repeating any step
never duplicates rows. Timestamps are naive UTC.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

SCHEMA_VERSION = 3
"""2: `presentations` (and skips, undo, display tokens) and unavailable images; 3: expert votes
without values (no answer). `upgrade.py` lifts older databases in place."""

PAIR_STATUSES = ("pending", "auto_agreed", "needs_human", "resolved", "discarded")
"""`pending`: proposed, expert votes not complete yet; the other four are the statuses of docs/design.md."""
PAIR_SOURCES = ("mined", "manual", "imported")
ANSWERS = ("point1", "point2")
HUMAN_ANSWERS = ("point1", "point2", "unsure")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class SchemaVersion(Base):
    """One row (id 1): the schema version this database was created with, for migrations."""

    __tablename__ = "schema_version"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Image(Base):
    __tablename__ = "images"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    root: Mapped[str] = mapped_column(Text)
    """Absolute folder `path` is relative to (the `--images` folder, or a benchmark root)."""
    path: Mapped[str] = mapped_column(Text)
    """POSIX path relative to `root`."""
    scenario: Mapped[str] = mapped_column(String(64), index=True)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(16), default="mined")
    points_method: Mapped[Optional[str]] = mapped_column(String(32), nullable=True)
    proposed_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime, nullable=True)
    """Set once candidate pairs are written (even when none fit), so proposals never repeat."""
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    unavailable: Mapped[Optional[str]] = mapped_column(Text, nullable=True)
    """Why the annotation app cannot show it (file missing, or its sha256 differs): its pairs
    leave every annotator's queue until a restart of the app finds the file again."""
    unavailable_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime, nullable=True)

    pairs: Mapped[list["Pair"]] = relationship(back_populates="image")


class Pair(Base):
    __tablename__ = "pairs"
    __table_args__ = (
        UniqueConstraint("image_id", "p1_row", "p1_col", "p2_row", "p2_col"),
        # Finds the few gold pairs among 100,000s without scanning (the annotation queue).
        Index("ix_pairs_gold_status", "is_gold", "status"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), index=True)
    p1_row: Mapped[int] = mapped_column(Integer)
    p1_col: Mapped[int] = mapped_column(Integer)
    p2_row: Mapped[int] = mapped_column(Integer)
    p2_col: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(16), default="mined")
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    relation: Mapped[Optional[str]] = mapped_column(String(16), nullable=True)
    """`within` or `across` segments (mined pairs), else null."""
    is_gold: Mapped[bool] = mapped_column(Boolean, default=False)
    """Audit/gold question: its `reference_answer` is known and it is shown to humans as QC."""
    reference_answer: Mapped[Optional[str]] = mapped_column(String(8), nullable=True)
    """The closer point as known before humans: experts' consensus, or an imported file."""
    answer: Mapped[Optional[str]] = mapped_column(String(8), nullable=True)
    """Final closer point: consensus for `auto_agreed`, the human majority for `resolved`."""
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    image: Mapped[Image] = relationship(back_populates="pairs")

    @property
    def point1(self) -> tuple[int, int]:
        return (self.p1_row, self.p1_col)

    @property
    def point2(self) -> tuple[int, int]:
        return (self.p2_row, self.p2_col)


class ExpertRun(Base):
    """One expert configuration; its votes are comparable only within the same run."""

    __tablename__ = "expert_runs"
    __table_args__ = (UniqueConstraint("spec", "checkpoint_sha256", "settings_sha256"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    spec: Mapped[str] = mapped_column(String(512))
    checkpoint_sha256: Mapped[str] = mapped_column(String(64), default="")
    """Empty when the expert has no checkpoint file (NULLs never collide in a UNIQUE index)."""
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    settings_sha256: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class ExpertImage(Base):
    """An expert has run on an image: it never runs there again."""

    __tablename__ = "expert_images"
    __table_args__ = (UniqueConstraint("image_id", "expert_run_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), index=True)
    expert_run_id: Mapped[int] = mapped_column(ForeignKey("expert_runs.id"))
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    """Wall time of the expert's prediction on this image."""
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class ExpertVote(Base):
    __tablename__ = "expert_votes"
    __table_args__ = (UniqueConstraint("pair_id", "expert_run_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pair_id: Mapped[int] = mapped_column(ForeignKey("pairs.id"), index=True)
    expert_run_id: Mapped[int] = mapped_column(ForeignKey("expert_runs.id"))
    value1: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    """Disparity-like value (larger = closer) at point1; null where the output was not finite."""
    value2: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    closer: Mapped[str] = mapped_column(String(8))
    """`point1`, `point2`, `tie` or `none` (no answer: a value was not finite)."""
    margin: Mapped[float] = mapped_column(Float)
    """|value1 - value2| relative to the expert's disparity range on the image (2nd-98th pct)."""


class HumanVote(Base):
    __tablename__ = "human_votes"
    __table_args__ = (
        UniqueConstraint("pair_id", "annotator"),
        Index("ix_human_votes_annotator_time", "annotator", "created_at"),  # one person's answers today
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pair_id: Mapped[int] = mapped_column(ForeignKey("pairs.id"), index=True)
    annotator: Mapped[str] = mapped_column(String(128))
    answer: Mapped[str] = mapped_column(String(8))
    """`point1`, `point2` (in the stored pair's order, whatever was shown) or `unsure`."""
    swapped: Mapped[bool] = mapped_column(Boolean, default=False)
    """A/B presentation order: True when point2 was shown as A."""
    seconds: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Claim(Base):
    """A pair reserved for one annotator until `expires_at`; an expired claim can be taken."""

    __tablename__ = "claims"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pair_id: Mapped[int] = mapped_column(ForeignKey("pairs.id"), unique=True)
    annotator: Mapped[str] = mapped_column(String(128))
    claimed_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime, index=True)


class Review(Base):
    """A reviewer's decision on a pair (`point1`, `point2` or `discard`), overriding votes."""

    __tablename__ = "reviews"
    __table_args__ = (UniqueConstraint("pair_id", "reviewer", "created_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pair_id: Mapped[int] = mapped_column(ForeignKey("pairs.id"), index=True)
    reviewer: Mapped[str] = mapped_column(String(128))
    decision: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class AuditEvent(Base):
    """Append-only trail: who changed what (status changes, votes, reviews, imports, merges)."""

    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    pair_id: Mapped[Optional[int]] = mapped_column(ForeignKey("pairs.id"), nullable=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Presentation(Base):
    """One pair shown to one annotator: the A/B order drawn when it was first shown, the
    display it is on now (`token`, `shown_at`), and how it ended (answered or skipped).

    Unique per (pair, annotator): a person is shown a pair once; only undo shows it again.
    """

    __tablename__ = "presentations"
    __table_args__ = (
        UniqueConstraint("pair_id", "annotator"),
        Index("ix_presentations_annotator_pair", "annotator", "pair_id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pair_id: Mapped[int] = mapped_column(ForeignKey("pairs.id"))
    annotator: Mapped[str] = mapped_column(String(128))
    swapped: Mapped[bool] = mapped_column(Boolean, default=False)
    """True when point2 is shown as A."""
    gold: Mapped[bool] = mapped_column(Boolean, default=False)
    """Served as a gold question (counts toward the annotator's gold rate)."""
    counted: Mapped[bool] = mapped_column(Boolean, default=True)
    """False for a settled gold pair: the answer is a quality check, not a vote."""
    shown_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    """When the current display began (seconds spent are counted from here)."""
    answered_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime, nullable=True)
    token: Mapped[Optional[str]] = mapped_column(String(32), nullable=True)
    """Names the current display: an answer must carry it, so one given to anything else
    (an older window, a pair replaced meanwhile) is refused."""
    skipped_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime, nullable=True)
    """Set by a neutral skip: the pair went back to the pool without a vote."""
    reopened_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime, nullable=True)
    """Set by undo: the annotator took their answer back and owes a new one, so the pair
    stays theirs to answer even if their claim on it lapses."""
