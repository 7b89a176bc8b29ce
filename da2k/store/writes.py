"""Writing while others write: retrying a busy database, and long jobs in short transactions.

An annotator's click is one short transaction; an import or a merge is many rows. Two rules
keep the click quick: long jobs commit in batches (`write_in_batches`, about 1,000 rows
each) and pause briefly between them on SQLite, whose busy handler would otherwise rarely
find the lock free, and a click that still meets a locked database tries again
(`retry_busy`) instead of losing the answer.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from da2k.store.core import Store

log = logging.getLogger(__name__)

T = TypeVar("T")
BATCH_ROWS = 1000
"""Rows per transaction of a long job: well under a second of holding the write lock."""
SQLITE_PAUSE_S = 0.1
"""Gap between a long job's SQLite transactions: SQLite's busy handler sleeps up to 100 ms
between tries, so a gap this long lets every waiting writer in."""
_BUSY_SQLSTATES = {"40001", "40P01", "55P03"}  # PostgreSQL: serialization failure, deadlock, lock not available


def is_busy(exc: BaseException) -> bool:
    """Did a transaction fail only because others held the database (worth trying again)?"""
    if not isinstance(exc, DBAPIError):
        return False
    if getattr(exc.orig, "sqlstate", None) in _BUSY_SQLSTATES:
        return True
    text = str(exc.orig).lower()
    return isinstance(exc, OperationalError) and ("database is locked" in text or "database is busy" in text)


def retry_busy(work: Callable[[], T], *, attempts: int = 6, wait_s: float = 0.25) -> T:
    """`work()` (one whole transaction), again after a pause while the database is busy.

    SQLite has already waited its busy timeout inside each attempt; PostgreSQL reports
    serialization failures and deadlocks at once. The last failure is raised.
    """
    for attempt in range(attempts):
        try:
            return work()
        except DBAPIError as exc:
            if not is_busy(exc) or attempt == attempts - 1:
                raise
            log.warning("database busy (%s); trying again", exc.orig)
            time.sleep(wait_s * (attempt + 1))
    raise AssertionError("unreachable")


def chunks(rows: Iterable[T], size: int = BATCH_ROWS) -> Iterator[list[T]]:
    """`rows` in lists of at most `size`."""
    chunk: list[T] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def write_in_batches(
    store: Store, batches: Iterable[Sequence[T]], write: Callable[[Session, Sequence[T]], None]
) -> None:
    """Call `write(session, batch)` for each batch in its own transaction, pausing between
    transactions on SQLite so concurrent writers (annotators) are never starved.

    Prepare each batch before its transaction starts (read files, hash, parse): the write
    lock should cover database work only.
    """
    for i, batch in enumerate(batches):
        if i and store.is_sqlite:
            time.sleep(SQLITE_PAUSE_S)
        with store.write() as session:
            write(session, batch)
