"""What the OSB spec expects of every broker response, and probes of what the broker left on the cluster.

Contract tests assert two things about each request: the HTTP answer (status,
body shape, error code) exactly as the spec's tables order it, and the effect
on the real cluster (a database, roles, the broker's own record rows) - above
all that a refused request (4xx) left nothing behind.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import psycopg
import requests

from postgres_service_broker.backends.shared_names import InstanceNames, binding_role
from postgres_service_broker.local_cluster import LocalCluster
from tests.support.osb_client import SERVICE_ID, SMALL_PLAN, OsbClient

# The spec: "A single word in camel case that uniquely identifies the error condition."
ERROR_CODE = re.compile(r"[A-Z][A-Za-z0-9]*")
# Semantic Versioning 2.0.0, the grammar the spec requires of maintenance_info.version.
SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?"
)
STATE_DATABASE = "service_broker"


def path_id(ident: str) -> str:
    """An OSB id as it goes into a URL: every byte outside the unreserved set percent-encoded."""
    return quote(ident, safe="")


def instance_path(instance_id: str) -> str:
    return f"/v2/service_instances/{path_id(instance_id)}"


def binding_path(instance_id: str, binding_id: str) -> str:
    return f"{instance_path(instance_id)}/service_bindings/{path_id(binding_id)}"


def provision_body(**changes: Any) -> dict[str, Any]:
    """A valid provision body as a Cloud Controller sends it; `changes` replace fields (None removes)."""
    body: dict[str, Any] = {
        "service_id": SERVICE_ID,
        "plan_id": SMALL_PLAN,
        "organization_guid": "org-guid",
        "space_guid": "space-guid",
        "context": {
            "platform": "cloudfoundry",
            "organization_guid": "org-guid",
            "space_guid": "space-guid",
            "instance_name": "my-db",
        },
    }
    return _apply(body, changes)


def bind_body(**changes: Any) -> dict[str, Any]:
    """A valid bind body as a Cloud Controller sends it; `changes` replace fields (None removes)."""
    body: dict[str, Any] = {
        "service_id": SERVICE_ID,
        "plan_id": SMALL_PLAN,
        "bind_resource": {"app_guid": "app-guid"},
        "context": {"platform": "cloudfoundry"},
    }
    return _apply(body, changes)


def _apply(body: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    for key, value in changes.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return body


def put_instance(osb: OsbClient, instance_id: str, **kwargs: Any) -> requests.Response:
    """PUT a provision request with raw control over body and query (json=, data=, params=)."""
    return osb.request("PUT", instance_path(instance_id), **kwargs)


def put_binding(osb: OsbClient, instance_id: str, binding_id: str, **kwargs: Any) -> requests.Response:
    return osb.request("PUT", binding_path(instance_id, binding_id), **kwargs)


def provisioned(osb: OsbClient, instance_id: str, **changes: Any) -> str:
    """Provision an instance that a test needs as a precondition; fail loudly if that does not work."""
    resp = put_instance(osb, instance_id, json=provision_body(**changes))
    assert resp.status_code == 201, resp.text
    return instance_id


def bound(osb: OsbClient, instance_id: str, binding_id: str, **changes: Any) -> dict[str, Any]:
    """Bind as a precondition; return the credentials."""
    resp = put_binding(osb, instance_id, binding_id, json=bind_body(**changes))
    assert resp.status_code == 201, resp.text
    return resp.json()["credentials"]


def deprovision(osb: OsbClient, instance_id: str) -> requests.Response:
    return osb.request(
        "DELETE", instance_path(instance_id), params={"service_id": SERVICE_ID, "plan_id": SMALL_PLAN}
    )


def unbind(osb: OsbClient, instance_id: str, binding_id: str) -> requests.Response:
    return osb.request(
        "DELETE",
        binding_path(instance_id, binding_id),
        params={"service_id": SERVICE_ID, "plan_id": SMALL_PLAN},
    )


# -- response shapes ---------------------------------------------------------


def assert_json(resp: requests.Response, status: int) -> Any:
    assert resp.status_code == status, f"expected {status}, got {resp.status_code}: {resp.text[:500]}"
    assert resp.headers.get("Content-Type", "").startswith("application/json"), resp.headers
    return resp.json()


def assert_osb_error(resp: requests.Response, status: int, error: str | None = None) -> dict[str, Any]:
    """An OSB error body: non-empty camel-case `error` and a non-empty `description`."""
    body = assert_json(resp, status)
    assert isinstance(body, dict), body
    assert isinstance(body.get("error"), str), body
    assert ERROR_CODE.fullmatch(body["error"]), body
    assert isinstance(body.get("description"), str), body
    assert body["description"].strip(), body
    if error is not None:
        assert body["error"] == error, body
    return body


def assert_empty_object(resp: requests.Response, status: int) -> None:
    """200 for update/unbind/deprovision and every 410: the spec's body is exactly `{}`."""
    assert assert_json(resp, status) == {}


