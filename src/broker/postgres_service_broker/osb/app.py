"""The OSB v2.17 HTTP routes, readable next to the spec.

Every request passes, in this order: basic auth (401), the API version header
(412), the body size (413); then the route validates what it was sent (400)
and hands a typed request to the backend. Status codes follow the spec's
tables for each endpoint; every error body is ``{"error", "description"}``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.wrappers import Request as BaseRequest

from postgres_service_broker import __version__
from postgres_service_broker.backends import base as backend
from postgres_service_broker.backends.base import ServiceBackend
from postgres_service_broker.catalog import Catalog, binding_parameters_schema, instance_parameters_schema
from postgres_service_broker.config import BrokerConfig
from postgres_service_broker.osb import request_validation as rv
from postgres_service_broker.osb.answers import Answer
from postgres_service_broker.osb.auth import BasicAuth
from postgres_service_broker.osb.errors import (
    OsbError,
    bad_request,
    concurrency_error,
    conflict,
    maintenance_info_conflict,
)
from postgres_service_broker.osb.routing import Routes

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger("postgres_service_broker.osb")
audit = logging.getLogger("postgres_service_broker.audit")

MIN_MINOR_VERSION = 13
_VERSION_RE = re.compile(r"^2\.(\d{1,4})$")
_UNAUTHENTICATED_PATHS = {"/health"}
_ENCODED_SLASH = re.compile(r"%2f", re.IGNORECASE)


def _json(body: dict[str, Any], status: int, headers: dict[str, str] | None = None) -> Answer:
    return Answer(json.dumps(body).encode(), status, headers)


def _allow(methods: Iterable[str]) -> str:
    """An Allow header's value; OPTIONS is always answered."""
    return ", ".join(sorted({*methods, "OPTIONS"}))


def _originating_identity(header: str | None) -> str | None:
    """'cloudfoundry <base64 JSON>' -> 'cloudfoundry user_id=...', for the audit log only."""
    if not header:
        return None
    platform, _, encoded = header.strip().partition(" ")
    try:
        value = json.loads(base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError):
        return f"{platform[:64]} (unreadable value)"
    if isinstance(value, dict):
        user = value.get("user_id") or value.get("username") or value.get("uid")
        if isinstance(user, str):
            return f"{platform[:64]} user={user[:128]}"
    return f"{platform[:64]} (no user id)"


def _is_utf8_path(path_info: str) -> bool:
    """PEP 3333 hands the path over as latin-1 text; its bytes must be UTF-8."""
    try:
        path_info.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return False
    return True


def _map_backend_error(exc: backend.BackendError, *, not_found: int = 404) -> OsbError:
    message = str(exc)
    if isinstance(exc, backend.InstanceNotFound | backend.BindingNotFound):
        if not_found == 410:
            return OsbError(410, "Gone", message)
        if not_found == 400:
            return bad_request(message)
        return OsbError(404, "NotFound", message)
    if isinstance(exc, backend.Conflict):
        return conflict(message)
    if isinstance(exc, backend.Busy):
        return concurrency_error(message)
    if isinstance(exc, backend.InvalidRequest):
        return bad_request(message)
    if isinstance(exc, backend.Unprocessable):
        return OsbError(422, "UnprocessableEntity", message)
    if isinstance(exc, backend.BackendUnavailable):
        return OsbError(503, "ServiceUnavailable", message, headers={"Retry-After": "10"})
    return OsbError(500, "InternalError", "the broker failed; see its logs")


