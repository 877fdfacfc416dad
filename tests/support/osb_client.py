"""A small OSB client over real HTTP, with the headers a Cloud Controller sends."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import requests

from postgres_service_broker.config import DEFAULT_LARGE_PLAN_ID, DEFAULT_SERVICE_ID, DEFAULT_SMALL_PLAN_ID

SERVICE_ID = DEFAULT_SERVICE_ID
SMALL_PLAN = DEFAULT_SMALL_PLAN_ID
LARGE_PLAN = DEFAULT_LARGE_PLAN_ID


def new_id() -> str:
    return str(uuid.uuid4())


def cf_identity(user_id: str = "683ea748-3092-4ff4-b656-39cacc4d5360") -> str:
    value = base64.b64encode(json.dumps({"user_id": user_id}).encode()).decode()
    return f"cloudfoundry {value}"


class OsbClient:
    def __init__(self, base_url: str, username: str, password: str, version: str = "2.17") -> None:
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        self.session.auth = (username, password)
        self.session.headers["X-Broker-API-Version"] = version
        self.session.headers["X-Broker-API-Originating-Identity"] = cf_identity()

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 60)
        return self.session.request(method, self.base_url + path, **kwargs)

    def catalog(self) -> requests.Response:
        return self.request("GET", "/v2/catalog")

    def provision(
        self,
        instance_id: str,
        plan_id: str = SMALL_PLAN,
        parameters: dict[str, Any] | None = None,
        **body: Any,
    ) -> requests.Response:
        doc: dict[str, Any] = {
            "service_id": SERVICE_ID,
            "plan_id": plan_id,
            "organization_guid": "org-guid",
            "space_guid": "space-guid",
            "context": {
                "platform": "cloudfoundry",
                "organization_guid": "org-guid",
                "organization_name": "my-org",
                "space_guid": "space-guid",
                "space_name": "my-space",
                "instance_name": "my-db",
            },
        }
        if parameters is not None:
            doc["parameters"] = parameters
        doc.update(body)
        return self.request(
            "PUT", f"/v2/service_instances/{instance_id}", params={"accepts_incomplete": "true"}, json=doc
        )

    def update(self, instance_id: str, **body: Any) -> requests.Response:
        doc: dict[str, Any] = {"service_id": SERVICE_ID, **body}
        return self.request("PATCH", f"/v2/service_instances/{instance_id}", json=doc)

    def deprovision(self, instance_id: str, plan_id: str = SMALL_PLAN) -> requests.Response:
        return self.request(
            "DELETE",
            f"/v2/service_instances/{instance_id}",
            params={"service_id": SERVICE_ID, "plan_id": plan_id, "accepts_incomplete": "true"},
        )

    def fetch_instance(self, instance_id: str) -> requests.Response:
        return self.request("GET", f"/v2/service_instances/{instance_id}")

    def bind(
        self,
        instance_id: str,
        binding_id: str,
        plan_id: str = SMALL_PLAN,
        parameters: dict[str, Any] | None = None,
        **body: Any,
    ) -> requests.Response:
        doc: dict[str, Any] = {
            "service_id": SERVICE_ID,
            "plan_id": plan_id,
            "bind_resource": {"app_guid": "app-guid"},
        }
        if parameters is not None:
            doc["parameters"] = parameters
        doc.update(body)
        return self.request(
            "PUT", f"/v2/service_instances/{instance_id}/service_bindings/{binding_id}", json=doc
        )

    def unbind(self, instance_id: str, binding_id: str, plan_id: str = SMALL_PLAN) -> requests.Response:
        return self.request(
            "DELETE",
            f"/v2/service_instances/{instance_id}/service_bindings/{binding_id}",
            params={"service_id": SERVICE_ID, "plan_id": plan_id},
        )

    def fetch_binding(self, instance_id: str, binding_id: str) -> requests.Response:
        return self.request("GET", f"/v2/service_instances/{instance_id}/service_bindings/{binding_id}")
