"""Inputs for rendering each job: the least a manifest must set, and a full property set.

Secrets here are distinctive strings, so a test can search every rendered file
and error message for them. The admin password carries a quote, a backslash
and a dollar sign, which SQL, shell and YAML each treat specially.
"""

from __future__ import annotations

from typing import Any

from tests.templates.renderer import Link

ADMIN_PASSWORD = "adm'in\\pa$$-Secret-7f3a"
BROKER_PASSWORD = "broker-Secret-91c2"
NEXT_BROKER_PASSWORD = "broker-next-Secret-55d0"
ENCRYPTION_KEY = "encryption-key-Secret-0123456789abcdef"
CF_CLIENT_SECRET = "cf-client-Secret-8e21"
CF_PASSWORD = "cf-admin-Secret-3b77"
# pgpass files escape ':' and '\\', SQL doubles "'": each appears here.
MONITOR_PASSWORD = "mon:itor'Secret-\\60b4"
REPLICATION_PASSWORD = "repl:ication'Secret-2f9e"

POSTGRES_ADDRESSES = ["10.0.1.10"]
BROKER_ADDRESSES = ["10.0.2.20"]
MONITOR_ADDRESSES = ["10.0.3.30"]


def postgres_minimal() -> dict[str, Any]:
    return {"postgres": {"admin_password": ADMIN_PASSWORD}}


def postgres_link(
    postgres_properties: dict[str, Any] | None = None, addresses: list[str] | None = None
) -> Link:
    """The `postgres` link as the director would build it from the postgres job's properties."""
    return Link(
        addresses=addresses or POSTGRES_ADDRESSES,
        properties=postgres_properties or postgres_minimal(),
        from_job="postgres",
    )


def pg_monitor_minimal() -> dict[str, Any]:
    return {"pg_monitor": {"autoctl_node_password": MONITOR_PASSWORD}}


def pg_monitor_link(
    monitor_properties: dict[str, Any] | None = None, addresses: list[str] | None = None
) -> Link:
    """The `pg-monitor` link as the director would build it from the pg-monitor job's properties."""
    return Link(
        addresses=addresses or MONITOR_ADDRESSES,
        properties=monitor_properties or pg_monitor_minimal(),
        from_job="pg-monitor",
    )


def postgres_ha_minimal() -> dict[str, Any]:
    """The least a postgres job in HA mode (with a `pg-monitor` link) needs."""
    return {
        "postgres": {"admin_password": ADMIN_PASSWORD, "ha": {"replication_password": REPLICATION_PASSWORD}}
    }


def broker_minimal() -> dict[str, Any]:
    return {"broker": {"password": BROKER_PASSWORD, "encryption_key": ENCRYPTION_KEY}}


def broker_link(broker_properties: dict[str, Any] | None = None, addresses: list[str] | None = None) -> Link:
    return Link(
        addresses=addresses or BROKER_ADDRESSES,
        properties=broker_properties or broker_minimal(),
        from_job="broker",
    )


def registrar_minimal() -> dict[str, Any]:
    return {
        "cf": {
            "api_url": "https://api.sys.example.com",
            "client_id": "postgres-service-registrar",
            "client_secret": CF_CLIENT_SECRET,
        }
    }


# job -> (properties, links): what each job needs at the least to render.
MINIMAL: dict[str, tuple[dict[str, Any], dict[str, Link]]] = {
    "postgres": (postgres_minimal(), {}),
    "pg-monitor": (pg_monitor_minimal(), {}),
    "broker": (broker_minimal(), {"postgres": postgres_link()}),
    "register-broker": (registrar_minimal(), {"broker": broker_link()}),
    "deregister-broker": (registrar_minimal(), {}),
    "smoke-tests": ({}, {"broker": broker_link()}),
}

# Every secret above, for "never shown" checks.
SECRETS = [
    ADMIN_PASSWORD,
    BROKER_PASSWORD,
    NEXT_BROKER_PASSWORD,
    ENCRYPTION_KEY,
    CF_CLIENT_SECRET,
    CF_PASSWORD,
    MONITOR_PASSWORD,
    REPLICATION_PASSWORD,
]
