"""The four OSB calls of a service's life, over real HTTP, as a Cloud Controller makes them."""

from __future__ import annotations

import base64
import http.client
import json
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode, urlsplit

from benchmarks.target import API_VERSION, Target

REQUEST_TIMEOUT_S = 120


class BenchError(RuntimeError):
    """A call answered with a status the benchmark did not expect."""


class BrokerClient:
    """One client's keep-alive connection; use one per thread.

    The standard library's http.client, not requests: requests spends about
    1.5 ms of its own per call here, which would be charged to the broker.
    A Cloud Controller's client is not part of what this measures.
    """

    def __init__(self, target: Target) -> None:
        self._target = target
        url = urlsplit(target.broker_url)
        self._host, self._port = url.hostname or "127.0.0.1", url.port or 80
        token = base64.b64encode(f"{target.username}:{target.password}".encode()).decode()
        self._headers = {
            "Authorization": f"Basic {token}",
            "X-Broker-API-Version": API_VERSION,
            "Content-Type": "application/json",
        }
        self._conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _request(self, method: str, target: str, body: bytes | None) -> tuple[int, bytes]:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self._host, self._port, timeout=REQUEST_TIMEOUT_S)
        self._conn.request(method, target, body=body, headers=self._headers)
        resp = self._conn.getresponse()
        return resp.status, resp.read()

    def _call(
        self,
        method: str,
        path: str,
        expected: int,
        *,
        params: dict[str, str] | None = None,
        json_body: dict[str, Any] | None = None,
    ) -> None:
        target = path + ("?" + urlencode(params) if params else "")
        body = json.dumps(json_body).encode() if json_body is not None else None
        try:
            status, data = self._request(method, target, body)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # The server closed an idle keep-alive connection; one fresh try.
            self.close()
            status, data = self._request(method, target, body)
        if status != expected:
            # Only the error code: a bind answer carries credentials.
            try:
                code = json.loads(data).get("error", "")
            except ValueError:
                code = ""
            raise BenchError(f"{method} {path.split('/')[2]} answered {status} {code}".strip())

    def provision(self, instance_id: str) -> None:
        body = {
            "service_id": self._target.service_id,
            "plan_id": self._target.plan_id,
            "organization_guid": "bench-org",
            "space_guid": "bench-space",
            "context": {"platform": "cloudfoundry"},
        }
        path = f"/v2/service_instances/{instance_id}"
        self._call("PUT", path, 201, params={"accepts_incomplete": "true"}, json_body=body)

    def bind(self, instance_id: str, binding_id: str) -> None:
        body = {
            "service_id": self._target.service_id,
            "plan_id": self._target.plan_id,
            "bind_resource": {"app_guid": "bench-app"},
        }
        path = f"/v2/service_instances/{instance_id}/service_bindings/{binding_id}"
        self._call("PUT", path, 201, json_body=body)

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
        return sum(self.lifecycle_steps())

    def lifecycle_steps(self) -> tuple[float, ...]:
        """The same lifecycle; the seconds each of its steps (`STEPS`) took."""
        instance_id, binding_id = str(uuid.uuid4()), str(uuid.uuid4())
        return timed_steps(
            lambda: self.provision(instance_id),
            lambda: self.bind(instance_id, binding_id),
            lambda: self.unbind(instance_id, binding_id),
            lambda: self.deprovision(instance_id),
        )


STEPS = ("provision", "bind", "unbind", "deprovision")


def timed_steps(*steps: Callable[[], None]) -> tuple[float, ...]:
    """Run the steps in order; the seconds each took."""
    taken = []
    for step in steps:
        started = time.perf_counter()
        step()
        taken.append(time.perf_counter() - started)
    return tuple(taken)
