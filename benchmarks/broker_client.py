"""The four OSB calls of a service's life, over real HTTP, as a Cloud Controller makes them."""

from __future__ import annotations

import base64
import io
import json
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pycurl

from benchmarks.target import API_VERSION, Target

REQUEST_TIMEOUT_S = 120


class BenchError(RuntimeError):
    """A call answered with a status the benchmark did not expect."""


class BrokerClient:
    """One client's keep-alive connection; use one per thread.

    libcurl (pycurl), not a Python HTTP client: whatever the client spends is
    charged to the broker, and a Cloud Controller's client is not part of
    what this measures. A call's round trip to a trivial WSGI app took about
    750 us with the standard library's http.client and 520 us with libcurl
    when the client's CPU caches were cold, as they are after waiting on a
    database step (220 and 180 us warm); requests spends more than either.
    libcurl also keeps the connection alive and reopens it if the server
    closed it while idle.
    """

    def __init__(self, target: Target) -> None:
        self._target = target
        token = base64.b64encode(f"{target.username}:{target.password}".encode()).decode()
        self._curl = pycurl.Curl()
        self._curl.setopt(pycurl.TIMEOUT, REQUEST_TIMEOUT_S)
        self._curl.setopt(pycurl.NOSIGNAL, 1)  # timeouts without signals: clients run on threads
        self._curl.setopt(
            pycurl.HTTPHEADER,
            [
                f"Authorization: Basic {token}",
                f"X-Broker-API-Version: {API_VERSION}",
                "Content-Type: application/json",
                "Expect:",  # send a body at once, without waiting for "100 Continue"
            ],
        )

    def close(self) -> None:
        self._curl.close()

    def _request(self, method: str, target: str, body: bytes | None) -> tuple[int, bytes]:
        received = io.BytesIO()
        curl = self._curl
        curl.setopt(pycurl.URL, self._target.broker_url + target)
        curl.setopt(pycurl.WRITEDATA, received)
        curl.setopt(pycurl.HTTPGET, 1)  # forget the last call's body
        curl.setopt(pycurl.CUSTOMREQUEST, method)
        if body is not None:
            curl.setopt(pycurl.POSTFIELDS, body)
        try:
            curl.perform()
        except pycurl.error as exc:
            raise BenchError(f"{method} {target.split('?')[0]} failed: {exc.args[-1]}") from None
        return int(curl.getinfo(pycurl.RESPONSE_CODE)), received.getvalue()

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
