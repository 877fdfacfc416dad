"""Stage 1: a database and a login role for ``cf create-user-provided-service``.

An app developer who already has a PostgreSQL server gets, per NAME, exactly
what the broker makes for one service instance and one binding: the same
``shared_sql`` functions create the roles, the database and the login role,
and ``build_credentials`` shapes the credentials. An app therefore moves from a
user-provided service to a brokered one without a change.

The administrator's connection comes only from libpq's environment (PGHOST,
PGPORT, PGUSER, PGPASSWORD or a ``.pgpass`` file, PGDATABASE, PGSSLMODE, ...),
so the admin password never appears on a command line or in a process list.

Every failure is a ``UpsError`` with a one-line message that says what to fix.
Preconditions (the name, the connection, the privileges, an existing NAME) are
checked before anything is created; if a later step fails, what this run made
is removed again, so a run either finishes or leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg

from postgres_service_broker.backends import shared_sql
from postgres_service_broker.backends.advisory_locks import advisory_lock, lock_key
from postgres_service_broker.backends.base import Busy
from postgres_service_broker.backends.shared_names import InstanceNames
from postgres_service_broker.credentials import build_credentials, generate_password
from postgres_service_broker.scram import scram_sha256_verifier

# Exit codes: 2 when the input or the environment must change before a retry can
# work (the name, the connection, privileges, an existing NAME); 1 when a step
# failed on the server after the checks passed.
EXIT_USAGE = 2
EXIT_FAILED = 1

NAME_RE = re.compile(r"[a-z][a-z0-9-]{0,40}")
# The prefix keeps these objects apart from the broker's (``cf_...``).
PREFIX = "ups_"
# Apps get the tags the cf command sets; 'postgresql' is what app libraries look for.
TAGS = ("postgresql", "relational")
# As the broker's smallest plan; change it with --connection-limit.
DEFAULT_CONNECTION_LIMIT = 10
LOCK_TIMEOUT_S = 15.0
_HOST_RE = re.compile(r"[A-Za-z0-9._:-]{1,253}")


class UpsError(Exception):
    """A one-line message for the user, and the exit code that goes with it."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class UpsNames:
    """Every object that `create` makes for one NAME; `delete` removes exactly these."""

    name: str
    instance: InstanceNames
    login_role: str

    @classmethod
    def for_name(cls, name: str) -> UpsNames:
        validate_name(name)
        # '-' becomes '_' so the identifiers need no quoting in hand-written SQL;
        # names never contain '_', so the mapping stays one-to-one.
        base = PREFIX + name.replace("-", "_")
        return cls(
            name=name,
            instance=InstanceNames(database=base, owner_role=base + "_owner", reader_role=base + "_reader"),
            login_role=base + "_login",
        )

    @property
    def roles(self) -> tuple[str, ...]:
        return (self.instance.owner_role, self.instance.reader_role, self.login_role)


def validate_name(name: str) -> None:
    if not NAME_RE.fullmatch(name):
        raise UpsError(
            f"invalid name {name!r}: use 1 to 41 lowercase letters, digits and '-', "
            "starting with a letter (for example my-db)"
        )


def validate_hosts(hosts: Sequence[str]) -> list[str]:
    for host in hosts:
        if not _HOST_RE.fullmatch(host):
            raise UpsError(f"invalid --host {host!r}: give a host name or an IP address")
    return list(hosts)


def validate_connection_limit(limit: int) -> int:
    if limit < -1 or limit == 0:
        raise UpsError(f"invalid --connection-limit {limit}: give a positive number, or -1 for no limit")
    return limit


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


