"""The app's one table, reached with the credentials from VCAP_SERVICES.

Each request opens its own connection: the app stays correct across a
database restart or an HA failover without any pool logic, which is what the
smoke tests and the HA tests rely on. The table is created on first use.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

CONNECT_TIMEOUT_S = 5
TABLE_DDL = (
    "CREATE TABLE IF NOT EXISTS sample_rows ("
    " id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " body text NOT NULL,"
    " created_at timestamptz NOT NULL DEFAULT now())"
)
# Any fixed number: app instances starting together must not race on CREATE TABLE.
_DDL_LOCK_KEY = 0x5A3D_0001


class DatabaseUnavailable(Exception):
    """The database did not answer; the message is one line, without secrets."""


def conninfo_from_credentials(credentials: dict[str, Any]) -> str:
    """A libpq connection string: the `uri` when there is one, else the separate fields."""
    params: dict[str, Any] = {}
    ca = credentials.get("sslrootcert")
    if isinstance(ca, str) and ca.startswith("-----BEGIN"):
        # Credentials carry the CA certificate itself; libpq wants a file.
        params["sslrootcert"] = _write_ca(ca)
    uri = credentials.get("uri")
    if isinstance(uri, str) and uri.split(":", 1)[0].lower() in ("postgres", "postgresql"):
        return make_conninfo(uri, **params)
    hosts = credentials.get("hosts") or [credentials["hostname"]]
    params.update(
        host=",".join(str(h) for h in hosts),
        port=credentials.get("port") or 5432,
        dbname=credentials["name"],
        user=credentials["username"],
    )
    if credentials.get("password"):
        params["password"] = credentials["password"]
    if credentials.get("sslmode"):
        params["sslmode"] = credentials["sslmode"]
    return make_conninfo("", **params)


def _write_ca(pem: str) -> str:
    directory = Path(tempfile.mkdtemp(prefix="postgres-sample-app-"))
    path = directory / "ca.pem"
    path.write_text(pem)
    return str(path)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


class RowStore:
    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._table_ready = False
        self._table_lock = threading.Lock()

    def _connect(self) -> psycopg.Connection:
        try:
            return psycopg.connect(self._conninfo, connect_timeout=CONNECT_TIMEOUT_S, autocommit=True)
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable(f"cannot connect to the database: {_first_line(exc)}") from None

    def _ensure_table(self, conn: psycopg.Connection) -> None:
        if self._table_ready:
            return
        with self._table_lock:
            if self._table_ready:
                return
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK_KEY,))
                conn.execute(TABLE_DDL)
            self._table_ready = True

    def ping(self) -> None:
        try:
            with self._connect() as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            raise DatabaseUnavailable(f"the database did not answer: {_first_line(exc)}") from None

    def add(self, body: str) -> dict[str, Any]:
        try:
            with self._connect() as conn:
                self._ensure_table(conn)
                row = conn.execute(
                    "INSERT INTO sample_rows (body) VALUES (%s) RETURNING id, body", (body,)
                ).fetchone()
        except psycopg.Error as exc:
            raise DatabaseUnavailable(f"could not store the row: {_first_line(exc)}") from None
        assert row is not None
        return {"id": row[0], "body": row[1]}

    def all(self) -> list[dict[str, Any]]:
        try:
            with self._connect() as conn:
                self._ensure_table(conn)
                rows = conn.execute("SELECT id, body FROM sample_rows ORDER BY id").fetchall()
        except psycopg.Error as exc:
            raise DatabaseUnavailable(f"could not read the rows: {_first_line(exc)}") from None
        return [{"id": r[0], "body": r[1]} for r in rows]