def create_app(config: BrokerConfig, service_backend: ServiceBackend) -> WSGIApplication:
    """The broker's WSGI application.

    Werkzeug's request, the OSB paths matched by `routing.Routes` and the
    answers as `answers.Answer`, without a web framework on top: the broker
    needs no more, and every layer of Python a request passes through costs
    it several times over, because a broker request runs right
    after PostgreSQL's work has pushed the broker out of the CPU's caches.
    With caches flushed before each request, a provision through this layer
    took 530-650 us against 700-850 us through Flask (about 100 us and 150 us
    with warm caches). What a framework would add is spelled out here: the
    checks every request passes (`authenticate`, `gatekeeper`), the answer to each kind of
    error, and the audit line (`audit_line`), written once the answer is out.
    """
    catalog = Catalog(config)
    auth = BasicAuth(config.auth)
    catalog_body = json.dumps(catalog.document()).encode()
    check_instance_parameters = rv.ParameterCheck(
        instance_parameters_schema(config.allowed_extensions), "service instance"
    )
    check_binding_parameters = rv.ParameterCheck(binding_parameters_schema(), "service binding")

    class Request(BaseRequest):
        # get_data() refuses a larger body with 413 (RequestEntityTooLarge),
        # even one sent without a Content-Length (chunked).
        max_content_length = config.max_request_bytes

    routes = Routes()

    def route(method: str, path: str) -> Callable[[Callable[..., Answer]], Callable[..., Answer]]:
        def register(view: Callable[..., Answer]) -> Callable[..., Answer]:
            routes.add(method, path, view)
            return view

        return register

    # -- cross-cutting: auth, version, size, identity, audit ----------------

    def authenticate(request: Request) -> str:
        """The first check: the authenticated user, or 401."""
        user = auth.check(request.headers.get("Authorization"))
        if user is None:
            raise OsbError(
                401,
                "Unauthorized",
                "valid broker credentials are required (HTTP basic authentication)",
                headers={"WWW-Authenticate": 'Basic realm="postgres-service-broker"'},
            )
        return user

    def gatekeeper(request: Request) -> None:
        """The checks after authentication and before routing, in the order the module says."""
        version = request.headers.get("X-Broker-API-Version")
        match = _VERSION_RE.match(version or "")
        if match is None or int(match.group(1)) < MIN_MINOR_VERSION:
            shown = "missing" if version is None else f"{version[:32]!r}"
            raise OsbError(
                412,
                "PreconditionFailed",
                f"X-Broker-API-Version is {shown}; this broker supports Open Service Broker "
                f"API 2.{MIN_MINOR_VERSION} to 2.17 (send 'X-Broker-API-Version: 2.17')",
            )
        length = request.content_length
        if length is not None and length > config.max_request_bytes:
            raise OsbError(
                413,
                "PayloadTooLarge",
                f"the request body is larger than {config.max_request_bytes} bytes",
            )
        if _ENCODED_SLASH.search(request.environ.get("REQUEST_URI", "").partition("?")[0]):
            # The WSGI server decodes %2F before routing, so such an id could
            # only ever reach the wrong route; say so instead of a bare 404.
            raise bad_request("ids containing '/' (%2F) are not supported; use ids without slashes")
        if not _is_utf8_path(request.environ.get("PATH_INFO", "")):
            # Werkzeug would decode bad bytes to U+FFFD, so two different ids
            # (say %FF and %FE) would name the same instance.
            raise bad_request("the request path is not valid UTF-8; percent-encode ids as UTF-8 bytes")

    def audit_line(request: Request, status: int, started: float, user: str | None) -> None:
        if request.method == "GET" and status < 400:
            return
        elapsed_ms = (time.monotonic() - started) * 1000
        # json.dumps escapes anything hostile in ids (newlines, quotes).
        audit.info(
            "%s %s -> %d in %.0fms broker_user=%s origin=%s request_id=%s",
            request.method,
            json.dumps(request.path[:300]),
            status,
            elapsed_ms,
            json.dumps(user),
            json.dumps(_originating_identity(request.headers.get("X-Broker-API-Originating-Identity"))),
            json.dumps(request.headers.get("X-Broker-API-Request-Identity")),
        )

    def osb_error(exc: OsbError) -> Answer:
        body: dict[str, Any] = {} if exc.status == 410 else exc.body()
        return _json(body, exc.status, exc.headers)

    def http_error(request: Request, exc: HTTPException) -> Answer:
        code = exc.code or 500
        names = {
            404: ("NotFound", "no such endpoint in the Open Service Broker API"),
            405: ("MethodNotAllowed", f"{request.method} is not allowed on {request.path[:200]}"),
            413: ("PayloadTooLarge", f"the request body is larger than {config.max_request_bytes} bytes"),
        }
        error, description = names.get(code, (exc.name.replace(" ", ""), exc.description or exc.name))
        headers = {}
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            # RFC 9110: a 405 must say which methods the resource does allow.
            headers["Allow"] = _allow(exc.valid_methods)
        return _json({"error": error, "description": description}, code, headers)

    def unexpected(request: Request) -> Answer:
        ref = uuid.uuid4().hex[:12]
        log.exception(
            "unexpected error (ref %s) on %s %s", ref, request.method, json.dumps(request.path[:300])
        )
        return _json(
            {
                "error": "InternalError",
                "description": f"the broker failed unexpectedly (ref {ref}); see its logs",
            },
            500,
        )

    def dispatch(request: Request) -> Answer:
        try:
            view, args = routes.match(request.path, request.method)
        except MethodNotAllowed as exc:
            if request.method == "OPTIONS" and exc.valid_methods:
                # RFC 9110: OPTIONS says what the resource allows.
                return Answer(b"", 200, {"Allow": _allow(exc.valid_methods)}, content_type=None)
            raise
        return view(request, **args)

    def application(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        started = time.monotonic()
        request = Request(environ)
        user = None
        try:
            # The user is known before the other checks, so the audit line of
            # a request they refuse still names who sent it.
            if request.path not in _UNAUTHENTICATED_PATHS:
                user = authenticate(request)
                gatekeeper(request)
            response = dispatch(request)
        except OsbError as exc:
            response = osb_error(exc)
        except HTTPException as exc:
            response = http_error(request, exc)
        except Exception:
            response = unexpected(request)
        identity = request.headers.get("X-Broker-API-Request-Identity")
        if identity:
            response.headers["X-Broker-API-Request-Identity"] = identity[:256]
        # The audit line is written once the answer is sent (the WSGI server
        # closes the response after its last byte), not while the platform waits.
        status = response.status_code
        response.call_on_close(lambda: audit_line(request, status, started, user))
        return response(environ, start_response)

    def call(fn: Callable[[], Any], *, not_found: int = 404) -> Any:
        try:
            return fn()
        except backend.BackendError as exc:
            raise _map_backend_error(exc, not_found=not_found) from None

    def check_service_and_plan(service_id: str | None, plan_id: str | None, *, plan_required: bool) -> None:
        if service_id is not None and service_id != catalog.service_id:
            raise bad_request(f"unknown service_id {service_id[:100]!r}")
        if plan_id is None:
            if plan_required:
                raise bad_request("missing required field 'plan_id'")
            return
        if catalog.plan(plan_id) is None:
            raise bad_request(f"unknown plan_id {plan_id[:100]!r} for this service")

    def check_maintenance(version: str | None) -> None:
        if version is not None and version != config.maintenance_version:
            raise maintenance_info_conflict(
                f"maintenance_info.version {version[:64]!r} does not match the catalog's "
                f"{config.maintenance_version!r}; refresh the catalog and try again"
            )

    def query_hint(request: Request, name: str, *, required: bool) -> str | None:
        value = request.args.get(name)
        if value is None:
            if required:
                raise bad_request(f"missing required query parameter '{name}'")
            return None
        if not value:
            raise bad_request(f"query parameter '{name}' must not be empty")
        return value

    # -- routes ---------------------------------------------------------------

    @route("GET", "/health")
    def health(request: Request) -> Answer:
        try:
            service_backend.ping()
        except backend.BackendError as exc:
            return _json({"status": "unavailable", "description": str(exc)}, 503)
        return _json({"status": "ok", "version": __version__}, 200)

    @route("GET", "/v2/catalog")
    def get_catalog(request: Request) -> Answer:
        return Answer(catalog_body, 200)

    @route("PUT", "/v2/service_instances/<instance_id>")
    def provision(request: Request, instance_id: str) -> Answer:
        rv.check_id(instance_id, "instance_id")
        rv.accepts_incomplete(request.args)
        body = rv.parse_json_object(request.get_data())
        service_id = rv.required_string(body, "service_id")
        plan_id = rv.required_string(body, "plan_id")
        check_service_and_plan(service_id, plan_id, plan_required=True)
        org = rv.required_string(body, "organization_guid")
        space = rv.required_string(body, "space_guid")
        context = rv.object_field(body, "context") or {}
        parameters = rv.object_field(body, "parameters") or {}
        check_maintenance(rv.maintenance_version(body))
        check_instance_parameters(parameters)
        result = call(
            lambda: service_backend.provision(
                backend.ProvisionRequest(
                    instance_id=instance_id,
                    service_id=service_id,
                    plan_id=plan_id,
                    organization_guid=org,
                    space_guid=space,
                    parameters=parameters,
                    context=context,
                    maintenance_version=config.maintenance_version,
                )
            )
        )
        return _json({}, 201 if result.created else 200)

    @route("PATCH", "/v2/service_instances/<instance_id>")
    def update(request: Request, instance_id: str) -> Answer:
        rv.check_id(instance_id, "instance_id")
        rv.accepts_incomplete(request.args)
        body = rv.parse_json_object(request.get_data())
        service_id = rv.required_string(body, "service_id")
        plan_id = rv.string_field(body, "plan_id", required=False)
        check_service_and_plan(service_id, plan_id, plan_required=False)
        context = rv.object_field(body, "context")
        parameters = rv.object_field(body, "parameters")
        rv.object_field(body, "previous_values")
        version = rv.maintenance_version(body)
        check_maintenance(version)
        if parameters is not None:
            check_instance_parameters(parameters)
        call(
            lambda: service_backend.update(
                backend.UpdateRequest(
                    instance_id=instance_id,
                    service_id=service_id,
                    plan_id=plan_id,
                    parameters=parameters,
                    context=context,
                    maintenance_version=version,
                )
            ),
            not_found=400,
        )
        return _json({}, 200)

    @route("DELETE", "/v2/service_instances/<instance_id>")
    def deprovision(request: Request, instance_id: str) -> Answer:
        rv.check_id(instance_id, "instance_id")
        rv.accepts_incomplete(request.args)
        query_hint(request, "service_id", required=True)
        query_hint(request, "plan_id", required=True)
        call(lambda: service_backend.deprovision(instance_id), not_found=410)
        return _json({}, 200)

    @route("GET", "/v2/service_instances/<instance_id>")
    def fetch_instance(request: Request, instance_id: str) -> Answer:
        rv.check_id(instance_id, "instance_id")
        query_hint(request, "service_id", required=False)
        query_hint(request, "plan_id", required=False)
        view = call(lambda: service_backend.fetch_instance(instance_id))
        body: dict[str, Any] = {
            "service_id": view.service_id,
            "plan_id": view.plan_id,
            "parameters": view.parameters,
        }
        if view.maintenance_version:
            body["maintenance_info"] = {"version": view.maintenance_version}
        return _json(body, 200)

    @route("GET", "/v2/service_instances/<instance_id>/last_operation")
    def instance_last_operation(request: Request, instance_id: str) -> Answer:
        rv.check_id(instance_id, "instance_id")
        for name in ("service_id", "plan_id", "operation"):
            query_hint(request, name, required=False)
        op = call(lambda: service_backend.instance_last_operation(instance_id))
        return _json(_operation_body(op), 200)

    @route("PUT", "/v2/service_instances/<instance_id>/service_bindings/<binding_id>")
    def bind(request: Request, instance_id: str, binding_id: str) -> Answer:
        rv.check_id(instance_id, "instance_id")
        rv.check_id(binding_id, "binding_id")
        rv.accepts_incomplete(request.args)
        body = rv.parse_json_object(request.get_data())
        predecessor = rv.string_field(body, "predecessor_binding_id", required=False)
        rotating = predecessor is not None
        service_id = rv.string_field(body, "service_id", required=not rotating)
        plan_id = rv.string_field(body, "plan_id", required=not rotating)
        check_service_and_plan(service_id, plan_id, plan_required=not rotating)
        if predecessor == binding_id:
            raise bad_request("predecessor_binding_id must differ from the new binding's id")
        app_guid = rv.string_field(body, "app_guid", required=False)
        bind_resource = rv.object_field(body, "bind_resource") or {}
        resource_app = rv.string_field(bind_resource, "app_guid", required=False)
        context = rv.object_field(body, "context") or {}
        parameters = rv.object_field(body, "parameters")
        if parameters is not None:
            check_binding_parameters(parameters)
        result = call(
            lambda: service_backend.bind(
                backend.BindRequest(
                    instance_id=instance_id,
                    binding_id=binding_id,
                    service_id=service_id,
                    plan_id=plan_id,
                    parameters=parameters,
                    app_guid=resource_app or app_guid,
                    context=context,
                    predecessor_binding_id=predecessor,
                )
            ),
            not_found=400,
        )
        return _json(
            {"credentials": result.credentials, "endpoints": result.endpoints},
            201 if result.created else 200,
        )

    @route("DELETE", "/v2/service_instances/<instance_id>/service_bindings/<binding_id>")
    def unbind(request: Request, instance_id: str, binding_id: str) -> Answer:
        rv.check_id(instance_id, "instance_id")
        rv.check_id(binding_id, "binding_id")
        rv.accepts_incomplete(request.args)
        query_hint(request, "service_id", required=True)
        query_hint(request, "plan_id", required=True)
        call(lambda: service_backend.unbind(instance_id, binding_id), not_found=410)
        return _json({}, 200)

    @route("GET", "/v2/service_instances/<instance_id>/service_bindings/<binding_id>")
    def fetch_binding(request: Request, instance_id: str, binding_id: str) -> Answer:
        rv.check_id(instance_id, "instance_id")
        rv.check_id(binding_id, "binding_id")
        query_hint(request, "service_id", required=False)
        query_hint(request, "plan_id", required=False)
        view = call(lambda: service_backend.fetch_binding(instance_id, binding_id))
        return _json(
            {"credentials": view.credentials, "endpoints": view.endpoints, "parameters": view.parameters},
            200,
        )

    @route("GET", "/v2/service_instances/<instance_id>/service_bindings/<binding_id>/last_operation")
    def binding_last_operation(request: Request, instance_id: str, binding_id: str) -> Answer:
        rv.check_id(instance_id, "instance_id")
        rv.check_id(binding_id, "binding_id")
        for name in ("service_id", "plan_id", "operation"):
            query_hint(request, name, required=False)
        op = call(lambda: service_backend.binding_last_operation(instance_id, binding_id))
        return _json(_operation_body(op), 200)

    return application


def _operation_body(op: backend.LastOperation) -> dict[str, Any]:
    body: dict[str, Any] = {"state": op.state}
    if op.description:
        body["description"] = op.description
    return body
