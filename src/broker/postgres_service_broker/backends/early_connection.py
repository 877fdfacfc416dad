"""A connection to an instance's database, opened in the background while an operation goes on.

Binding and unbinding each need a second connection, to the instance's own
database, part-way through. Opening it (TCP, then a SCRAM exchange, then a
new server process) costs a few milliseconds, during which the broker would
only wait. So the operation starts opening it at once and goes on with its
locks and statements on the admin connection meanwhile: by the time it asks
for the connection, it is usually ready. (A provision gains nothing this way:
only one short statement can run between CREATE DATABASE and the connection,
and libpq's SCRAM exchange holds Python's GIL for about 2 ms, stalling it.)

A connection that ends up unused (the role was already gone, say) is closed
as soon as it is open; one that could not be opened raises only when asked
for, where the operation would have opened it anyway.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future

import psycopg


def _close_quietly(future: Future[psycopg.Connection]) -> None:
    with contextlib.suppress(Exception):
        future.result().close()


class EarlyConnection:
    """Stands in for a connect function (``connect(dbname)``) for the one database being opened."""

    def __init__(self, future: Future[psycopg.Connection], dbname: str) -> None:
        self._future = future
        self._dbname = dbname
        self.taken = False

    def connect(self, dbname: str) -> psycopg.Connection:
        """The connection being opened; the caller owns (and closes) it from now on."""
        if dbname != self._dbname:
            raise ValueError(f"this early connection is to {self._dbname!r}, not {dbname!r}")
        if self.taken:
            raise RuntimeError("an early connection can be taken once")
        self.taken = True
        return self._future.result()

    def discard(self) -> None:
        """Close the connection whenever it is done opening, unless it was taken; no waiting here."""
        if not self.taken:
            self._future.add_done_callback(_close_quietly)


@contextlib.contextmanager
def early_connection(
    executor: Executor, connect: Callable[[str], psycopg.Connection], dbname: str
) -> Iterator[EarlyConnection]:
    """Start opening a connection to `dbname`; close it at the end of the block unless it was taken."""
    early = EarlyConnection(executor.submit(connect, dbname), dbname)
    try:
        yield early
    finally:
        early.discard()
