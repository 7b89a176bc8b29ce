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
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import create_engine, event, select
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session

from da2k.errors import Da2kError
from da2k.store.schema import SCHEMA_VERSION, Base, Image, SchemaVersion
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


SQLITE_HEADER = b"SQLite format 3\x00"
_DRIVER_HINTS = {
    "postgresql": "pip install 'da2k[postgres]' and write postgresql+psycopg://user@host/db",
    "mysql": "pip install pymysql and write mysql+pymysql://user@host/db",
    "mariadb": "pip install pymysql and write mariadb+pymysql://user@host/db",
    "mssql": "pip install pyodbc (and an ODBC driver) and write mssql+pyodbc://...",
    "oracle": "pip install oracledb and write oracle+oracledb://...",
}


def _looks_like(head: bytes) -> str:
    """What a file that is not a SQLite database seems to be, for the error message."""
    for magic, what in (
        (b"\xff\xd8\xff", "a JPEG image"),
        (b"\x89PNG", "a PNG image"),
        (b"PK\x03\x04", "a zip archive"),
    ):
        if head.startswith(magic):
            return what
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "a binary file"
    return "a text file"


def check_sqlite_path(path: Path, *, create: bool) -> None:
    """Refuse, before anything is created, a SQLite path that cannot be an annotation database:
    a folder, a file of another kind, a missing file when `create` is False, a missing folder
    (never created: a typo in --db should not grow a directory tree)."""
    if path.is_dir():
        raise Da2kError(f"--db {path} is a folder, not a database file: pass a file path such as {path / DEFAULT_DB}")
    if path.exists():
        try:
            with open(path, "rb") as f:
                head = f.read(len(SQLITE_HEADER))
        except OSError as exc:
            raise Da2kError(f"cannot read the database {path}: {exc.strerror}") from None
        if head and head != SQLITE_HEADER:
            raise Da2kError(
                f"--db {path} is not a SQLite database (it looks like {_looks_like(head)}): pass a .db file"
            )
        if head and "schema_version" not in _sqlite_tables(path):
            raise Da2kError(f"--db {path} is a SQLite database of another program (no da2k tables): pass another file")
        return
    if not create:
        raise Da2kError(f"no annotation database at {path}: run `da2k mine` first or pass --db")
    if not path.parent.is_dir():
        raise Da2kError(f"cannot create the database {path}: the folder {path.parent} does not exist")


def _sqlite_tables(path: Path) -> set[str]:
    """Table names of an existing SQLite file, read without changing it or adding files beside
    it ({"schema_version"} when that cannot be told, so opening it reports the real problem).
    A database with a write-ahead log is in use by a writer: its newest tables may be in the
    log only, so it is not judged here."""
    if Path(f"{path}-wal").exists():
        return {"schema_version"}
    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?immutable=1", uri=True)) as conn:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error:
        return {"schema_version"}
    return tables or {"schema_version"}  # an empty database becomes ours


def check_driver(url: URL) -> None:
    """Refuse an unknown dialect or a missing driver with the install hint for that backend."""
    backend = url.get_backend_name()
    try:
        dialect = url.get_dialect()
        dialect.import_dbapi()
    except NoSuchModuleError:
        raise Da2kError(
            f"unknown database dialect {url.drivername!r}: pass a SQLite file path or a SQLAlchemy URL "
            "such as postgresql+psycopg://user@host/db"
        ) from None
    except ImportError as exc:
        hint = _DRIVER_HINTS.get(backend, f"install the {exc.name or url.drivername} package")
        raise Da2kError(f"the {url.drivername} driver is not installed ({exc.name}): {hint}") from None


def check_database(db: str | Path, *, create: bool = True) -> str:
    """The URL for `db` once it is known to be usable (see `check_sqlite_path`, `check_driver`);
    nothing is created on disk."""
    text = database_url(db)
    url = make_url(text)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        check_sqlite_path(Path(url.database).expanduser(), create=create)
    check_driver(url)
    return text


@contextlib.contextmanager
def open_store(db: str | Path, *, create: bool = True) -> Iterator["Store"]:
    """`Store(db)` for one command. A SQLite file this call created is removed again if the
    command fails before storing any image (a refused run leaves no empty database behind;
    work already stored is never removed)."""
    url = make_url(check_database(db, create=create))
    path = Path(url.database).expanduser() if url.get_backend_name() == "sqlite" and url.database else None
    new = path is not None and url.database != ":memory:" and not path.exists()
    store = Store(db, create=create)
    try:
        yield store
    except BaseException:
        empty = new and _holds_no_images(store)
        store.close()
        if empty:
            for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
                leftover.unlink(missing_ok=True)
        raise
    store.close()


def _holds_no_images(store: "Store") -> bool:
    try:
        with store.read() as s:
            return s.execute(select(Image.id).limit(1)).first() is None
    except DBAPIError:
        return False  # cannot tell: keep the file


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
        self.url = check_database(db, create=create)
        url = make_url(self.url)
        self.is_sqlite = url.get_backend_name() == "sqlite"
        self.engine = create_engine(self.url)
        if self.is_sqlite:
            _sqlite_settings(self.engine)
        self._writer = self.engine.execution_options(da2k_write=True)
        self._write_lock = threading.Lock()
        self._connect()
        self._prepare_schema()

    def _connect(self) -> None:
        """Fail at once, in one line, when the database cannot be reached or opened."""
        try:
            with self.engine.connect():
                pass
        except OperationalError as exc:
            self.engine.dispose()
            reason = (
                str(exc.orig or exc).strip().splitlines()[0] if str(exc.orig or exc).strip() else type(exc).__name__
            )
            where = self.engine.url.render_as_string(hide_password=True)
            raise Da2kError(f"cannot open the database {where}: {reason}") from None

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
