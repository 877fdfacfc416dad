"""The SQL that makes and removes a shared-plan instance (a database) and its bindings (roles).

Every statement is idempotent or guarded by an existence check, so running a
step twice (a retry after a crash, a second broker) converges on the same
result. Identifiers are composed with `psycopg.sql.Identifier`; values are
bound parameters; nothing from a request is spliced into SQL text. Passwords
are sent as SCRAM verifiers computed on the client (``scram.py``), so the plain
password never reaches the server, its logs or ``pg_stat_activity``.

The broker, the benchmark's direct-SQL baseline and the user-provided-service
helper all use these functions, so they issue exactly the same SQL. The
functions that end an operation take an ``after`` statement: the broker's own
last write, sent with the last statement here in one round trip and one
transaction (``statements.execute_with``). The functions that start one take
``known_roles``: which of the roles they look up first exist, as the broker
read them together with its locks (`role_existence_statement`), so that
lookup costs no round trip of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import psycopg
from psycopg import sql

from postgres_service_broker.backends.shared_names import InstanceNames
from postgres_service_broker.backends.statements import Statement, execute_with

ConnectFn = Callable[[str], psycopg.Connection]
# Role name -> whether it existed when looked up (`role_existence`).
KnownRoles = Mapping[str, bool]


def role_exists(conn: psycopg.Connection, role: str, known: KnownRoles | None = None) -> bool:
    """Whether `role` exists; the answer in `known`, if it holds one, saves the query."""
    if known is not None and role in known:
        return known[role]
    return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is not None


def role_existence_statement(roles: Sequence[str]) -> Statement:
    """Which of `roles` exist, in one statement; `role_existence` reads its result.

    Only the steps that start an operation may take its answers: a step that
    creates or drops roles makes them stale for the steps after it.
    """
    return Statement(
        "SELECT r, EXISTS (SELECT FROM pg_roles WHERE rolname = r) FROM unnest(%s::text[]) AS r",
        (list(roles),),
    )


def role_existence(cur: psycopg.Cursor) -> dict[str, bool]:
    return {role: bool(exists) for role, exists in cur.fetchall()}


def database_exists(conn: psycopg.Connection, database: str) -> bool:
    row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
    return row is not None


def is_superuser(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
    return bool(row and row[0])


def join_role(conn: psycopg.Connection, role: str) -> None:
    """Make a non-superuser admin a member of `role`; a superuser needs no membership.

    An admin with only CREATEDB and CREATEROLE (a managed PostgreSQL's admin,
    say) may create a database owned by a role, set default privileges for it,
    reassign or drop what it owns, and end its sessions only as its member.
    """
    if not is_superuser(conn):
        conn.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(sql.Identifier(role)))


def create_group_roles(
    conn: psycopg.Connection, names: InstanceNames, *, known_roles: KnownRoles | None = None
) -> None:
    """The instance's NOLOGIN roles: the owner of everything, and a read-only group."""
    for role in (names.owner_role, names.reader_role):
        if not role_exists(conn, role, known_roles):
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
        join_role(conn, role)


def create_database(conn: psycopg.Connection, names: InstanceNames, connection_limit: int) -> None:
    """The instance's database, owned by the owner role; `restrict_database` must follow at once."""
    if not database_exists(conn, names.database):
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {} CONNECTION LIMIT {}").format(
                sql.Identifier(names.database),
                sql.Identifier(names.owner_role),
                sql.Literal(connection_limit),
            )
        )
    else:
        set_connection_limit(conn, names, connection_limit)


def restrict_database(conn: psycopg.Connection, names: InstanceNames) -> None:
    """Close the instance's database to everyone but its owner (PUBLIC may connect to a new one)."""
    conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(names.database)))


def grant_database_access(
    conn: psycopg.Connection, names: InstanceNames, *, after: Statement | None = None
) -> None:
    """Let the read-only group connect: the last step of making an instance (no binding exists before).

    `after` runs in the same transaction.
    """
    grant = sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(
        sql.Identifier(names.database), sql.Identifier(names.reader_role)
    )
    execute_with(conn, grant, after=after)


def set_connection_limit(conn: psycopg.Connection, names: InstanceNames, limit: int) -> None:
    conn.execute(
        sql.SQL("ALTER DATABASE {} CONNECTION LIMIT {}").format(
            sql.Identifier(names.database), sql.Literal(limit)
        )
    )


