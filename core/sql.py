"""Hand-written statements on the hot path, prepared once per connection (PostgreSQL only).

Django binds parameters on the client and never prepares, so PostgreSQL parses and plans every
statement on every call; for the next-task and submit statements that planning cost more than
running them (bench/README.md, "Next task"). Here they run on a psycopg cursor with server-side
binding and `prepare=True`: each connection plans each statement once. Django's error mapping
still applies (an IntegrityError is Django's). Behind a transaction-pooling PgBouncer older
than 1.21, which cannot carry prepared statements, set DATABASE_PREPARE_STATEMENTS=0.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from django.conf import settings
from django.db import connection

Params = Sequence[Any] | Mapping[str, Any]


class PreparedCursor:
    """The few cursor methods the hot path uses, each statement prepared on first use."""

    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        self._cursor = cursor

    def execute(self, sql: str, params: Params) -> None:
        self._cursor.execute(sql, params, prepare=settings.DATABASE_PREPARE_STATEMENTS)

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._cursor.fetchone()

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount


@contextmanager
def prepared_cursor() -> Iterator[PreparedCursor]:
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        yield PreparedCursor(cursor)