def admin_connect(dbname: str | None = None) -> psycopg.Connection:
    """Connect as the administrator, configured only by libpq's environment.

    No host, user or password is passed here: libpq reads PGHOST, PGUSER,
    PGPASSWORD / .pgpass and the rest itself. Only `dbname` (to reach a new
    database), a connect timeout and the application name are added, and each
    of those only where the environment does not set it.
    """
    extra: dict[str, Any] = {}
    if dbname is not None:
        extra["dbname"] = dbname
    if "PGCONNECT_TIMEOUT" not in os.environ:
        extra["connect_timeout"] = 10
    if "PGAPPNAME" not in os.environ:
        extra["application_name"] = "postgres-service-broker ups"
    return psycopg.connect("", autocommit=True, **extra)


@contextmanager
def _admin_session() -> Iterator[psycopg.Connection]:
    try:
        conn = admin_connect()
    except psycopg.OperationalError as exc:
        raise UpsError(
            f"cannot connect to PostgreSQL as an administrator: {_first_line(exc)}; set PGHOST, "
            "PGPORT, PGUSER and PGPASSWORD (or a .pgpass entry) for a superuser or a role with "
            "CREATEDB and CREATEROLE"
        ) from None
    with conn:
        yield conn


def _server(conn: psycopg.Connection) -> str:
    return f"{conn.info.host}:{conn.info.port}"


