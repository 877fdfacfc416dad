"""A statement with its parameters, and a way to send one along with another that is sent anyway.

The broker writes records of its own (and hands back its locks) next to the
SQL that makes and removes objects. Sent on its own, each such write costs a
round trip to the server. Pipelined with a statement the operation sends
anyway, with no Sync between them, it travels in the same round trip and runs
in the same implicit transaction: both take effect or neither does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import psycopg
from psycopg import sql

Query = str | sql.Composable


class Statement(NamedTuple):
    """One SQL statement and its parameters, sent with server-side binding."""

    sql: str
    params: Sequence[Any]


def execute_with(
    conn: psycopg.Connection,
    query: Query,
    params: Sequence[Any] | None = None,
    *,
    after: Statement | None = None,
) -> psycopg.Cursor:
    """Run `query` with `after` behind it, in one round trip and one transaction.

    Returns `query`'s cursor. If either fails, the transaction is aborted
    (neither takes effect) and the error is raised. Statements that cannot run
    in a transaction block (CREATE DATABASE, DROP DATABASE) cannot take part.
    """
    if after is None:
        return conn.execute(query, params)
    with conn.pipeline():
        cursor = conn.execute(query, params)
        conn.execute(after.sql, after.params)
    return cursor
