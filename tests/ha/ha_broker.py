"""Broker processes whose admin connection lists every node of the formation (the HA configuration)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml

from postgres_service_broker.local_cluster import free_port
from tests.support.auto_failover import Formation, Server
from tests.support.broker_process import (
    BROKER_PASSWORD,
    BROKER_USER,
    ENCRYPTION_KEY,
    SECOND_PASSWORD,
    SECOND_USER,
    BrokerProcess,
)


def ha_broker(
    workdir: Path, formation: Formation, hosts: Sequence[Server], env: dict[str, str] | None = None
) -> BrokerProcess:
    """A broker (not yet started) configured as the HA job renders it: `database.host` names every node."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    admin = formation.nodes[0]
    doc = {
        "auth": [
            {"username": BROKER_USER, "password": BROKER_PASSWORD},
            {"username": SECOND_USER, "password": SECOND_PASSWORD},
        ],
        "encryption_key": ENCRYPTION_KEY,
        "listen": {"host": "127.0.0.1", "port": port},
        "database": {
            "host": ",".join(n.host for n in hosts),
            "port": formation.node_port,
            "user": admin.superuser,
            "password": admin.superuser_password,
            "sslmode": "disable",
            "connect_timeout": 3,
        },
        "log_level": "INFO",
    }
    config_path = workdir / f"broker-{port}.yml"
    config_path.write_text(yaml.safe_dump(doc))
    config_path.chmod(0o600)
    return BrokerProcess(
        config_path=config_path, port=port, log_path=workdir / f"broker-{port}.log", env=env or {}
    )
