"""The shared plan: a database per service instance on one PostgreSQL cluster, a role per binding.

Every operation takes an advisory lock for the instance (exclusive to create,
change or delete it; shared to bind and unbind), then reads the record, then
makes the objects. The lock settles races between brokers; the record, written
before the objects are made and removed with the last of them, lets any broker
finish what a crashed one began. An operation's last record write and the
lock's release travel with its last DDL statement, in one transaction. All
operations complete before the response: none is asynchronous.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import select
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors, sql
from psycopg_pool import ConnectionPool, PoolTimeout

from postgres_service_broker.backends import shared_sql, shared_state
from postgres_service_broker.backends.advisory_locks import (
    AdvisoryLock,
    advisory_lock,
    advisory_locks,
    is_locked_exclusively,
    lock_key,
)
from postgres_service_broker.backends.base import (
    BackendUnavailable,
    BindingNotFound,
    BindingView,
    BindRequest,
    BindResult,
    Busy,
    Conflict,
    InstanceNotFound,
    InstanceView,
    InvalidRequest,
    LastOperation,
    ProvisionRequest,
    ProvisionResult,
    Unprocessable,
    UpdateRequest,
)
from postgres_service_broker.backends.early_connection import EarlyConnection, early_connection
from postgres_service_broker.backends.fault_injection import crash_point
from postgres_service_broker.backends.lifo_pool import LifoConnectionPool
from postgres_service_broker.backends.shared_names import InstanceNames, binding_role
from postgres_service_broker.backends.shared_state import BindingRecord, InstanceRecord
from postgres_service_broker.backends.statements import Statement
from postgres_service_broker.catalog import Catalog
from postgres_service_broker.config import BrokerConfig, DatabaseConfig
from postgres_service_broker.credentials import build_credentials, generate_password
from postgres_service_broker.scram import scram_sha256_verifier
from postgres_service_broker.secret_box import SecretBox

log = logging.getLogger(__name__)


def connection_kwargs(db: DatabaseConfig, dbname: str) -> dict[str, Any]:
    """libpq keyword arguments; the password travels here, never on a command line or in a URI."""
    kwargs: dict[str, Any] = {
        "host": ",".join(db.hosts),
        "port": db.port,
        "user": db.user,
        "dbname": dbname,
        "sslmode": db.sslmode,
        "connect_timeout": db.connect_timeout,
        "application_name": "postgres-service-broker",
    }
    if len(db.hosts) > 1:
        # HA: only the primary takes the broker's writes. libpq tries the hosts
        # in turn and skips dead nodes and standbys, so pooled and per-request
        # connections follow a failover.
        kwargs["target_session_attrs"] = "read-write"
    if db.password is not None:
        kwargs["password"] = db.password.get_secret_value()
    if db.sslrootcert:
        kwargs["sslrootcert"] = db.sslrootcert
    return kwargs


def check_pooled_connection(conn: psycopg.Connection) -> None:
    """The pool's check before lending a connection: a round trip only when the socket says something.

    An idle connection has nothing to read until the server ends it (a
    restart, a failover, pg_terminate_backend): then the closing message or
    the end of the stream is waiting on the socket. So look there first,
    without a round trip, and only then ask the server, which raises for a
    dead connection and the pool replaces it. A server that vanished without
    a word (a frozen host) would not answer the round trip either.
    """
    if conn.closed or conn.broken:
        raise psycopg.OperationalError("the connection is closed")
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN | select.POLLPRI)
    if poller.poll(0):
        ConnectionPool.check_connection(conn)


class SharedBackend:
    def __init__(self, config: BrokerConfig, catalog: Catalog) -> None:
        self._config = config
        self._db = config.database
        self._catalog = catalog
        self._box = SecretBox(config.encryption_key.get_secret_value())
        # The connection returned last is lent first (see lifo_pool.py).
        self._pool = LifoConnectionPool(
            conninfo="",
            kwargs={
                **connection_kwargs(self._db, self._db.state_database),
                "autocommit": True,
                # lock_timeout bounds every lock wait on these connections,
                # advisory locks included; past it a request is told to retry
                # (ConcurrencyError). READ COMMITTED whatever the server's
                # default: a statement pipelined behind its locks must take its
                # snapshot after they are granted (see advisory_locks).
                "options": (
                    f"-c lock_timeout={int(config.lock_timeout_seconds * 1000)} "
                    r"-c default_transaction_isolation=read\ committed"
                ),
                # No server-side prepared statements: these connections also run
                # DDL, after which psycopg drops every prepared statement with
                # an extra DEALLOCATE ALL round trip, so preparing never paid off.
                "prepare_threshold": None,
            },
            min_size=2,
            max_size=self._db.pool_size,
            open=False,
            name="broker-state",
            timeout=config.lock_timeout_seconds + 5,
            check=check_pooled_connection,
        )
        # Work an operation starts ahead of need, to run while it waits on the
        # database: opening a connection to an instance's database
        # (early_connection.py) and a bind's password verifier. Two per
        # operation in flight at most, as each holds a pooled connection.
        self._background = ThreadPoolExecutor(
            max_workers=2 * self._db.pool_size, thread_name_prefix="broker-background"
        )

    # -- life cycle -------------------------------------------------------

    def open(self) -> None:
        """Create the state database and schema if needed, check privileges, open the pool."""
        try:
            self._ensure_state_database()
            self._pool.open(wait=True, timeout=self._db.connect_timeout + 5)
            with self._pool.connection() as conn:
                shared_state.migrate(conn)
                self._check_privileges(conn)
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise BackendUnavailable(
                f"cannot connect to PostgreSQL at {self._db.host}:{self._db.port} "
                f"as {self._db.user}: {_first_line(exc)}"
            ) from None

    def close(self) -> None:
        self._pool.close()
        self._background.shutdown(wait=True)

    def _connect(self, dbname: str) -> psycopg.Connection:
        return psycopg.connect(**connection_kwargs(self._db, dbname), autocommit=True)

    def _connect_early(self, dbname: str) -> contextlib.AbstractContextManager[EarlyConnection]:
        """Start opening a connection to `dbname` now; take it with ``.connect(dbname)`` when needed."""
        return early_connection(self._background, self._connect, dbname)

    def _ensure_state_database(self) -> None:
        with self._connect(self._db.admin_database) as conn:
            if not shared_sql.database_exists(conn, self._db.state_database):
                # Another broker may create it first; that is as good.
                with contextlib.suppress(errors.DuplicateDatabase):
                    conn.execute(
                        sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self._db.state_database))
                    )
            conn.execute(
                sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(
                    sql.Identifier(self._db.state_database)
                )
            )

    def _check_privileges(self, conn: psycopg.Connection) -> None:
        row = conn.execute(
            "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        if not row or not (row[0] or (row[1] and row[2])):
            raise BackendUnavailable(
                f"the database user {self._db.user} needs CREATEDB and CREATEROLE "
                "(or superuser) to create databases and roles"
            )
        available = shared_sql.available_extensions(conn)
        missing = sorted(set(self._config.allowed_extensions) - available)
        if missing:
            log.warning(
                "allowed extensions not installed on the server (requests for them will be refused): %s",
                ", ".join(missing),
            )

    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection]:
        try:
            with self._pool.connection() as conn:
                yield conn
        except errors.LockNotAvailable:
            raise Busy("another operation holds what this request needs; retry in a moment") from None
        except PoolTimeout:
            # No pooled connection in time: either every one is busy, or none
            # can be made because the cluster is down. Tell the two apart.
            if self._reachable():
                raise Busy("the broker is at its connection limit; retry in a moment") from None
            raise BackendUnavailable("the database cluster cannot be reached right now") from None
        except psycopg.OperationalError as exc:
            log.error("database unavailable: %s", _first_line(exc))
            raise BackendUnavailable("the database cluster cannot be reached right now") from None

    def _reachable(self) -> bool:
        try:
            with self._connect(self._db.state_database):
                return True
        except psycopg.OperationalError as exc:
            log.error("database unavailable: %s", _first_line(exc))
            return False

    def ping(self) -> None:
        with self._conn() as conn:
            conn.execute("SELECT 1")

    # -- locks ------------------------------------------------------------

    def _lock_instance(self, conn: psycopg.Connection, instance_id: str, first: Sequence[Statement] = ()):
        return advisory_lock(
            conn, lock_key("instance", instance_id), what="this service instance", first=first
        )

    def _lock_binding(
        self, conn: psycopg.Connection, instance_id: str, binding_id: str, first: Sequence[Statement] = ()
    ):
        """The instance's lock shared (it must not go away meanwhile), then the binding's, in one go."""
        return advisory_locks(
            conn,
            [
                AdvisoryLock(lock_key("instance", instance_id), shared=True),
                AdvisoryLock(lock_key("binding", binding_id)),
            ],
            what="this service instance or binding",
            first=first,
        )

    # -- instances --------------------------------------------------------

    def provision(self, request: ProvisionRequest) -> ProvisionResult:
        plan = self._catalog.plan(request.plan_id)
        assert plan is not None  # the OSB layer checked the plan
        names = InstanceNames.for_instance(request.instance_id)
        extensions = list(request.parameters.get("extensions", []))
        record = InstanceRecord(
            instance_id=request.instance_id,
            service_id=request.service_id,
            plan_id=request.plan_id,
            database_name=names.database,
            organization_guid=request.organization_guid,
            space_guid=request.space_guid,
            parameters=request.parameters,
            context=request.context,
            maintenance_version=self._config.maintenance_version,
            state="creating",
        )
        # The usual request, a new instance without extensions, writes its
        # record with the lock, in the same round trip, and looks up the roles
        # the SQL starts from; otherwise look first (extensions are checked
        # only for a new instance, before anything is written).
        first = (
            ()
            if extensions
            else (
                shared_state.insert_instance_if_absent_statement(record),
                shared_sql.role_existence_statement([names.owner_role, names.reader_role]),
            )
        )
        with self._conn() as conn, self._lock_instance(conn, request.instance_id, first=first) as held:
            inserted = bool(held.first) and shared_state.was_inserted(held.first[0])
            known_roles = shared_sql.role_existence(held.first[1]) if held.first else None
            existing = None if inserted else shared_state.get_instance(conn, request.instance_id)
            if existing is not None:
                same = _same_instance(existing, request)
                if existing.state == "deleting":
                    raise Busy("this service instance is being deleted")
                if not same:
                    raise Conflict(
                        "a service instance with this id already exists with different "
                        "attributes (service, plan, parameters, organization or space)"
                    )
                if existing.state == "ready":
                    return ProvisionResult(created=False)
                log.info("resuming an unfinished provision of instance %s", request.instance_id)
            elif not inserted:
                self._check_extensions_available(conn, extensions)
                shared_state.insert_instance(conn, record)
            crash_point("provision.after_record")
            shared_sql.create_group_roles(conn, names, known_roles=known_roles)
            crash_point("provision.after_group_roles")
            shared_sql.create_database(conn, names, plan.connection_limit)
            crash_point("provision.after_create_database")
            shared_sql.restrict_database(conn, names)
            with self._connect(names.database) as db_conn:
                shared_sql.prepare_database(db_conn, names)
                crash_point("provision.after_prepare_database")
                if extensions:
                    shared_sql.set_extensions(db_conn, extensions, ())
            crash_point("provision.before_mark_ready")
            # The record says ready, and the lock is given back, in the same
            # transaction as the last grant.
            ready = held.releasing(shared_state.set_instance_state_statement(request.instance_id, "ready"))
            shared_sql.grant_database_access(conn, names, after=ready)
            held.mark_released()
        return ProvisionResult(created=True)

    def _check_extensions_available(self, conn: psycopg.Connection, extensions: list[str]) -> None:
        if not extensions:
            return
        missing = sorted(set(extensions) - shared_sql.available_extensions(conn))
        if missing:
            raise InvalidRequest(
                "these extensions are allowed but not installed on the server: "
                + ", ".join(missing)
                + "; ask the operator to install them or choose others"
            )

    def update(self, request: UpdateRequest) -> None:
        with self._conn() as conn, self._lock_instance(conn, request.instance_id):
            rec = shared_state.get_instance(conn, request.instance_id)
            if rec is None:
                raise InstanceNotFound("this service instance does not exist")
            if rec.state != "ready":
                raise Busy(f"this service instance is {rec.state}; retry when that has finished")
            names = InstanceNames.for_instance(rec.instance_id)
            plan_id = request.plan_id or rec.plan_id
            plan = self._catalog.plan(plan_id)
            if plan is None:
                raise InvalidRequest(f"unknown plan_id {plan_id!r}")
            parameters = dict(rec.parameters)
            if request.parameters is not None:
                parameters.update(request.parameters)
            old_ext = set(rec.parameters.get("extensions", []))
            new_ext = set(parameters.get("extensions", []))
            if new_ext != old_ext:
                self._check_extensions_available(conn, sorted(new_ext - old_ext))
                with self._connect(names.database) as db_conn:
                    try:
                        shared_sql.set_extensions(db_conn, new_ext - old_ext, old_ext - new_ext)
                    except errors.DependentObjectsStillExist as exc:
                        raise Unprocessable(
                            "cannot remove an extension that objects in the database still use "
                            f"({_first_line(exc)}); drop those objects first"
                        ) from None
            if plan_id != rec.plan_id:
                shared_sql.set_connection_limit(conn, names, plan.connection_limit)
            context = dict(rec.context)
            if request.context:
                context.update(request.context)
            shared_state.update_instance(
                conn,
                rec.instance_id,
                plan_id=plan_id,
                parameters=parameters,
                context=context,
                maintenance_version=request.maintenance_version or rec.maintenance_version,
            )

    def deprovision(self, instance_id: str) -> None:
        names = InstanceNames.for_instance(instance_id)
        first = (
            shared_state.mark_instance_deleting_statement(instance_id),
            shared_sql.role_existence_statement([names.owner_role]),
        )
        with self._conn() as conn, self._lock_instance(conn, instance_id, first=first) as held:
            roles = shared_state.roles_to_drop(held.first[0])
            if roles is None:
                raise InstanceNotFound("this service instance does not exist")
            crash_point("deprovision.after_mark_deleting")
            shared_sql.drop_database(conn, names, known_roles=shared_sql.role_existence(held.first[1]))
            crash_point("deprovision.after_drop_database")
            # The record goes (its bindings' rows with it) and the lock is given
            # back in the same transaction as the last role.
            delete = held.releasing(shared_state.delete_instance_statement(instance_id))
            shared_sql.drop_instance_roles(conn, names, roles, after=delete)
            held.mark_released()
            crash_point("deprovision.after_delete_record")

    def fetch_instance(self, instance_id: str) -> InstanceView:
        with self._conn() as conn:
            rec = shared_state.get_instance(conn, instance_id)
            if rec is None or rec.state == "creating":
                raise InstanceNotFound("this service instance does not exist or is being created")
            if is_locked_exclusively(conn, lock_key("instance", instance_id)):
                raise Busy("this service instance is being updated")
            return InstanceView(
                service_id=rec.service_id,
                plan_id=rec.plan_id,
                parameters=rec.parameters,
                maintenance_version=rec.maintenance_version,
            )

    def instance_last_operation(self, instance_id: str) -> LastOperation:
        with self._conn() as conn:
            rec = shared_state.get_instance(conn, instance_id)
            if rec is None:
                raise InstanceNotFound("this service instance does not exist")
            return self._state_to_operation(conn, rec.state, lock_key("instance", instance_id))

    @staticmethod
    def _state_to_operation(conn: psycopg.Connection, state: str, key: int) -> LastOperation:
        if state == "ready":
            return LastOperation("succeeded")
        if is_locked_exclusively(conn, key):
            return LastOperation("in progress", f"{state} is under way")
        # Nobody holds the lock: the broker doing the work stopped. A retry of
        # the same request, or a delete, finishes or undoes it.
        return LastOperation("failed", f"{state} was interrupted; retry the request or delete")

    # -- bindings ---------------------------------------------------------

    def bind(self, request: BindRequest) -> BindResult:
        names = InstanceNames.for_instance(request.instance_id)
        # A new binding's password, and its verifier hashed on another thread meanwhile.
        new_password = generate_password()
        new_verifier = self._background.submit(scram_sha256_verifier, new_password)
        new_record = BindingRecord(
            binding_id=request.binding_id,
            instance_id=request.instance_id,
            role_name=binding_role(request.binding_id),
            service_id=request.service_id,
            plan_id=request.plan_id,
            app_guid=request.app_guid,
            predecessor_binding_id=request.predecessor_binding_id,
            parameters=request.parameters or {},
            context=request.context,
            password_sealed=self._box.seal(new_password, request.binding_id),
            state="creating",
        )
        # The records a bind starts from and the role it makes are read with
        # the locks, in one round trip. The usual request, without a
        # predecessor (whose parameters a rotation inherits), also writes its
        # record there if the instance is ready and the binding new.
        first = [
            shared_state.instance_and_binding_statement(request.instance_id, request.binding_id),
            shared_sql.role_existence_statement([new_record.role_name]),
        ]
        if request.predecessor_binding_id is None:
            first.append(shared_state.insert_binding_if_new_statement(new_record))
        with (
            # The instance's database is needed once the role exists; open it
            # while the locks and the records are settled.
            self._connect_early(names.database) as instance_db,
            self._conn() as conn,
            self._lock_binding(conn, request.instance_id, request.binding_id, first=first) as held,
        ):
            inst, existing = shared_state.instance_and_binding(held.first[0])
            known_roles = shared_sql.role_existence(held.first[1])
            inserted = len(held.first) > 2 and shared_state.was_inserted(held.first[2])
            if inst is None or inst.state != "ready":
                raise InvalidRequest("the service instance does not exist (or is not ready)")
            parameters = request.parameters
            if request.predecessor_binding_id is not None:
                if existing is not None and existing.predecessor_binding_id == request.predecessor_binding_id:
                    # A repeated rotation: the predecessor may be unbound by now,
                    # and the successor already carries its parameters.
                    if parameters is None:
                        parameters = existing.parameters
                else:
                    pred = shared_state.get_binding(conn, request.predecessor_binding_id)
                    if pred is None or pred.instance_id != request.instance_id or pred.state != "ready":
                        raise InvalidRequest(
                            "predecessor_binding_id must name an existing binding of this instance"
                        )
                    if parameters is None:
                        parameters = pred.parameters  # a rotated binding keeps its parameters
            parameters = parameters or {}
            if existing is not None:
                if existing.instance_id != request.instance_id or not _same_binding(
                    existing, request, parameters
                ):
                    raise Conflict("a binding with this id already exists with different attributes")
                if existing.state == "deleting":
                    raise Busy("this binding is being deleted")
                password = self._box.open(existing.password_sealed, existing.binding_id)
                if existing.state == "ready":
                    return self._bind_result(False, inst, existing.role_name, password)
                record = existing
                verifier = scram_sha256_verifier(password)
                log.info("resuming an unfinished bind %s", request.binding_id)
            else:
                password = new_password
                record = dataclasses.replace(new_record, parameters=parameters)
                if not inserted:
                    shared_state.insert_binding(conn, record)
                verifier = new_verifier.result()
            crash_point("bind.after_record")
            read_only = bool(parameters.get("read_only", False))
            shared_sql.create_login_role(conn, record.role_name, verifier, known_roles=known_roles)
            with instance_db.connect(names.database) as db_conn:
                if read_only:
                    shared_sql.grant_reader_existing(db_conn, names)
                else:
                    shared_sql.share_login_role_objects(db_conn, record.role_name, names)
            crash_point("bind.after_role")
            # The record says ready, and the locks are given back, in the same
            # transaction as the role's last grant.
            ready = held.releasing(shared_state.set_binding_state_statement(request.binding_id, "ready"))
            shared_sql.grant_login_role(conn, record.role_name, names, read_only=read_only, after=ready)
            held.mark_released()
            return self._bind_result(True, inst, record.role_name, password)

    def _credentials(self, inst: InstanceRecord, role: str, password: str) -> dict[str, Any]:
        return build_credentials(
            hosts=self._db.credential_hosts,
            port=self._db.credential_port,
            database=inst.database_name,
            username=role,
            password=password,
        )

    def _endpoints(self) -> list[dict[str, Any]]:
        port = str(self._db.credential_port)
        return [{"host": h, "ports": [port], "protocol": "tcp"} for h in self._db.credential_hosts]

    def _bind_result(self, created: bool, inst: InstanceRecord, role: str, password: str) -> BindResult:
        return BindResult(
            created=created,
            credentials=self._credentials(inst, role, password),
            endpoints=self._endpoints(),
        )

    def unbind(self, instance_id: str, binding_id: str) -> None:
        names = InstanceNames.for_instance(instance_id)
        first = (
            shared_state.mark_binding_deleting_statement(binding_id, instance_id),
            # The role the record names is (nearly always) the one its id gives.
            shared_sql.role_existence_statement([binding_role(binding_id)]),
        )
        with (
            # The role's objects pass to the owner in the instance's database;
            # open it while the locks and the record are settled.
            self._connect_early(names.database) as instance_db,
            self._conn() as conn,
            self._lock_binding(conn, instance_id, binding_id, first=first) as held,
        ):
            role = shared_state.role_to_drop(held.first[0])
            if role is None:
                raise BindingNotFound("this service binding does not exist")
            crash_point("unbind.after_mark_deleting")
            # The record goes and the locks are given back in the same transaction as the role.
            delete = held.releasing(shared_state.delete_binding_statement(binding_id))
            known_roles = shared_sql.role_existence(held.first[1])
            shared_sql.drop_login_role(
                conn, instance_db.connect, role, names, known_roles=known_roles, after=delete
            )
            held.mark_released()
            crash_point("unbind.after_delete_record")

    def fetch_binding(self, instance_id: str, binding_id: str) -> BindingView:
        with self._conn() as conn:
            rec = shared_state.get_binding(conn, binding_id)
            if rec is None or rec.instance_id != instance_id or rec.state != "ready":
                raise BindingNotFound("this service binding does not exist or is being created")
            inst = shared_state.get_instance(conn, instance_id)
            if inst is None:
                raise BindingNotFound("this service binding does not exist")
            password = self._box.open(rec.password_sealed, rec.binding_id)
            return BindingView(
                credentials=self._credentials(inst, rec.role_name, password),
                endpoints=self._endpoints(),
                parameters=rec.parameters,
            )

    def binding_last_operation(self, instance_id: str, binding_id: str) -> LastOperation:
        with self._conn() as conn:
            rec = shared_state.get_binding(conn, binding_id)
            if rec is None or rec.instance_id != instance_id:
                raise BindingNotFound("this service binding does not exist")
            return self._state_to_operation(conn, rec.state, lock_key("binding", binding_id))


def _same_instance(rec: InstanceRecord, req: ProvisionRequest) -> bool:
    return (
        rec.service_id == req.service_id
        and rec.plan_id == req.plan_id
        and rec.parameters == req.parameters
        and rec.organization_guid == req.organization_guid
        and rec.space_guid == req.space_guid
    )


def _same_binding(rec: BindingRecord, req: BindRequest, parameters: dict[str, Any]) -> bool:
    return (
        rec.parameters == parameters
        and rec.app_guid == req.app_guid
        and rec.predecessor_binding_id == req.predecessor_binding_id
        and (req.service_id is None or rec.service_id in (None, req.service_id))
        and (req.plan_id is None or rec.plan_id in (None, req.plan_id))
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
