"""The Cloud Controller's v3 API, as far as registering a service broker needs it.

Conventions of that API this module relies on: list endpoints are paginated
(``pagination.next.href`` until it is null); changes to service brokers are
asynchronous (``202`` with a ``Location`` header naming a job under
``/v3/jobs``, whose state goes PROCESSING/POLLING -> COMPLETE or FAILED);
errors come as ``{"errors": [{"code", "title", "detail"}]}``.

Hrefs the Cloud Controller returns (job locations, next pages) are built from
its external domain. They are followed on the server this client was pointed
at, path and query only, so an internal API address keeps working and the
token is never sent anywhere else.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from postgres_service_broker.cf.transport import HttpResponse, HttpTransport
from postgres_service_broker.cf.uaa import TokenSource

# Keeps filtered list URLs well below common proxy limits.
NAMES_PER_QUERY = 50
JOB_RUNNING_STATES = ("PROCESSING", "POLLING")


class CloudControllerError(Exception):
    """A Cloud Controller call failed; the message names the call and the errors it returned."""


class JobFailed(CloudControllerError):
    """An asynchronous job ended in state FAILED."""


class JobTimedOut(CloudControllerError):
    """An asynchronous job did not finish in the time allowed."""


@dataclass(frozen=True)
class ApiError:
    code: int | None
    title: str
    detail: str

    def __str__(self) -> str:
        code = f" ({self.code})" if self.code is not None else ""
        return f"{self.title}{code}: {self.detail}"


def api_errors(doc: Any) -> list[ApiError]:
    if not isinstance(doc, dict) or not isinstance(doc.get("errors"), list):
        return []
    out = []
    for err in doc["errors"]:
        if isinstance(err, dict):
            code = err.get("code")
            out.append(
                ApiError(
                    code if isinstance(code, int) else None,
                    str(err.get("title") or "error"),
                    str(err.get("detail") or ""),
                )
            )
    return out


@dataclass(frozen=True)
class ServiceBroker:
    guid: str
    name: str
    url: str
    space_guid: str | None


@dataclass(frozen=True)
class ServiceOffering:
    guid: str
    name: str


@dataclass(frozen=True)
class ServicePlan:
    guid: str
    name: str
    offering_guid: str
    visibility_type: str


@dataclass(frozen=True)
class ServiceInstance:
    guid: str
    name: str


def _related_guid(resource: dict[str, Any], name: str) -> str | None:
    data = (resource.get("relationships") or {}).get(name, {}).get("data")
    return data.get("guid") if isinstance(data, dict) else None


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class CloudControllerClient:
    def __init__(
        self,
        api_url: str,
        transport: HttpTransport,
        tokens: TokenSource | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        parts = urlsplit(api_url)
        self.api_url = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
        self.transport = transport
        self.tokens = tokens
        self._sleep = sleep

    # -- plumbing -----------------------------------------------------------------

    def _url(self, path_or_href: str, params: dict[str, str] | None = None) -> str:
        parts = urlsplit(path_or_href)
        url = self.api_url + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if params:
            url += ("&" if parts.query else "?") + urlencode(params)
        return url

    def call(
        self,
        method: str,
        path_or_href: str,
        *,
        params: dict[str, str] | None = None,
        json_body: Any = None,
        expect: Iterable[int] = (200,),
        authenticated: bool = True,
    ) -> HttpResponse:
        url = self._url(path_or_href, params)
        resp = self._send(method, url, json_body, authenticated, renew=False)
        if resp.status == 401 and authenticated and self.tokens is not None:
            # The token may have expired during a long job; one fresh token, one retry.
            resp = self._send(method, url, json_body, authenticated, renew=True)
        if resp.status not in tuple(expect):
            raise CloudControllerError(self._describe_failure(method, url, resp))
        return resp

    def _send(
        self, method: str, url: str, json_body: Any, authenticated: bool, *, renew: bool
    ) -> HttpResponse:
        headers = {}
        if authenticated and self.tokens is not None:
            headers["Authorization"] = self.tokens.authorization(renew=renew)
        return self.transport.json_request(method, url, headers=headers, json_body=json_body)

    def _describe_failure(self, method: str, url: str, resp: HttpResponse) -> str:
        path = urlsplit(url).path
        errors = api_errors(resp.json())
        detail = "; ".join(str(e) for e in errors) or _snippet(resp.body)
        msg = f"{method} {path} failed with HTTP {resp.status}"
        if detail:
            msg += f": {detail}"
        if resp.status == 401:
            msg += " (the Cloud Controller did not accept the UAA token; is this the UAA it trusts?)"
        elif resp.status == 403:
            msg += " (the UAA client or user needs the cloud_controller.admin scope)"
        return msg

    def list_resources(self, path: str, params: dict[str, str] | None = None) -> Iterator[dict[str, Any]]:
        """Every resource of a list endpoint, following ``pagination.next.href``."""
        href: str | None = path
        query = params
        seen: set[str] = set()
        while href:
            resp = self.call("GET", href, params=query)
            doc = resp.json()
            if not isinstance(doc, dict) or not isinstance(doc.get("resources"), list):
                raise CloudControllerError(f"GET {path}: the answer is not a v3 list (no 'resources')")
            yield from doc["resources"]
            nxt = ((doc.get("pagination") or {}).get("next") or {}).get("href")
            if nxt in seen:
                raise CloudControllerError(f"GET {path}: pagination loops back to {nxt}")
            if nxt:
                seen.add(nxt)
            href, query = nxt, None

    def wait_for_job(self, location: str, *, timeout_s: float, interval_s: float) -> dict[str, Any]:
        """Poll a job until COMPLETE; FAILED raises `JobFailed` with the job's errors."""
        deadline = time.monotonic() + timeout_s
        while True:
            doc = self.call("GET", location).json()
            if not isinstance(doc, dict):
                raise CloudControllerError(f"GET {urlsplit(location).path}: the answer is not a job")
            state = doc.get("state")
            operation = doc.get("operation") or "job"
            guid = doc.get("guid") or urlsplit(location).path.rsplit("/", 1)[-1]
            if state == "COMPLETE":
                return doc
            if state == "FAILED":
                errors = "; ".join(str(e) for e in api_errors(doc)) or "no error details"
                raise JobFailed(f"{operation} job {guid} FAILED: {errors}")
            if state not in JOB_RUNNING_STATES:
                raise CloudControllerError(f"{operation} job {guid} is in an unknown state {state!r}")
            if time.monotonic() >= deadline:
                raise JobTimedOut(
                    f"{operation} job {guid} is still {state} after {timeout_s:g}s; it may yet finish "
                    f"(see `cf curl /v3/jobs/{guid}`); raise job_timeout_seconds if it is just slow"
                )
            self._sleep(interval_s)

    # -- the API ------------------------------------------------------------------

    def root(self) -> dict[str, Any]:
        """``GET /``: the links to the APIs of this foundation, UAA among them (no token needed)."""
        resp = self.call("GET", "/", authenticated=False)
        doc = resp.json()
        if not isinstance(doc, dict) or not isinstance(doc.get("links"), dict):
            raise CloudControllerError(
                f"GET {self.api_url}/ did not return the Cloud Controller's root document (no 'links'); "
                "is cloud_controller.url the API URL, e.g. https://api.<system domain>?"
            )
        return doc

    def uaa_url(self) -> str:
        links = self.root()["links"]
        for name in ("uaa", "login"):
            href = (links.get(name) or {}).get("href")
            if isinstance(href, str) and href:
                return href.rstrip("/")
        raise CloudControllerError(
            f"the Cloud Controller at {self.api_url} advertises no UAA (links.uaa / links.login); set uaa.url"
        )

    def find_service_broker(self, name: str) -> ServiceBroker | None:
        for res in self.list_resources("/v3/service_brokers", {"names": name}):
            if res.get("name") == name:
                return ServiceBroker(
                    res["guid"], res["name"], res.get("url", ""), _related_guid(res, "space")
                )
        return None

    def create_service_broker(self, name: str, url: str, username: str, password: str) -> str:
        """Start registering a broker; returns the job's location."""
        body = {"name": name, "url": url, "authentication": _basic_auth(username, password)}
        resp = self.call("POST", "/v3/service_brokers", json_body=body, expect=(202,))
        return _location(resp, "POST /v3/service_brokers")

    def update_service_broker(self, guid: str, url: str, username: str, password: str) -> str | None:
        """Point an existing broker at `url` with new credentials; returns a job location if one runs."""
        body = {"url": url, "authentication": _basic_auth(username, password)}
        resp = self.call("PATCH", f"/v3/service_brokers/{guid}", json_body=body, expect=(200, 202))
        return _location(resp, f"PATCH /v3/service_brokers/{guid}") if resp.status == 202 else None

    def delete_service_broker(self, guid: str) -> str:
        resp = self.call("DELETE", f"/v3/service_brokers/{guid}", expect=(202,))
        return _location(resp, f"DELETE /v3/service_brokers/{guid}")

    def service_offerings(self, broker_guid: str) -> list[ServiceOffering]:
        return [
            ServiceOffering(res["guid"], res["name"])
            for res in self.list_resources("/v3/service_offerings", {"service_broker_guids": broker_guid})
        ]

    def service_plans(self, broker_guid: str) -> list[ServicePlan]:
        return [
            ServicePlan(
                res["guid"],
                res["name"],
                _related_guid(res, "service_offering") or "",
                res.get("visibility_type", ""),
            )
            for res in self.list_resources("/v3/service_plans", {"service_broker_guids": broker_guid})
        ]

    def service_instances(self, plan_guids: Sequence[str]) -> list[ServiceInstance]:
        found: list[ServiceInstance] = []
        for chunk in _chunks(list(plan_guids), NAMES_PER_QUERY):
            params = {"service_plan_guids": ",".join(chunk)}
            found += [
                ServiceInstance(r["guid"], r["name"])
                for r in self.list_resources("/v3/service_instances", params)
            ]
        return found

    def organization_guids(self, names: Sequence[str]) -> dict[str, str]:
        """Guids of the organizations with these names (those that exist)."""
        found: dict[str, str] = {}
        for chunk in _chunks(list(names), NAMES_PER_QUERY):
            for res in self.list_resources("/v3/organizations", {"names": ",".join(chunk)}):
                if res.get("name") in chunk:
                    found[res["name"]] = res["guid"]
        return found

    def set_plan_visibility(self, plan_guid: str, visibility: str, org_guids: Sequence[str] = ()) -> None:
        """Replace a plan's visibility (PATCH, so the result is the same however often it runs)."""
        body: dict[str, Any] = {"type": visibility}
        if visibility == "organization":
            body["organizations"] = [{"guid": g} for g in org_guids]
        self.call("PATCH", f"/v3/service_plans/{plan_guid}/visibility", json_body=body)

    def purge_service_offering(self, guid: str) -> None:
        """Remove an offering with its plans, instances and bindings from CF, without asking the broker."""
        self.call("DELETE", f"/v3/service_offerings/{guid}", params={"purge": "true"}, expect=(204,))


def _basic_auth(username: str, password: str) -> dict[str, Any]:
    return {"type": "basic", "credentials": {"username": username, "password": password}}


def _location(resp: HttpResponse, what: str) -> str:
    location = resp.header("Location")
    if not location:
        raise CloudControllerError(f"{what} answered {resp.status} without a Location header for its job")
    return location


def _snippet(body: bytes, limit: int = 200) -> str:
    text = body.decode("utf-8", errors="replace").strip()
    return text if len(text) <= limit else text[:limit] + "..."
