"""The four OSB calls of a service's life, over real HTTP, as a Cloud Controller makes them."""

from __future__ import annotations

import time
import uuid
from typing import Any

import requests

from benchmarks.target import API_VERSION, Target

REQUEST_TIMEOUT_S = 120


class BenchError(RuntimeError):
    """A call answered with a status the benchmark did not expect."""


class BrokerClient:
    """One client's keep-alive session; use one per thread (a Session is not shared safely)."""

    def __init__(self, target: Target) -> None:
        self._target = target
        self._session = requests.Session()
        self._session.auth = (target.username, target.password)
        self._session.headers["X-Broker-API-Version"] = API_VERSION

    def close(self) -> None:
        self._session.close()

    def _call(self, method: str, path: str, expected: int, **kwargs: Any) -> None:
        resp = self._session.request(
            method, self._target.broker_url + path, timeout=REQUEST_TIMEOUT_S, **kwargs
        )
        if resp.status_code != expected:
            # Only the error code: a bind answer carries credentials.
            try:
                code = resp.json().get("error", "")
            except ValueError:
                code = ""
            raise BenchError(f"{method} {path.split('/')[2]} answered {resp.status_code} {code}".strip())

    def provision(self, instance_id: str) -> None:
        body = {
            "service_id": self._target.service_id,
            "plan_id": self._target.plan_id,
            "organization_guid": "bench-org",
            "space_guid": "bench-space",
            "context": {"platform": "cloudfoundry"},
        }
        path = f"/v2/service_instances/{instance_id}"
        self._call("PUT", path, 201, params={"accepts_incomplete": "true"}, json=body)

    def bind(self, instance_id: str, binding_id: str) -> None:
        body = {
            "service_id": self._target.service_id,
            "plan_id": self._target.plan_id,
            "bind_resource": {"app_guid": "bench-app"},
        }
        path = f"/v2/service_instances/{instance_id}/service_bindings/{binding_id}"
        self._call("PUT", path, 201, json=body)

    def unbind(self, instance_id: str, binding_id: str) -> None:
        self._call(
            "DELETE",
            f"/v2/service_instances/{instance_id}/service_bindings/{binding_id}",
            200,
            params=self._ids(),
        )

    def deprovision(self, instance_id: str) -> None:
        self._call(
            "DELETE",
            f"/v2/service_instances/{instance_id}",
            200,
            params={**self._ids(), "accepts_incomplete": "true"},
        )

    def _ids(self) -> dict[str, str]:
        return {"service_id": self._target.service_id, "plan_id": self._target.plan_id}

    def lifecycle(self) -> float:
        """Provision, bind, unbind, deprovision one new instance; the seconds it took."""
        instance_id, binding_id = str(uuid.uuid4()), str(uuid.uuid4())
        started = time.perf_counter()
        self.provision(instance_id)
        self.bind(instance_id, binding_id)
        self.unbind(instance_id, binding_id)
        self.deprovision(instance_id)
        return time.perf_counter() - started