# -- the cluster, seen from outside the broker ---------------------------------


@contextmanager
def state_connection(cluster: LocalCluster) -> Iterator[psycopg.Connection]:
    """A superuser connection to the database that holds the broker's records."""
    with psycopg.connect(**cluster.conninfo(STATE_DATABASE), autocommit=True) as conn:
        yield conn


# One superuser connection per (cluster, database) for the whole test session: probes run after
# almost every request, and a fresh SCRAM login each time would dominate the run time.
_PROBE_CONNECTIONS: dict[tuple[int, str], psycopg.Connection] = {}


def _probe_connection(cluster: LocalCluster, dbname: str) -> psycopg.Connection:
    key = (cluster.port, dbname)
    conn = _PROBE_CONNECTIONS.get(key)
    if conn is None or conn.closed:
        conn = psycopg.connect(**cluster.conninfo(dbname), autocommit=True)
        _PROBE_CONNECTIONS[key] = conn
    return conn


class ClusterProbe:
    """Looks at the cluster directly (never through the broker) to see what a request did."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster

    def _one(self, dbname: str, query: str, args: tuple[Any, ...] | dict[str, Any]) -> Any:
        row = _probe_connection(self.cluster, dbname).execute(query, args).fetchone()
        return None if row is None else row[0]

    def database_exists(self, name: str) -> bool:
        return self._one("postgres", "SELECT 1 FROM pg_database WHERE datname = %s", (name,)) is not None

    def role_exists(self, name: str) -> bool:
        return self._one("postgres", "SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)) is not None

    def connection_limit(self, database: str) -> int | None:
        return self._one("postgres", "SELECT datconnlimit FROM pg_database WHERE datname = %s", (database,))

    def extensions(self, database: str) -> set[str]:
        # Instance databases get dropped, so they get a connection of their own each time.
        with psycopg.connect(**self.cluster.conninfo(database), autocommit=True) as conn:
            return {r[0] for r in conn.execute("SELECT extname FROM pg_extension").fetchall()}

    def instance_record(self, instance_id: str) -> dict[str, Any] | None:
        if "\x00" in instance_id:
            return None  # text cannot hold NUL, so no record can carry this id
        return self._one(
            STATE_DATABASE,
            "SELECT to_jsonb(i) FROM broker.service_instances i WHERE instance_id = %s",
            (instance_id,),
        )

    def binding_record(self, binding_id: str) -> dict[str, Any] | None:
        if "\x00" in binding_id:
            return None
        return self._one(
            STATE_DATABASE,
            "SELECT to_jsonb(b) - 'password_sealed' FROM broker.service_bindings b WHERE binding_id = %s",
            (binding_id,),
        )

    def assert_no_instance(self, instance_id: str) -> None:
        """Nothing of the instance exists: no database, no group roles, no record row."""
        names = InstanceNames.for_instance(instance_id)
        found = self._one(
            "postgres",
            "SELECT array(SELECT datname::text FROM pg_database WHERE datname = %(db)s "
            "UNION ALL SELECT rolname::text FROM pg_roles WHERE rolname = ANY(%(roles)s))",
            {"db": names.database, "roles": [names.owner_role, names.reader_role]},
        )
        assert found == [], f"left behind: {found}"
        assert self.instance_record(instance_id) is None, "the broker recorded the instance"

    def assert_instance_ready(self, instance_id: str) -> None:
        names = InstanceNames.for_instance(instance_id)
        assert self.database_exists(names.database)
        record = self.instance_record(instance_id)
        assert record is not None
        assert record["state"] == "ready", record

    def assert_no_binding(self, binding_id: str) -> None:
        role = binding_role(binding_id)
        assert not self.role_exists(role), f"role {role} exists"
        assert self.binding_record(binding_id) is None, "the broker recorded the binding"


def can_connect(credentials: dict[str, Any]) -> bool:
    """Whether the credentials of a binding log in (and really land as that user in that database)."""
    try:
        with psycopg.connect(credentials["uri"], autocommit=True, connect_timeout=5) as conn:
            row = conn.execute("SELECT session_user, current_database()").fetchone()
    except psycopg.OperationalError:
        return False
    assert row == (credentials["username"], credentials["name"]), row
    return True