def prepare_database(db_conn: psycopg.Connection, names: InstanceNames) -> None:
    """Inside the new database: whatever the owner creates, the read-only group may read."""
    owner = sql.Identifier(names.owner_role)
    reader = sql.Identifier(names.reader_role)
    with db_conn.transaction():
        for objects, privilege in (("TABLES", "SELECT"), ("SEQUENCES", "SELECT"), ("SCHEMAS", "USAGE")):
            db_conn.execute(
                sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} GRANT {} ON {} TO {}").format(
                    owner, sql.SQL(privilege), sql.SQL(objects), reader
                )
            )
        db_conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(reader))


def installed_extensions(db_conn: psycopg.Connection) -> set[str]:
    rows = db_conn.execute("SELECT extname FROM pg_extension WHERE extname <> 'plpgsql'")
    return {r[0] for r in rows.fetchall()}


def available_extensions(conn: psycopg.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM pg_available_extensions").fetchall()}


def set_extensions(db_conn: psycopg.Connection, wanted: Iterable[str], drop_others: Iterable[str]) -> None:
    """Create `wanted`, drop `drop_others`, in one transaction: all or nothing.

    DROP EXTENSION is never CASCADE: a column of type citext must not vanish
    because someone edited a parameter. If objects depend on an extension the
    whole change fails with `DependentObjectsStillExist`.
    """
    with db_conn.transaction():
        for ext in sorted(wanted):
            db_conn.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(ext)))
        for ext in sorted(drop_others):
            db_conn.execute(sql.SQL("DROP EXTENSION IF EXISTS {}").format(sql.Identifier(ext)))


def create_login_role(
    conn: psycopg.Connection, role: str, verifier: str, *, known_roles: KnownRoles | None = None
) -> None:
    """A binding's LOGIN role with the password `verifier` (``scram.scram_sha256_verifier``), no more.

    `grant_login_role` makes it a member of its instance's group: the last step
    of a bind, once the objects in the instance's database are prepared.
    """
    ident = sql.Identifier(role)
    attrs = sql.SQL(
        "LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD {}"
    ).format(sql.Literal(verifier))
    if role_exists(conn, role, known_roles):
        conn.execute(sql.SQL("ALTER ROLE {} WITH {}").format(ident, attrs))
    else:
        conn.execute(sql.SQL("CREATE ROLE {} WITH {}").format(ident, attrs))
    join_role(conn, role)


def grant_login_role(
    conn: psycopg.Connection,
    role: str,
    names: InstanceNames,
    *,
    read_only: bool,
    after: Statement | None = None,
) -> None:
    """Make a binding's role a member of the owner role (or the read-only group).

    Each session starts as the group role (``ALTER ROLE .. SET role``), so the
    tables a binding creates belong to the owner and stay usable by the next
    binding after this one is gone. `after` runs in the same transaction as
    the last statement.
    """
    ident = sql.Identifier(role)
    group = names.reader_role if read_only else names.owner_role
    statements = [
        sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), ident),
        sql.SQL("ALTER ROLE {} SET role = {}").format(ident, sql.Literal(group)),
    ]
    if read_only:
        statements.append(sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(ident))
    for statement in statements[:-1]:
        conn.execute(statement)
    execute_with(conn, statements[-1], after=after)


def share_login_role_objects(db_conn: psycopg.Connection, role: str, names: InstanceNames) -> None:
    """Make what a binding creates as its own login role usable by the others, as the owner's objects are.

    A session normally runs as the owner role (``ALTER ROLE .. SET role``), but
    ``SET ROLE NONE`` returns it to the login role, whose new tables would be
    out of reach of the other bindings and the read-only group until unbind
    reassigns them. Default privileges close that gap; ``DROP OWNED BY`` at
    unbind removes them again.
    """
    creator = sql.Identifier(role)
    owner = sql.Identifier(names.owner_role)
    reader = sql.Identifier(names.reader_role)
    with db_conn.transaction():
        for objects, owner_privilege, reader_privilege in (
            ("TABLES", "ALL", "SELECT"),
            ("SEQUENCES", "ALL", "SELECT"),
            ("SCHEMAS", "ALL", "USAGE"),
        ):
            for grantee, privilege in ((owner, owner_privilege), (reader, reader_privilege)):
                db_conn.execute(
                    sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} GRANT {} ON {} TO {}").format(
                        creator, sql.SQL(privilege), sql.SQL(objects), grantee
                    )
                )


