"""The annotation store: images, candidate pairs, expert and human votes, audit trail.

`Store(db)` opens (and creates, or upgrades in place) the database; the operations used by
the miner, `da2k stats/export/import-benchmark/store merge` and the annotation app are plain
functions taking a `Store`. The annotation app's API is `da2k.store.annotate`.
"""

from da2k.store.core import DEFAULT_DB, Store, check_database, database_url, open_store
from da2k.store.schema import (
    ANSWERS,
    HUMAN_ANSWERS,
    PAIR_SOURCES,
    PAIR_STATUSES,
    SCHEMA_VERSION,
    AuditEvent,
    Claim,
    ExpertImage,
    ExpertRun,
    ExpertVote,
    HumanVote,
    Image,
    Pair,
    Presentation,
    Review,
    SchemaVersion,
)

__all__ = [
    "ANSWERS",
    "AuditEvent",
    "Claim",
    "DEFAULT_DB",
    "ExpertImage",
    "ExpertRun",
    "ExpertVote",
    "HUMAN_ANSWERS",
    "HumanVote",
    "Image",
    "PAIR_SOURCES",
    "PAIR_STATUSES",
    "Pair",
    "Presentation",
    "Review",
    "SCHEMA_VERSION",
    "SchemaVersion",
    "Store",
    "check_database",
    "database_url",
    "open_store",
]