def check_privileges(conn: psycopg.Connection) -> None:
    """The same rule as the broker: superuser, or both CREATEDB and CREATEROLE."""
    row = conn.execute(
        "SELECT current_user, rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    if row is None:
        raise UpsError("cannot read the admin role's privileges from pg_roles")
    user, superuser, createdb, createrole = row
    if superuser or (createdb and createrole):
        return
    missing = [attr for attr, has in (("CREATEDB", createdb), ("CREATEROLE", createrole)) if not has]
    raise UpsError(
        f"the PostgreSQL role {user} lacks {' and '.join(missing)}: connect as a superuser, "
        f"or have one run ALTER ROLE {user} CREATEDB CREATEROLE"
    )


def existing_objects(conn: psycopg.Connection, names: UpsNames) -> list[str]:
    found = []
    if shared_sql.database_exists(conn, names.instance.database):
        found.append(f"database {names.instance.database}")
    found += [f"role {role}" for role in names.roles if shared_sql.role_exists(conn, role)]
    return found


@contextmanager
def _locked(conn: psycopg.Connection, name: str) -> Iterator[None]:
    # Two runs for one NAME at once would each see nothing and then share the
    # objects; the lock makes the second one see what the first made.
    conn.execute("SELECT set_config('lock_timeout', %s, false)", (f"{int(LOCK_TIMEOUT_S * 1000)}ms",))
    try:
        with advisory_lock(conn, lock_key("ups", name), what=name):
            yield
    except Busy:
        raise UpsError(f"another ups command for {name} is running; retry when it has finished") from None


def _make(conn: psycopg.Connection, names: UpsNames, password: str, connection_limit: int) -> None:
    shared_sql.create_group_roles(conn, names.instance)
    shared_sql.create_database(conn, names.instance, connection_limit)
    shared_sql.restrict_database(conn, names.instance)
    with admin_connect(names.instance.database) as db_conn:
        shared_sql.prepare_database(db_conn, names.instance)
        shared_sql.grant_database_access(conn, names.instance)
        shared_sql.create_login_role(conn, names.login_role, scram_sha256_verifier(password))
        # As the broker's bind does: tables made after SET ROLE NONE stay shared.
        shared_sql.share_login_role_objects(db_conn, names.login_role, names.instance)
    shared_sql.grant_login_role(conn, names.login_role, names.instance, read_only=False)


def _remove(conn: psycopg.Connection, names: UpsNames) -> None:
    # The broker's drop_instance drops every member of the group roles (for the
    # broker, its bindings). Here another member is a role we did not make (a
    # person's, or the admin's own on PostgreSQL 16+): refuse rather than drop it.
    others = sorted(set(shared_sql.member_roles(conn, names.instance)) - {names.login_role})
    if others:
        groups = f"{names.instance.owner_role}, {names.instance.reader_role}"
        raise UpsError(
            f"{', '.join(others)} also belong to {names.name}'s group roles, and ups removes only what "
            f"ups create made: first run REVOKE {groups} FROM {', '.join(others)}"
        )
    shared_sql.drop_login_role(conn, admin_connect, names.login_role, names.instance)
    shared_sql.drop_instance(conn, names.instance, [names.login_role])


def _undo(names: UpsNames) -> str | None:
    """Remove what a failed `create` made; return why that failed too, if it did."""
    # A fresh session: the one that failed may be broken (a lost connection).
    try:
        with admin_connect() as conn:
            _remove(conn, names)
    except (psycopg.Error, UpsError) as exc:
        return _first_line(exc)
    return None


def create(
    name: str,
    *,
    hosts: Sequence[str] | None = None,
    port: int | None = None,
    connection_limit: int = DEFAULT_CONNECTION_LIMIT,
) -> tuple[dict[str, Any], str]:
    """Create NAME's database and login role; return (credentials, 'host:port' of the server).

    `hosts` and `port` are what apps are told; they default to the server the
    admin session reached (PGHOST/PGPORT).
    """
    names = UpsNames.for_name(name)
    hosts = validate_hosts(hosts) if hosts else None
    connection_limit = validate_connection_limit(connection_limit)
    if port is not None and not 1 <= port <= 65535:
        raise UpsError(f"invalid --port {port}: give a TCP port from 1 to 65535")
    with _admin_session() as conn:
        check_privileges(conn)
        if hosts is None:
            host = conn.info.host
            if host.startswith(("/", "@")):
                raise UpsError(
                    f"the admin session uses the Unix socket in {host}, which apps cannot reach; "
                    "pass --host with the address apps connect to"
                )
            hosts = [host]
        app_port = port or conn.info.port
        server = _server(conn)
        with _locked(conn, name):
            found = existing_objects(conn, names)
            if found:
                raise UpsError(
                    f"{name} already exists on {server} ({', '.join(found)}); its password is not kept, "
                    f"so remove it with 'postgres-service-broker ups delete {name}' or choose another name"
                )
            password = generate_password()
            try:
                _make(conn, names, password, connection_limit)
            except BaseException as exc:
                undo_error = _undo(names)
                if not isinstance(exc, Exception):
                    raise  # Ctrl-C: undone, now stop as asked
                message = f"could not create {name} on {server}: {_first_line(exc)}"
                if undo_error:
                    message += (
                        f"; removing what was made failed too ({undo_error}): "
                        f"run 'postgres-service-broker ups delete {name}'"
                    )
                else:
                    message += "; nothing was left behind"
                raise UpsError(message, EXIT_FAILED) from None
    credentials = build_credentials(
        hosts=hosts,
        port=app_port,
        database=names.instance.database,
        username=names.login_role,
        password=password,
    )
    return credentials, server


def delete(name: str) -> tuple[list[str], str]:
    """Remove everything `create` made for NAME; return (what was removed, 'host:port')."""
    names = UpsNames.for_name(name)
    with _admin_session() as conn:
        check_privileges(conn)
        server = _server(conn)
        with _locked(conn, name):
            found = existing_objects(conn, names)
            if not found:
                raise UpsError(
                    f"nothing named {name} exists on {server} (no database {names.instance.database}, "
                    f"no role {names.login_role}); check the name and PGHOST/PGPORT"
                )
            try:
                _remove(conn, names)
            except psycopg.Error as exc:
                raise UpsError(
                    f"could not delete {name} on {server}: {_first_line(exc)}; run the command again",
                    EXIT_FAILED,
                ) from None
    return found, server


def cups_command(name: str, credentials: dict[str, Any]) -> str:
    """The cf command that hands `credentials` to apps, quoted for a POSIX shell."""
    document = json.dumps(credentials, separators=(",", ":"))
    return (
        f"cf create-user-provided-service {shlex.quote(name)} -p {shlex.quote(document)} "
        f"-t {shlex.quote(','.join(TAGS))}"
    )