def grant_reader_existing(db_conn: psycopg.Connection, names: InstanceNames) -> None:
    """Let the read-only group read what already exists, in every user schema."""
    reader = sql.Identifier(names.reader_role)
    with db_conn.transaction():
        # GRANT rewrites each table's ACL without locking the table, so two
        # read-only binds at once fail with "tuple concurrently updated". One
        # at a time per instance (advisory keys are scoped to this database).
        db_conn.execute("SELECT pg_advisory_xact_lock(hashtext('postgres-service-broker:grant-reader'))")
        schemas = db_conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname !~ '^pg_' AND nspname <> 'information_schema'"
        ).fetchall()
        for (schema,) in schemas:
            s = sql.Identifier(schema)
            db_conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(s, reader))
            db_conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(s, reader))
            db_conn.execute(sql.SQL("GRANT SELECT ON ALL SEQUENCES IN SCHEMA {} TO {}").format(s, reader))


def terminate_sessions(conn: psycopg.Connection, role: str) -> None:
    conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE usename = %s AND pid <> pg_backend_pid()",
        (role,),
    )


def drop_login_role(
    conn: psycopg.Connection,
    connect: ConnectFn,
    role: str,
    names: InstanceNames,
    *,
    known_roles: KnownRoles | None = None,
    after: Statement | None = None,
) -> None:
    """Remove a binding's role without losing what it made: its objects pass to the owner.

    `after` runs in the same transaction as the last statement, once the role is gone.
    """
    if not role_exists(conn, role, known_roles):
        _execute_alone(conn, after)
        return
    ident = sql.Identifier(role)
    join_role(conn, role)
    conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(ident))
    terminate_sessions(conn, role)
    owner = sql.Identifier(names.owner_role)
    if database_exists(conn, names.database):
        with connect(names.database) as db_conn:
            db_conn.execute(sql.SQL("REASSIGN OWNED BY {} TO {}").format(ident, owner))
            db_conn.execute(sql.SQL("DROP OWNED BY {}").format(ident))
    # Privileges the role may hold in the database we are connected to.
    conn.execute(sql.SQL("DROP OWNED BY {}").format(ident))
    execute_with(conn, sql.SQL("DROP ROLE IF EXISTS {}").format(ident), after=after)


def _execute_alone(conn: psycopg.Connection, statement: Statement | None) -> None:
    """Run an `after` statement that found no last statement to go with."""
    if statement is not None:
        conn.execute(statement.sql, statement.params)


def member_roles(conn: psycopg.Connection, names: InstanceNames) -> list[str]:
    rows = conn.execute(
        "SELECT m.rolname FROM pg_auth_members am "
        "JOIN pg_roles g ON g.oid = am.roleid JOIN pg_roles m ON m.oid = am.member "
        # The admin itself is a member when it is not a superuser (join_role).
        "WHERE g.rolname = ANY(%s) AND m.rolname <> current_user ORDER BY 1",
        ([names.owner_role, names.reader_role],),
    ).fetchall()
    return [r[0] for r in rows]


def drop_instance(conn: psycopg.Connection, names: InstanceNames, extra_roles: Iterable[str]) -> None:
    """Drop the database (ending its sessions) and every role of the instance."""
    drop_database(conn, names)
    drop_instance_roles(conn, names, extra_roles)


def drop_database(
    conn: psycopg.Connection, names: InstanceNames, *, known_roles: KnownRoles | None = None
) -> None:
    if role_exists(conn, names.owner_role, known_roles):
        join_role(conn, names.owner_role)  # only the owner (or its member) may drop it
    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(names.database)))


def drop_instance_roles(
    conn: psycopg.Connection,
    names: InstanceNames,
    extra_roles: Iterable[str],
    *,
    after: Statement | None = None,
) -> None:
    """The binding roles (recorded or still members of the groups), then the group roles.

    `after` runs in the same transaction as the last statement, once every role is gone.
    """
    for role in sorted(set(extra_roles) | set(member_roles(conn, names))):
        if role_exists(conn, role):
            join_role(conn, role)
            terminate_sessions(conn, role)
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
    _drop_group_role(conn, names.reader_role)
    _drop_group_role(conn, names.owner_role, after=after)


def _drop_group_role(conn: psycopg.Connection, role: str, *, after: Statement | None = None) -> None:
    if not role_exists(conn, role):
        _execute_alone(conn, after)
        return
    join_role(conn, role)
    conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
    execute_with(conn, sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)), after=after)
