"""Inserting many rows at once: PostgreSQL's ``COPY`` (psycopg2), each value prepared by its column's
own type (encryption, JSON, UTC datetimes) exactly as an INSERT would; Core's executemany on any
other database. Runs inside the caller's transaction, so the rows commit or roll back with it."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

#: Rows per executemany statement (other databases) and per COPY (PostgreSQL).
EXECUTEMANY_BATCH = 500
COPY_BATCH = 10_000


def insert_many(db: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (dicts with the same keys) into ``table``. Column defaults that are plain
    values apply as with an INSERT; defaults computed by Python must be given in the rows."""
    if not rows:
        return
    conn = db.connection()
    dialect = conn.dialect
    if dialect.name != "postgresql" or dialect.driver != "psycopg2":
        for start in range(0, len(rows), EXECUTEMANY_BATCH):
            db.execute(table.insert(), list(rows[start : start + EXECUTEMANY_BATCH]))
        return
    given = list(rows[0])
    defaults = {
        c.name: c.default.arg  # type: ignore[attr-defined]
        for c in table.c
        if c.name not in given and c.default is not None and c.default.is_scalar
    }
    names = given + list(defaults)
    processors: list[Callable[[Any], Any] | None] = [table.c[n].type.bind_processor(dialect) for n in names]
    quote = dialect.identifier_preparer.quote
    statement = f"COPY {quote(table.name)} ({', '.join(quote(n) for n in names)}) FROM STDIN WITH (FORMAT csv)"
    dbapi_connection: Any = conn.connection.dbapi_connection
    for start in range(0, len(rows), COPY_BATCH):
        buffer = io.StringIO()
        for row in rows[start : start + COPY_BATCH]:
            values = [row[n] for n in given] + list(defaults.values())
            buffer.write(",".join(_csv(p(v) if p is not None else v) for p, v in zip(processors, values, strict=True)))
            buffer.write("\n")
        buffer.seek(0)
        try:
            with dbapi_connection.cursor() as cursor:
                cursor.copy_expert(statement, buffer)
        except dialect.loaded_dbapi.Error as exc:
            # The same exception classes as an INSERT's (IntegrityError for a duplicate key).
            raise DBAPIError.instance(statement, None, exc, dialect.loaded_dbapi.Error) from None


def _csv(value: Any) -> str:
    """One CSV field of COPY: unquoted empty is NULL, anything else quoted ("" doubled)."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        text = value.isoformat(sep=" ")
    elif isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = str(value)
    return '"' + text.replace('"', '""') + '"'
