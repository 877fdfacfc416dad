"""What a benchmark aims at: a running broker and the cluster behind it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import requests

API_VERSION = "2.17"


@dataclass(frozen=True)
class Target:
    """The broker's address and credentials, the cluster's admin connection, and one plan to use.

    Secrets stay out of ``repr`` so a traceback or a log line cannot show them.
    """

    broker_url: str
    username: str
    password: str = field(repr=False)
    conninfo: dict[str, Any] = field(repr=False)
    service_id: str
    plan_id: str
    connection_limit: int

    @classmethod
    def discover(cls, broker_url: str, username: str, password: str, conninfo: dict[str, Any]) -> Target:
        """Read the service, its first plan and that plan's connection limit from the broker's catalog."""
        resp = requests.get(
            broker_url.rstrip("/") + "/v2/catalog",
            auth=(username, password),
            headers={"X-Broker-API-Version": API_VERSION},
            timeout=30,
        )
        resp.raise_for_status()
        service = resp.json()["services"][0]
        plan = service["plans"][0]
        return cls(
            broker_url=broker_url.rstrip("/"),
            username=username,
            password=password,
            conninfo=dict(conninfo),
            service_id=service["id"],
            plan_id=plan["id"],
            connection_limit=int(plan["metadata"]["connectionLimit"]),
        )
