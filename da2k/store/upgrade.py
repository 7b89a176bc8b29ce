"""In-place upgrades of annotation databases made by earlier versions of da2k.

`Store` runs `upgrade` inside the transaction that opens the database (BEGIN IMMEDIATE on
SQLite, so two processes opening an old file at once upgrade it once). New tables come from
`create_all` before this runs; here, columns added to existing tables and indexes on them.
Portable DDL where it exists (`ALTER TABLE ... ADD COLUMN` of nullable columns, `CREATE
INDEX`, `ALTER COLUMN ... DROP NOT NULL`); SQLite, which cannot drop a NOT NULL, rebuilds the one
table concerned.
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection, Table, inspect, update

from da2k.store.schema import SCHEMA_VERSION, ExpertVote, HumanVote, Image, Pair, Presentation, SchemaVersion

log = logging.getLogger(__name__)

_ADDED_IN_2 = {
    Image.__table__: ("unavailable", "unavailable_at"),
    Presentation.__table__: ("token", "skipped_at", "reopened_at"),
}
"""Version 2: unavailable images; display tokens, skips and undo on presentations (the table
itself existed in version 1 only where the annotation app had been opened)."""


def _add_columns(conn: Connection, table: Table, names: tuple[str, ...]) -> None:
    have = {c["name"] for c in inspect(conn).get_columns(table.name)}
    for name in names:
        if name in have:
            continue
        column = table.c[name]
        kind = column.type.compile(dialect=conn.dialect)
        conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {name} {kind}")


_NULLABLE_IN_3 = ("value1", "value2")
"""Version 3: an expert vote's values may be null (no answer: the expert's output was not finite)."""


def _allow_null_votes(conn: Connection) -> None:
    table = ExpertVote.__table__
    columns = {c["name"]: c for c in inspect(conn).get_columns(table.name)}
    if all(columns[name]["nullable"] for name in _NULLABLE_IN_3):
        return
    if conn.dialect.name != "sqlite":
        for name in _NULLABLE_IN_3:
            conn.exec_driver_sql(f"ALTER TABLE {table.name} ALTER COLUMN {name} DROP NOT NULL")
        return
    # SQLite: rename the old table, drop its indexes (their names are reused), create the
    # current table with its indexes, copy every row, drop the old one.
    old = f"{table.name}_v2"
    conn.exec_driver_sql(f"ALTER TABLE {table.name} RENAME TO {old}")
    for index in inspect(conn).get_indexes(old):
        conn.exec_driver_sql(f'DROP INDEX "{index["name"]}"')
    table.create(conn)
    names = ", ".join(c.name for c in table.columns)
    conn.exec_driver_sql(f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {old}")
    conn.exec_driver_sql(f"DROP TABLE {old}")


def upgrade(conn: Connection, version: int) -> int:
    """Bring a database at schema `version` to `SCHEMA_VERSION`; returns the new version."""
    if version >= SCHEMA_VERSION:
        return version
    log.info("upgrading the annotation database from schema version %d to %d", version, SCHEMA_VERSION)
    if version < 2:
        for table, names in _ADDED_IN_2.items():
            _add_columns(conn, table, names)
        for table in (Pair.__table__, Presentation.__table__, HumanVote.__table__):
            for index in table.indexes:
                index.create(conn, checkfirst=True)
    if version < 3:
        _allow_null_votes(conn)
    conn.execute(update(SchemaVersion).where(SchemaVersion.id == 1).values(version=SCHEMA_VERSION))
    return SCHEMA_VERSION
