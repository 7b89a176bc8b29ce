"""Opening the annotation store: URL handling, SQLite settings, schema version.

SQLite (the default) runs in WAL mode with a busy timeout so the miner, the annotation app
and `da2k stats` can use one file at once: readers never block, writers wait their turn.
Write transactions start with `BEGIN IMMEDIATE` there, so a read-then-write transaction
takes the write lock up front instead of failing halfway when another writer got in first.
Within one process, SQLite writers also queue on the store's own lock (see `_writer_turn`).
An older database is upgraded in place when opened (`upgrade.py`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import create_engine, event, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.orm import Session

from da2k.errors import Da2kError
from da2k.store.schema import SCHEMA_VERSION, Base, SchemaVersion
from da2k.store.upgrade import upgrade

log = logging.getLogger(__name__)

DEFAULT_DB = "da2k.db"
BUSY_TIMEOUT_MS = 60_000


def database_url(db: str | Path) -> str:
    """A SQLAlchemy URL for `db`: URLs (`sqlite:///x.db`, `postgresql+psycopg://...`) pass
    through; anything else is a path to a SQLite file."""
    text = str(db)
    if "://" in text:
        try:
            make_url(text)
        except ArgumentError as exc:
            raise Da2kError(f"bad database URL {text!r}: {exc}") from None
        return text
    return f"sqlite:///{Path(text).expanduser().resolve()}"


def _sqlite_settings(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (the pysqlite driver's implicit
        # transactions would defer locking and skip BEGIN before DDL).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("da2k_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Store:
    """The annotation database. `read()` and `write()` give ORM sessions in a transaction.

    >>> store = Store("da2k.db")            # or "postgresql+psycopg://user@host/db"
    >>> with store.write() as s: s.add(...)  # committed on exit, rolled back on error
    """

    def __init__(self, db: str | Path = DEFAULT_DB, *, create: bool = True) -> None:
        self.url = database_url(db)
        url = make_url(self.url)
        self.is_sqlite = url.get_backend_name() == "sqlite"
        if self.is_sqlite and url.database and url.database != ":memory:":
            path = Path(url.database)
            if not create and not path.exists():
                raise Da2kError(f"no annotation database at {path}: run `da2k mine` first or pass --db")
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.engine = create_engine(self.url)
        except ModuleNotFoundError as exc:
            raise Da2kError(
                f"the driver for {url.drivername} is not installed ({exc.name}); "
                "for PostgreSQL: pip install 'da2k[postgres]'"
            ) from None
        if self.is_sqlite:
            _sqlite_settings(self.engine)
        self._writer = self.engine.execution_options(da2k_write=True)
        self._write_lock = threading.Lock()
        self._prepare_schema()

    def _prepare_schema(self) -> None:
        for attempt in range(5):
            try:
                with self._writer.begin() as conn:
                    Base.metadata.create_all(conn)
                    row = conn.execute(select(SchemaVersion.version)).scalar()
                    if row is None:
                        conn.execute(SchemaVersion.__table__.insert().values(id=1, version=SCHEMA_VERSION))
                        row = SCHEMA_VERSION
                    row = upgrade(conn, row)
                break
            except DBAPIError:
                # Two processes creating one fresh database at once: PostgreSQL has no BEGIN
                # IMMEDIATE, so one CREATE TABLE loses; the next attempt finds the tables.
                if attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))
        if row != SCHEMA_VERSION:
            raise Da2kError(
                f"annotation database {self.url} has schema version {row}, this da2k reads "
                f"version {SCHEMA_VERSION}: use a matching da2k version"
            )
        self.schema_version = row

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading (changes are rolled back)."""
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """A session in one write transaction: committed on exit, rolled back on error.
        Not re-entrant: a thread must not open a second write inside the first."""
        with self._writer_turn(), Session(self._writer, expire_on_commit=False) as session:
            with session.begin():
                yield session

    @contextlib.contextmanager
    def _writer_turn(self) -> Iterator[None]:
        """This process's SQLite writers queue on one lock before asking SQLite: its busy
        handler retries a locked file after sleeps of up to 100 ms, which a queue of app
        threads (one per annotator click) would otherwise pay on every collision. Other
        databases lock rows themselves."""
        if not self.is_sqlite:
            yield
            return
        with self._write_lock:
            yield

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.engine.url.render_as_string(hide_password=True)!r})"
