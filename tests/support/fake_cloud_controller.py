"""STAND-IN for Cloud Foundry's Cloud Controller (v3 API) and UAA, for tests only.

A real Cloud Controller needs a whole foundation (UAA, a database, Diego, a
blobstore), which cannot run on one machine, so the errands that talk to it
are tested against this stand-in instead. It follows the documented v3 API
closely for the endpoints the errands use, and runs as two real HTTP servers
on 127.0.0.1 (one the Cloud Controller, one UAA), so the code under test goes
through real sockets, headers and status codes:

- ``GET /``: the root document, with ``links.uaa`` and ``links.login``.
- UAA ``POST /oauth/token``: client_credentials and password grants, client
  authentication by HTTP basic auth or form fields, UAA's error bodies
  (``{"error", "error_description"}``). Tokens are opaque strings that expire.
- Every ``/v3`` call needs ``Authorization: bearer <token>``: none gives 401
  CF-NotAuthenticated, an unknown or expired one 401 CF-InvalidAuthToken;
  writes need the ``cloud_controller.admin`` scope (else 403 CF-NotAuthorized).
- Lists are paginated (``page``, ``per_page`` 1..5000, ``pagination`` with
  ``first``/``last``/``next``/``previous`` hrefs built from the external URL);
  unknown query parameters give 400 CF-BadQueryParameter.
- ``POST/PATCH/DELETE /v3/service_brokers`` answer 202 with a ``Location``
  header naming a job; ``GET /v3/jobs/:guid`` reports PROCESSING, then
  COMPLETE or FAILED with ``errors``. The catalog is really fetched from the
  broker's ``/v2/catalog`` with the credentials given, so a wrong password
  fails the job the way the real Cloud Controller does. A broker whose first
  synchronisation failed stays registered (state SYNCHRONIZATION_FAILED); a
  failed update leaves the broker as it was.
- ``GET/PATCH/POST /v3/service_plans/:guid/visibility`` (public, admin,
  organization), ``GET /v3/organizations``, ``GET /v3/service_offerings``,
  ``DELETE /v3/service_offerings/:guid?purge=true``, ``GET /v3/service_plans``,
  ``GET /v3/service_instances``; ``DELETE /v3/service_brokers/:guid`` refuses
  with 422 CF-ServiceBrokerNotRemovable while instances exist.
- Errors are ``{"errors": [{"code", "title", "detail"}]}`` with the codes and
  titles of the Cloud Controller's errors/v2.yml and v3.yml.

Deliberate simplifications, none of which the errands can observe through the
endpoints above: jobs advance when polled (each stays PROCESSING for
``job_polls`` polls, then runs) rather than on a worker; tokens are opaque, not
signed JWTs; sorting is by creation only; one lock serialises all requests.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import math
import re
import secrets
import ssl
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlencode, urlsplit

ADMIN_SCOPE = "cloud_controller.admin"
READ_SCOPES = {"cloud_controller.admin", "cloud_controller.read", "cloud_controller.admin_read_only"}
PAGINATION_PARAMS = {"page", "per_page", "order_by"}
MAX_PER_PAGE = 5000

# name: (code, HTTP status, message template) as in cloud_controller_ng's errors/v2.yml and v3.yml.
CC_ERRORS: dict[str, tuple[int, int, str]] = {
    "InvalidAuthToken": (1000, 401, "Invalid Auth Token"),
    "MessageParseError": (1001, 400, "Request invalid due to parse error: {}"),
    "NotFound": (10000, 404, "Unknown request"),
    "NotAuthenticated": (10002, 401, "Authentication error"),
    "NotAuthorized": (10003, 403, "You are not authorized to perform the requested action"),
    "BadQueryParameter": (10005, 400, "The query parameter is invalid: {}"),
    "InsufficientScope": (10007, 403, "Your token lacks the necessary scopes to access this resource."),
    "UnprocessableEntity": (10008, 422, "{}"),
    "ResourceNotFound": (10010, 404, "{}"),
    "ServiceBrokerNotRemovable": (
        270010,
        422,
        "Can not remove brokers that have associated service instances: {}",
    ),
    "ServiceBrokerCatalogInvalid": (270012, 502, "Service broker catalog is invalid: {}"),
    "ServiceBrokerApiUnreachable": (10001, 502, "The service broker API could not be reached: {}"),
    "ServiceBrokerApiAuthenticationFailed": (
        10001,
        502,
        "Authentication failed for the service broker API. "
        "Double-check that the username and password are correct: {}",
    ),
    "ServiceBrokerBadResponse": (
        10001,
        502,
        "The service broker returned an invalid response for the request to {}: Status Code: {}",
    ),
}


class ApiFailure(Exception):
    def __init__(self, name: str, *args: object) -> None:
        code, status, template = CC_ERRORS[name]
        self.status = status
        self.error = {"code": code, "title": f"CF-{name}", "detail": template.format(*args)}
        super().__init__(self.error["detail"])


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _guid() -> str:
    return str(uuid.uuid4())


@dataclass
class Job:
    guid: str
    operation: str
    action: Callable[[], list[dict[str, Any]]]  # returns the job's errors; empty means COMPLETE
    polls_left: int
    state: str = "PROCESSING"
    errors: list[dict[str, Any]] = field(default_factory=list)
    created_at: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)


@dataclass(frozen=True)
class RecordedRequest:
    server: str  # "cc" or "uaa"
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any = None  # the JSON body of Cloud Controller calls; never recorded for UAA


@dataclass
class _Token:
    identity: str
    scopes: frozenset[str]
    expires_at: float


class StandInCloudFoundry:
    """The Cloud Controller and UAA stand-ins, sharing one state. Use as a context manager."""

    def __init__(
        self,
        *,
        job_polls: int = 1,
        per_page_default: int = 50,
        token_lifetime_s: float = 3600.0,
        external_url: str | None = None,
        tls_cert: tuple[Path, Path] | None = None,
    ) -> None:
        self.job_polls = job_polls
        self.per_page_default = per_page_default
        self.token_lifetime_s = token_lifetime_s
        self._external_url = external_url
        self._tls_cert = tls_cert
        self.lock = threading.RLock()
        self.brokers: dict[str, dict[str, Any]] = {}
        self.offerings: dict[str, dict[str, Any]] = {}
        self.plans: dict[str, dict[str, Any]] = {}
        self.instances: dict[str, dict[str, Any]] = {}
        self.orgs: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, Job] = {}
        self.tokens: dict[str, _Token] = {}
        self.clients: dict[str, tuple[str, frozenset[str], frozenset[str]]] = {}
        self.users: dict[str, tuple[str, frozenset[str]]] = {}
        self.requests: list[RecordedRequest] = []
        # The cf CLI's client: public (empty secret), password grant only.
        self.add_client("cf", "", scopes=(), grant_types=("password", "refresh_token"))
        self._servers: list[ThreadingHTTPServer] = []
        self._threads: list[threading.Thread] = []

    # -- life cycle ---------------------------------------------------------------------

    def __enter__(self) -> StandInCloudFoundry:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        for handler in (_CloudControllerHandler, _UaaHandler):
            server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
            server.daemon_threads = True
            server.stand_in = self  # type: ignore[attr-defined]
            if self._tls_cert:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.load_cert_chain(str(self._tls_cert[0]), str(self._tls_cert[1]))
                server.socket = ctx.wrap_socket(server.socket, server_side=True)
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers.clear()
        self._threads.clear()

    def _url(self, index: int) -> str:
        scheme = "https" if self._tls_cert else "http"
        return f"{scheme}://127.0.0.1:{self._servers[index].server_address[1]}"

    @property
    def api_url(self) -> str:
        return self._url(0)

    @property
    def uaa_url(self) -> str:
        return self._url(1)

    @property
    def external_url(self) -> str:
        """What the Cloud Controller puts in hrefs (its external domain)."""
        return self._external_url or self.api_url

    # -- test set-up and inspection ------------------------------------------------------

    def add_client(
        self,
        client_id: str,
        secret: str,
        *,
        scopes: Iterable[str] = (ADMIN_SCOPE,),
        grant_types: Iterable[str] = ("client_credentials",),
    ) -> None:
        with self.lock:
            self.clients[client_id] = (secret, frozenset(scopes), frozenset(grant_types))

    def add_user(self, username: str, password: str, *, scopes: Iterable[str] = (ADMIN_SCOPE,)) -> None:
        with self.lock:
            self.users[username] = (password, frozenset(scopes))

    def add_organization(self, name: str) -> str:
        with self.lock:
            guid = _guid()
            self.orgs[guid] = {"guid": guid, "name": name, "created_at": _now()}
            return guid

    def add_service_instance(self, plan_guid: str, name: str) -> str:
        """An instance as `cf create-service` would leave it (the broker itself is not asked)."""
        with self.lock:
            assert plan_guid in self.plans, f"no plan {plan_guid}"
            guid = _guid()
            self.instances[guid] = {
                "guid": guid,
                "name": name,
                "plan_guid": plan_guid,
                "space_guid": _guid(),
                "created_at": _now(),
            }
            return guid

    def expire_tokens(self) -> None:
        with self.lock:
            for token in self.tokens.values():
                token.expires_at = 0.0

    def broker_named(self, name: str) -> dict[str, Any] | None:
        with self.lock:
            return next((dict(b) for b in self.brokers.values() if b["name"] == name), None)

    def plans_of(self, broker_name: str) -> list[dict[str, Any]]:
        with self.lock:
            broker = self.broker_named(broker_name)
            if broker is None:
                return []
            offerings = {g for g, o in self.offerings.items() if o["broker_guid"] == broker["guid"]}
            return [dict(p) for p in self.plans.values() if p["offering_guid"] in offerings]

    def visibility(self, plan_guid: str) -> tuple[str, set[str]]:
        """(type, organization names) of a plan."""
        with self.lock:
            plan = self.plans[plan_guid]
            return plan["visibility_type"], {self.orgs[g]["name"] for g in plan["org_guids"]}

    def calls(self, method: str, path_pattern: str) -> list[RecordedRequest]:
        with self.lock:
            return [
                r
                for r in self.requests
                if r.server == "cc" and r.method == method and re.fullmatch(path_pattern, r.path)
            ]

    @property
    def issued_tokens(self) -> list[str]:
        with self.lock:
            return list(self.tokens)

    # -- UAA ------------------------------------------------------------------------------

    def issue_token(self, headers: Any, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        client_id, secret = None, None
        auth = headers.get("Authorization") or ""
        if auth.lower().startswith("basic "):
            try:
                raw = base64.b64decode(auth[6:].strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return 401, {"error": "unauthorized", "error_description": "Bad credentials"}
            user, _, password = raw.partition(":")
            client_id, secret = unquote_plus(user), unquote_plus(password)
        elif "client_id" in form:
            client_id, secret = form["client_id"], form.get("client_secret", "")
        if client_id is None:
            return 401, {
                "error": "unauthorized",
                "error_description": "Full authentication is required to access this resource",
            }
        with self.lock:
            client = self.clients.get(client_id)
            if client is None or not secrets.compare_digest(client[0], secret or ""):
                return 401, {"error": "unauthorized", "error_description": "Bad credentials"}
            grant = form.get("grant_type")
            if not grant:
                return 400, {"error": "invalid_request", "error_description": "Missing grant type"}
            if grant not in ("client_credentials", "password"):
                return 400, {
                    "error": "unsupported_grant_type",
                    "error_description": f"Unsupported grant type: {grant}",
                }
            if grant not in client[2]:
                return 401, {
                    "error": "invalid_client",
                    "error_description": f"Unauthorized grant type: {grant}",
                }
            if grant == "client_credentials":
                identity, scopes = client_id, client[1]
            else:
                user = self.users.get(form.get("username", ""))
                if user is None or not secrets.compare_digest(user[0], form.get("password", "")):
                    return 401, {"error": "unauthorized", "error_description": "Bad credentials"}
                identity, scopes = form["username"], user[1]
            token = secrets.token_urlsafe(32)
            self.tokens[token] = _Token(identity, scopes, time.monotonic() + self.token_lifetime_s)
            return 200, {
                "access_token": token,
                "token_type": "bearer",
                "expires_in": max(1, math.floor(self.token_lifetime_s)),
                "scope": " ".join(sorted(scopes)),
                "jti": _guid(),
            }

    # -- Cloud Controller: plumbing ----------------------------------------------------------

    def authenticate(self, headers: Any) -> _Token:
        auth = headers.get("Authorization")
        if not auth:
            raise ApiFailure("NotAuthenticated")
        scheme, _, value = auth.partition(" ")
        token = self.tokens.get(value.strip()) if scheme.lower() == "bearer" else None
        if token is None or token.expires_at <= time.monotonic():
            raise ApiFailure("InvalidAuthToken")
        if not token.scopes & READ_SCOPES:
            raise ApiFailure("InsufficientScope")
        return token

    def href(self, path: str, query: dict[str, str] | None = None) -> dict[str, str]:
        suffix = "?" + urlencode(query, safe=",") if query else ""
        return {"href": f"{self.external_url}{path}{suffix}"}

    def paginate(
        self, path: str, query: dict[str, list[str]], allowed: set[str], resources: list[dict[str, Any]]
    ) -> dict[str, Any]:
        unknown = sorted(set(query) - allowed - PAGINATION_PARAMS)
        if unknown:
            raise ApiFailure("BadQueryParameter", f"Unknown query parameter(s): {_quoted(unknown)}")
        page = _int_param(query, "page", 1)
        per_page = _int_param(query, "per_page", self.per_page_default)
        if page < 1:
            raise ApiFailure("BadQueryParameter", "Page must be greater than 0")
        if not 1 <= per_page <= MAX_PER_PAGE:
            raise ApiFailure("BadQueryParameter", f"Per page must be between 1 and {MAX_PER_PAGE}")
        total = len(resources)
        pages = max(1, math.ceil(total / per_page))
        filters = {k: ",".join(v) for k, v in query.items() if k not in ("page", "per_page")}

        def link(number: int) -> dict[str, str]:
            return self.href(path, {"page": str(number), "per_page": str(per_page), **filters})

        return {
            "pagination": {
                "total_results": total,
                "total_pages": pages,
                "first": link(1),
                "last": link(pages),
                "next": link(page + 1) if page < pages else None,
                "previous": link(page - 1) if page > 1 else None,
            },
            "resources": resources[(page - 1) * per_page : page * per_page],
        }

    def new_job(self, operation: str, action: Callable[[], list[dict[str, Any]]]) -> str:
        job = Job(_guid(), operation, action, self.job_polls)
        self.jobs[job.guid] = job
        return self.href(f"/v3/jobs/{job.guid}")["href"]

    def job_view(self, guid: str) -> dict[str, Any]:
        job = self.jobs.get(guid)
        if job is None:
            raise ApiFailure("ResourceNotFound", "Job not found")
        if job.state == "PROCESSING":
            if job.polls_left > 0:
                job.polls_left -= 1
            else:
                job.errors = job.action()
                job.state = "FAILED" if job.errors else "COMPLETE"
                job.updated_at = _now()
        return {
            "guid": job.guid,
            "created_at": job.created_at,
            "updated_at": job.updated_at,
            "operation": job.operation,
            "state": job.state,
            "errors": job.errors,
            "warnings": [],
            "links": {"self": self.href(f"/v3/jobs/{job.guid}")},
        }

    # -- Cloud Controller: presenters -------------------------------------------------------

    def root_view(self) -> dict[str, Any]:
        base = self.external_url
        return {
            "links": {
                "self": {"href": base},
                "bits_service": None,
                "cloud_controller_v2": {"href": f"{base}/v2", "meta": {"version": "2.250.0"}},
                "cloud_controller_v3": {"href": f"{base}/v3", "meta": {"version": "3.185.0"}},
                "network_policy_v0": {"href": f"{base}/networking/v0/external"},
                "network_policy_v1": {"href": f"{base}/networking/v1/external"},
                "login": {"href": self.uaa_url},
                "uaa": {"href": self.uaa_url},
                "credhub": None,
                "routing": {"href": f"{base}/routing"},
                "logging": None,
                "log_cache": None,
                "log_stream": None,
                "app_ssh": None,
            }
        }

    def broker_view(self, b: dict[str, Any]) -> dict[str, Any]:
        return {
            "guid": b["guid"],
            "name": b["name"],
            "url": b["url"],
            "created_at": b["created_at"],
            "updated_at": b["updated_at"],
            "relationships": {},
            "metadata": {"labels": {}, "annotations": {}},
            "links": {
                "self": self.href(f"/v3/service_brokers/{b['guid']}"),
                "service_offerings": self.href("/v3/service_offerings", {"service_broker_guids": b["guid"]}),
            },
        }

    def offering_view(self, o: dict[str, Any]) -> dict[str, Any]:
        return {
            "guid": o["guid"],
            "name": o["name"],
            "description": o["description"],
            "available": True,
            "tags": o["tags"],
            "requires": [],
            "created_at": o["created_at"],
            "updated_at": o["created_at"],
            "shareable": False,
            "broker_catalog": {
                "id": o["catalog_id"],
                "metadata": {},
                "features": {"bindable": o["bindable"]},
            },
            "relationships": {"service_broker": {"data": {"guid": o["broker_guid"]}}},
            "metadata": {"labels": {}, "annotations": {}},
            "links": {"self": self.href(f"/v3/service_offerings/{o['guid']}")},
        }

    def plan_view(self, p: dict[str, Any]) -> dict[str, Any]:
        return {
            "guid": p["guid"],
            "name": p["name"],
            "description": p["description"],
            "visibility_type": p["visibility_type"],
            "available": p["available"],
            "free": p["free"],
            "costs": [],
            "created_at": p["created_at"],
            "updated_at": p["created_at"],
            "maintenance_info": {},
            "broker_catalog": {"id": p["catalog_id"], "metadata": {}, "maximum_polling_duration": None},
            "relationships": {"service_offering": {"data": {"guid": p["offering_guid"]}}},
            "metadata": {"labels": {}, "annotations": {}},
            "links": {
                "self": self.href(f"/v3/service_plans/{p['guid']}"),
                "service_offering": self.href(f"/v3/service_offerings/{p['offering_guid']}"),
                "visibility": self.href(f"/v3/service_plans/{p['guid']}/visibility"),
            },
        }

    def instance_view(self, i: dict[str, Any]) -> dict[str, Any]:
        return {
            "guid": i["guid"],
            "name": i["name"],
            "type": "managed",
            "created_at": i["created_at"],
            "updated_at": i["created_at"],
            "last_operation": {"type": "create", "state": "succeeded", "description": ""},
            "relationships": {
                "service_plan": {"data": {"guid": i["plan_guid"]}},
                "space": {"data": {"guid": i["space_guid"]}},
            },
            "metadata": {"labels": {}, "annotations": {}},
            "links": {"self": self.href(f"/v3/service_instances/{i['guid']}")},
        }

    def org_view(self, o: dict[str, Any]) -> dict[str, Any]:
        return {
            "guid": o["guid"],
            "name": o["name"],
            "suspended": False,
            "created_at": o["created_at"],
            "updated_at": o["created_at"],
            "relationships": {"quota": {"data": {"guid": "default-quota"}}},
            "metadata": {"labels": {}, "annotations": {}},
            "links": {"self": self.href(f"/v3/organizations/{o['guid']}")},
        }

    def visibility_view(self, p: dict[str, Any]) -> dict[str, Any]:
        doc: dict[str, Any] = {"type": p["visibility_type"]}
        if p["visibility_type"] == "organization":
            doc["organizations"] = [{"guid": g, "name": self.orgs[g]["name"]} for g in p["org_guids"]]
        return doc

    # -- Cloud Controller: the catalog, fetched from the broker as the real one does ----------------

    def fetch_catalog(self, url: str, username: str, password: str) -> dict[str, Any] | dict[str, str]:
        """The broker's catalog, or the job error the Cloud Controller would report."""
        catalog_url = url.rstrip("/") + "/v2/catalog"
        basic = base64.b64encode(f"{username}:{password}".encode()).decode()
        req = urllib.request.Request(  # noqa: S310 - the broker's URL was checked to be http(s)
            catalog_url,
            headers={
                "Authorization": f"Basic {basic}",
                "X-Broker-API-Version": "2.17",
                "Accept": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
                body = resp.read()
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 401:
                return ApiFailure("ServiceBrokerApiAuthenticationFailed", catalog_url).error
            return ApiFailure("ServiceBrokerBadResponse", catalog_url, f"{exc.code} {exc.reason}").error
        except (urllib.error.URLError, OSError):
            return ApiFailure("ServiceBrokerApiUnreachable", catalog_url).error
        try:
            doc = json.loads(body)
        except ValueError:
            return ApiFailure("ServiceBrokerCatalogInvalid", "the catalog is not JSON").error
        problems = _catalog_problems(doc)
        if problems:
            return ApiFailure("ServiceBrokerCatalogInvalid", "; ".join(problems)).error
        return doc

    def sync_catalog(self, broker_guid: str, catalog: dict[str, Any]) -> None:
        seen_offerings, seen_plans = set(), set()
        for service in catalog["services"]:
            offering = next(
                (
                    o
                    for o in self.offerings.values()
                    if o["broker_guid"] == broker_guid and o["catalog_id"] == service["id"]
                ),
                None,
            )
            if offering is None:
                offering = {"guid": _guid(), "broker_guid": broker_guid, "created_at": _now()}
                self.offerings[offering["guid"]] = offering
            offering.update(
                name=service["name"],
                description=service["description"],
                catalog_id=service["id"],
                bindable=bool(service.get("bindable")),
                tags=list(service.get("tags") or []),
            )
            seen_offerings.add(offering["guid"])
            for entry in service["plans"]:
                plan = next(
                    (
                        p
                        for p in self.plans.values()
                        if p["offering_guid"] == offering["guid"] and p["catalog_id"] == entry["id"]
                    ),
                    None,
                )
                if plan is None:
                    # New plans are visible to administrators only, until someone says otherwise.
                    plan = {
                        "guid": _guid(),
                        "offering_guid": offering["guid"],
                        "created_at": _now(),
                        "visibility_type": "admin",
                        "org_guids": [],
                    }
                    self.plans[plan["guid"]] = plan
                plan.update(
                    name=entry["name"],
                    description=entry["description"],
                    catalog_id=entry["id"],
                    free=bool(entry.get("free", True)),
                    available=True,
                )
                seen_plans.add(plan["guid"])
        owned = {g for g, o in self.offerings.items() if o["broker_guid"] == broker_guid}
        for guid, plan in list(self.plans.items()):
            if plan["offering_guid"] in owned and guid not in seen_plans:
                if any(i["plan_guid"] == guid for i in self.instances.values()):
                    plan["available"] = False
                else:
                    del self.plans[guid]
        for guid in owned - seen_offerings:
            if not any(p["offering_guid"] == guid for p in self.plans.values()):
                del self.offerings[guid]

    def remove_offering(self, guid: str) -> None:
        plan_guids = {g for g, p in self.plans.items() if p["offering_guid"] == guid}
        for inst_guid in [g for g, i in self.instances.items() if i["plan_guid"] in plan_guids]:
            del self.instances[inst_guid]
        for plan_guid in plan_guids:
            del self.plans[plan_guid]
        del self.offerings[guid]

    # -- Cloud Controller: routes --------------------------------------------------------------

    def route(self, method: str, path: str, query: dict[str, list[str]], headers: Any, body: Any) -> Any:
        """Returns (status, document or None, extra headers)."""
        if method == "GET" and path in ("", "/"):
            return 200, self.root_view(), {}
        if not path.startswith("/v3/"):
            raise ApiFailure("NotFound")
        token = self.authenticate(headers)
        if method != "GET" and ADMIN_SCOPE not in token.scopes:
            raise ApiFailure("NotAuthorized")
        for pattern, handlers in self._routes():
            match = re.fullmatch(pattern, path)
            if match and method in handlers:
                return handlers[method](query, body, *match.groups())
        raise ApiFailure("NotFound")

    def _routes(self) -> list[tuple[str, dict[str, Callable[..., Any]]]]:
        guid = r"([^/]+)"
        return [
            (rf"/v3/jobs/{guid}", {"GET": lambda q, b, g: (200, self.job_view(g), {})}),
            (r"/v3/service_brokers", {"GET": self._list_brokers, "POST": self._create_broker}),
            (
                rf"/v3/service_brokers/{guid}",
                {"GET": self._get_broker, "PATCH": self._update_broker, "DELETE": self._delete_broker},
            ),
            (r"/v3/service_offerings", {"GET": self._list_offerings}),
            (rf"/v3/service_offerings/{guid}", {"DELETE": self._delete_offering}),
            (r"/v3/service_plans", {"GET": self._list_plans}),
            (
                rf"/v3/service_plans/{guid}/visibility",
                {
                    "GET": lambda q, b, g: (200, self.visibility_view(self._plan(g)), {}),
                    "PATCH": lambda q, b, g: self._set_visibility(b, g, append=False),
                    "POST": lambda q, b, g: self._set_visibility(b, g, append=True),
                },
            ),
            (r"/v3/service_instances", {"GET": self._list_instances}),
            (r"/v3/organizations", {"GET": self._list_orgs}),
        ]

    def _broker(self, guid: str) -> dict[str, Any]:
        broker = self.brokers.get(guid)
        if broker is None:
            raise ApiFailure("ResourceNotFound", "Service broker not found")
        return broker

    def _plan(self, guid: str) -> dict[str, Any]:
        plan = self.plans.get(guid)
        if plan is None:
            raise ApiFailure("ResourceNotFound", "Service plan not found")
        return plan

    def _list_brokers(self, query: dict[str, list[str]], _body: Any) -> Any:
        names = _csv(query, "names")
        found = [self.broker_view(b) for b in self.brokers.values() if names is None or b["name"] in names]
        return 200, self.paginate("/v3/service_brokers", query, {"names"}, found), {}

    def _get_broker(self, _query: Any, _body: Any, guid: str) -> Any:
        return 200, self.broker_view(self._broker(guid)), {}

    def _create_broker(self, _query: Any, body: Any) -> Any:
        problems = _broker_message_problems(body, creating=True)
        if problems:
            raise ApiFailure("UnprocessableEntity", ", ".join(problems))
        if any(b["name"] == body["name"] for b in self.brokers.values()):
            raise ApiFailure("UnprocessableEntity", "Name must be unique")
        creds = body["authentication"]["credentials"]
        broker = {
            "guid": _guid(),
            "name": body["name"],
            "url": body["url"],
            "username": creds["username"],
            "password": creds["password"],
            "state": "SYNCHRONIZING",
            "created_at": _now(),
            "updated_at": _now(),
        }
        self.brokers[broker["guid"]] = broker

        def synchronize() -> list[dict[str, Any]]:
            catalog = self.fetch_catalog(broker["url"], broker["username"], broker["password"])
            if "services" not in catalog:
                broker["state"] = "SYNCHRONIZATION_FAILED"
                return [catalog]
            self.sync_catalog(broker["guid"], catalog)
            broker["state"] = "AVAILABLE"
            return []

        location = self.new_job("service_broker.catalog.synchronize", synchronize)
        return 202, None, {"Location": location}

    def _update_broker(self, _query: Any, body: Any, guid: str) -> Any:
        broker = self._broker(guid)
        problems = _broker_message_problems(body, creating=False)
        if problems:
            raise ApiFailure("UnprocessableEntity", ", ".join(problems))
        if "name" in body and any(b["name"] == body["name"] and g != guid for g, b in self.brokers.items()):
            raise ApiFailure("UnprocessableEntity", "Name must be unique")
        if "url" not in body and "authentication" not in body:
            broker.update(name=body.get("name", broker["name"]), updated_at=_now())
            return 200, self.broker_view(broker), {}
        creds = (body.get("authentication") or {}).get("credentials") or {}
        pending = {
            "name": body.get("name", broker["name"]),
            "url": body.get("url", broker["url"]),
            "username": creds.get("username", broker["username"]),
            "password": creds.get("password", broker["password"]),
        }

        def update() -> list[dict[str, Any]]:
            catalog = self.fetch_catalog(pending["url"], pending["username"], pending["password"])
            if "services" not in catalog:
                return [catalog]  # the broker keeps its previous URL and credentials
            broker.update(pending, updated_at=_now(), state="AVAILABLE")
            self.sync_catalog(guid, catalog)
            return []

        return 202, None, {"Location": self.new_job("service_broker.update", update)}

    def _delete_broker(self, _query: Any, _body: Any, guid: str) -> Any:
        broker = self._broker(guid)
        offerings = {g for g, o in self.offerings.items() if o["broker_guid"] == guid}
        plans = {g for g, p in self.plans.items() if p["offering_guid"] in offerings}
        if any(i["plan_guid"] in plans for i in self.instances.values()):
            raise ApiFailure("ServiceBrokerNotRemovable", broker["name"])
        broker["state"] = "DELETE_IN_PROGRESS"

        def delete() -> list[dict[str, Any]]:
            for offering in offerings:
                self.remove_offering(offering)
            del self.brokers[guid]
            return []

        return 202, None, {"Location": self.new_job("service_broker.delete", delete)}

    def _list_offerings(self, query: dict[str, list[str]], _body: Any) -> Any:
        names, brokers = _csv(query, "names"), _csv(query, "service_broker_guids")
        found = [
            self.offering_view(o)
            for o in self.offerings.values()
            if (names is None or o["name"] in names) and (brokers is None or o["broker_guid"] in brokers)
        ]
        return (
            200,
            self.paginate("/v3/service_offerings", query, {"names", "service_broker_guids"}, found),
            {},
        )

    def _delete_offering(self, query: dict[str, list[str]], _body: Any, guid: str) -> Any:
        unknown = sorted(set(query) - {"purge"})
        if unknown:
            raise ApiFailure("BadQueryParameter", f"Unknown query parameter(s): {_quoted(unknown)}")
        purge = (query.get("purge") or ["false"])[-1]
        if purge not in ("true", "false"):
            raise ApiFailure("BadQueryParameter", "Purge must be a boolean")
        if guid not in self.offerings:
            raise ApiFailure("ResourceNotFound", "Service offering not found")
        plans = {g for g, p in self.plans.items() if p["offering_guid"] == guid}
        if purge == "false" and any(i["plan_guid"] in plans for i in self.instances.values()):
            raise ApiFailure(
                "UnprocessableEntity", "Please delete the service_instances associations for your services."
            )
        self.remove_offering(guid)
        return 204, None, {}

    def _list_plans(self, query: dict[str, list[str]], _body: Any) -> Any:
        names = _csv(query, "names")
        brokers = _csv(query, "service_broker_guids")
        offerings = _csv(query, "service_offering_guids")
        found = [
            self.plan_view(p)
            for p in self.plans.values()
            if (names is None or p["name"] in names)
            and (offerings is None or p["offering_guid"] in offerings)
            and (brokers is None or self.offerings[p["offering_guid"]]["broker_guid"] in brokers)
        ]
        allowed = {"names", "service_broker_guids", "service_offering_guids"}
        return 200, self.paginate("/v3/service_plans", query, allowed, found), {}

    def _set_visibility(self, body: Any, guid: str, *, append: bool) -> Any:
        plan = self._plan(guid)
        if not isinstance(body, dict):
            raise ApiFailure("UnprocessableEntity", "Request body must be an object")
        unknown = sorted(set(body) - {"type", "organizations"})
        if unknown:
            raise ApiFailure("UnprocessableEntity", f"Unknown field(s): {_quoted(unknown)}")
        kind = body.get("type")
        if kind not in ("public", "admin", "organization"):
            raise ApiFailure("UnprocessableEntity", "Type must be one of 'public', 'admin', 'organization'")
        orgs = body.get("organizations")
        if kind != "organization" and orgs is not None:
            raise ApiFailure(
                "UnprocessableEntity", "Organizations can only be specified when type is 'organization'"
            )
        guids: list[str] = []
        if kind == "organization":
            if not isinstance(orgs, list) or not orgs:
                raise ApiFailure("UnprocessableEntity", "Organizations must have at least 1 organization")
            for org in orgs:
                if not isinstance(org, dict) or not isinstance(org.get("guid"), str):
                    raise ApiFailure("UnprocessableEntity", "Organizations must be a list of {guid}")
                guids.append(org["guid"])
            missing = [g for g in guids if g not in self.orgs]
            if missing:
                raise ApiFailure("UnprocessableEntity", f"Could not find organizations with guids: {missing}")
        if kind == "organization" and append and plan["visibility_type"] == "organization":
            guids = plan["org_guids"] + [g for g in guids if g not in plan["org_guids"]]
        plan["visibility_type"] = kind
        plan["org_guids"] = list(dict.fromkeys(guids))
        return 200, self.visibility_view(plan), {}

    def _list_instances(self, query: dict[str, list[str]], _body: Any) -> Any:
        names, plans = _csv(query, "names"), _csv(query, "service_plan_guids")
        found = [
            self.instance_view(i)
            for i in self.instances.values()
            if (names is None or i["name"] in names) and (plans is None or i["plan_guid"] in plans)
        ]
        return 200, self.paginate("/v3/service_instances", query, {"names", "service_plan_guids"}, found), {}

    def _list_orgs(self, query: dict[str, list[str]], _body: Any) -> Any:
        names = _csv(query, "names")
        found = [self.org_view(o) for o in self.orgs.values() if names is None or o["name"] in names]
        return 200, self.paginate("/v3/organizations", query, {"names"}, found), {}


def _quoted(names: Iterable[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)


def _csv(query: dict[str, list[str]], name: str) -> set[str] | None:
    if name not in query:
        return None
    return {item for value in query[name] for item in value.split(",")}


def _int_param(query: dict[str, list[str]], name: str, default: int) -> int:
    if name not in query:
        return default
    try:
        return int(query[name][-1])
    except ValueError:
        raise ApiFailure(
            "BadQueryParameter", f"{name.replace('_', ' ').capitalize()} must be an integer"
        ) from None


def _broker_message_problems(body: Any, *, creating: bool) -> list[str]:
    if not isinstance(body, dict):
        return ["Request body must be an object"]
    allowed = {"name", "url", "authentication", "metadata"} | ({"relationships"} if creating else set())
    problems = []
    unknown = sorted(set(body) - allowed)
    if unknown:
        problems.append(f"Unknown field(s): {_quoted(unknown)}")
    for key in ("name", "url"):
        if creating and key not in body:
            problems.append(f"{key.capitalize()} can't be blank")
        elif key in body and (not isinstance(body[key], str) or not body[key]):
            problems.append(f"{key.capitalize()} must be a non-empty string")
    url = body.get("url")
    if isinstance(url, str) and url:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            problems.append(f"Url {url} is not a valid URL")
        elif parts.username or parts.password:
            problems.append("User name and password fields in the broker URI are not supported")
    auth = body.get("authentication")
    if creating and auth is None:
        problems.append("Authentication can't be blank")
    if auth is not None:
        if not isinstance(auth, dict) or auth.get("type") != "basic":
            problems.append('Authentication type must be one of ["basic"]')
        else:
            creds = auth.get("credentials")
            if not isinstance(creds, dict) or not all(
                isinstance(creds.get(k), str) and creds.get(k) for k in ("username", "password")
            ):
                problems.append(
                    "Authentication credentials.username and credentials.password must be strings"
                )
    return problems


def _catalog_problems(doc: Any) -> list[str]:
    if not isinstance(doc, dict) or not isinstance(doc.get("services"), list):
        return ["the catalog has no services list"]
    problems = []
    for service in doc["services"]:
        if not isinstance(service, dict) or not all(
            isinstance(service.get(k), str) for k in ("id", "name", "description")
        ):
            problems.append("a service lacks id, name or description")
            continue
        plans = service.get("plans")
        if not isinstance(plans, list) or not plans:
            problems.append(f"service {service['name']} must have at least one plan")
            continue
        for plan in plans:
            if not isinstance(plan, dict) or not all(
                isinstance(plan.get(k), str) for k in ("id", "name", "description")
            ):
                problems.append(f"a plan of service {service['name']} lacks id, name or description")
    return problems


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    @property
    def stand_in(self) -> StandInCloudFoundry:
        return self.server.stand_in  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the requests are recorded in the stand-in; stderr stays quiet

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, doc: Any, headers: dict[str, str] | None = None) -> None:
        body = b"" if doc is None else json.dumps(doc).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if doc is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _CloudControllerHandler(_Handler):
    def _handle(self) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        raw = self._read_body()
        body: Any = None
        with self.stand_in.lock:
            try:
                if raw:
                    if "json" not in (self.headers.get("Content-Type") or ""):
                        raise ApiFailure(
                            "MessageParseError", "the body must be JSON (Content-Type: application/json)"
                        )
                    try:
                        body = json.loads(raw)
                    except ValueError:
                        raise ApiFailure("MessageParseError", "invalid JSON") from None
                self.stand_in.requests.append(RecordedRequest("cc", self.command, parts.path, query, body))
                status, doc, headers = self.stand_in.route(
                    self.command, parts.path, query, self.headers, body
                )
            except ApiFailure as failure:
                status, doc, headers = failure.status, {"errors": [failure.error]}, {}
        self._send(status, doc, headers)

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _handle


class _UaaHandler(_Handler):
    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        raw = self._read_body()
        if parts.path != "/oauth/token":
            self._send(404, {"error": "not_found", "error_description": "Not Found"})
            return
        if "application/x-www-form-urlencoded" not in (self.headers.get("Content-Type") or ""):
            self._send(415, {"error": "invalid_request", "error_description": "Unsupported Media Type"})
            return
        form = {k: v[-1] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}
        with self.stand_in.lock:
            # Only the grant type: the form holds passwords.
            self.stand_in.requests.append(
                RecordedRequest("uaa", "POST", parts.path, {"grant_type": [form.get("grant_type", "")]})
            )
        status, doc = self.stand_in.issue_token(self.headers, form)
        self._send(status, doc)

    def do_GET(self) -> None:
        if urlsplit(self.path).path == "/oauth/token":
            self._send(
                405,
                {"error": "method_not_allowed", "error_description": "Request method 'GET' not supported"},
            )
        else:
            self._send(404, {"error": "not_found", "error_description": "Not Found"})


def make_certificate(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path, str]:
    """A self-signed certificate for `host` (its own CA): (cert file, key file, PEM text)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stand-in cloud controller")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_text(pem)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path, pem
