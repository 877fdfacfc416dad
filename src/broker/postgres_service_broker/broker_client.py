"""A client of the Open Service Broker API (v2.17), sending what a Cloud Controller sends.

The smoke-tests errand drives the broker through this, so what it proves is
what CF will see: basic auth, ``X-Broker-API-Version``, an originating
identity, a fresh request identity per call, ``accepts_incomplete=true``.
Responses come back as they are; callers decide what a status means.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from postgres_service_broker.cf.transport import HttpResponse, HttpTransport

API_VERSION = "2.17"


def describe(resp: HttpResponse) -> str:
    """Status and the broker's error body (``error``, ``description``), for messages."""
    doc = resp.json()
    parts = []
    if isinstance(doc, dict):
        for key in ("error", "description"):
            if isinstance(doc.get(key), str) and doc[key]:
                parts.append(doc[key][:300])
    return f"HTTP {resp.status}" + (": " + " - ".join(parts) if parts else "")


@dataclass
class BrokerClient:
    url: str
    username: str
    password: str
    transport: HttpTransport
    # Shown in the broker's audit log as the user who asked.
    originating_user: str = "smoke-tests"

    def _headers(self) -> dict[str, str]:
        basic = base64.b64encode(f"{self.username}:{self.password}".encode()).decode("ascii")
        identity = base64.b64encode(json.dumps({"user_id": self.originating_user}).encode()).decode("ascii")
        return {
            "Authorization": f"Basic {basic}",
            "X-Broker-API-Version": API_VERSION,
            "X-Broker-API-Originating-Identity": f"cloudfoundry {identity}",
            "X-Broker-API-Request-Identity": str(uuid.uuid4()),
        }

    def request(
        self, method: str, path: str, *, params: dict[str, str] | None = None, body: Any = None
    ) -> HttpResponse:
        url = self.url.rstrip("/") + path
        if params:
            url += "?" + urlencode(params)
        return self.transport.json_request(method, url, headers=self._headers(), json_body=body)

    @staticmethod
    def _instance(instance_id: str) -> str:
        return f"/v2/service_instances/{quote(instance_id, safe='')}"

    def _binding(self, instance_id: str, binding_id: str) -> str:
        return f"{self._instance(instance_id)}/service_bindings/{quote(binding_id, safe='')}"

    def catalog(self) -> HttpResponse:
        return self.request("GET", "/v2/catalog")

    def provision(self, instance_id: str, body: dict[str, Any]) -> HttpResponse:
        return self.request(
            "PUT", self._instance(instance_id), params={"accepts_incomplete": "true"}, body=body
        )

    def deprovision(self, instance_id: str, service_id: str, plan_id: str) -> HttpResponse:
        params = {"service_id": service_id, "plan_id": plan_id, "accepts_incomplete": "true"}
        return self.request("DELETE", self._instance(instance_id), params=params)

    def instance_last_operation(self, instance_id: str, params: dict[str, str]) -> HttpResponse:
        return self.request("GET", self._instance(instance_id) + "/last_operation", params=params)

    def bind(self, instance_id: str, binding_id: str, body: dict[str, Any]) -> HttpResponse:
        return self.request(
            "PUT", self._binding(instance_id, binding_id), params={"accepts_incomplete": "true"}, body=body
        )

    def fetch_binding(self, instance_id: str, binding_id: str) -> HttpResponse:
        return self.request("GET", self._binding(instance_id, binding_id))

    def unbind(self, instance_id: str, binding_id: str, service_id: str, plan_id: str) -> HttpResponse:
        params = {"service_id": service_id, "plan_id": plan_id, "accepts_incomplete": "true"}
        return self.request("DELETE", self._binding(instance_id, binding_id), params=params)

    def binding_last_operation(
        self, instance_id: str, binding_id: str, params: dict[str, str]
    ) -> HttpResponse:
        return self.request("GET", self._binding(instance_id, binding_id) + "/last_operation", params=params)
