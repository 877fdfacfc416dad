"""The OSB contract, checked by schemathesis against the real broker process over HTTP.

Schemathesis generates requests from the Open Service Broker API's own OpenAPI
document (``shared/osb/openapi.yaml``, which the CI machine places beside the
clone) and checks every answer: never a 5xx, and every documented status has a
body of the documented shape. Statuses the OpenAPI document leaves out are
refused too, except the few the written spec allows (see ``SPEC_ALLOWED``):
the spec is the authority where the two differ, as the OpenAPI file says.

Random ids only reach "not found" and "bad request" paths, so hooks steer a
share of the requests to real objects: valid catalog ids in bodies and query
strings, and instance/binding ids made by the fixture, so provision, update,
bind, unbind, fetch and deprovision all run their real SQL.

The run is deterministic (derandomized Hypothesis, fixed seed, no example
database) and bounded (examples per operation, a per-request timeout), so CI
sees the same requests every time.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.support.broker_process import BROKER_PASSWORD, BROKER_USER, BrokerProcess
from tests.support.osb_client import LARGE_PLAN, SERVICE_ID, SMALL_PLAN, OsbClient

REPO_ROOT = Path(__file__).resolve().parents[2]
OPENAPI_PATH = REPO_ROOT.parent / "shared" / "osb" / "openapi.yaml"

# Per operation and phase; five operations write to PostgreSQL, so this is what
# keeps the whole run well under two minutes on two cores.
MAX_EXAMPLES = 30
SEED = 217
API_HEADERS = {"X-Broker-API-Version": "2.17"}

# Fixed ids, so the generated requests are the same on every run. uuid5 keeps
# them apart from the random uuid4 ids other tests use on the same broker.
_NS = uuid.UUID("6f1c2d0e-5b7a-4c3e-9a41-0d2b8e7f1a90")
LIVE_INSTANCE = str(uuid.uuid5(_NS, "live-instance"))
# Updates go to an instance of their own: a PATCH that changed the live instance's
# plan would decide whether a later PUT of the live id answers 200 or 409, and so
# make reaching both depend on the order in which the operations happen to run.
UPDATED_INSTANCE = str(uuid.uuid5(_NS, "updated-instance"))
LIVE_BINDING = str(uuid.uuid5(_NS, "live-binding"))
DOOMED_INSTANCES = [str(uuid.uuid5(_NS, f"doomed-instance-{i}")) for i in range(4)]
DOOMED_BINDINGS = [str(uuid.uuid5(_NS, f"doomed-binding-{i}")) for i in range(4)]

INSTANCE = "/v2/service_instances/{instance_id}"
BINDING = "/v2/service_instances/{instance_id}/service_bindings/{binding_id}"

# Statuses the OpenAPI document does not list for an operation, but the written
# spec allows. Each entry quotes the words it rests on.
SPEC_ALLOWED: dict[tuple[str, str], dict[int, str]] = {
    # "Fetching a Service Instance": "422 Unprocessable Entity | MUST be returned
    # if the Service Instance is being updated"; and "Service Broker Errors":
    # "the Service Broker MUST return an appropriate HTTP response code" -- 400
    # for hints the spec says "If present, MUST be a non-empty string" and for
    # ids beyond the broker's length limit.
    ("GET", INSTANCE): {400: "malformed hint or id", 422: "ConcurrencyError while updated"},
    # "Fetching a Service Binding": the same general rule for malformed input.
    ("GET", BINDING): {400: "malformed hint or id"},
}
# Every operation: "Service Broker Errors" ("an appropriate HTTP response code")
# and "Content Type" (a body that cannot be processed: 400); a body over the
# configured size limit gets 413 Payload Too Large. The API version header is
# always 2.17 here, so the spec's 412 cannot occur and is not allowed.
SPEC_ALLOWED_EVERYWHERE: dict[int, str] = {413: "body larger than the broker's limit"}


def spec_status_conformance(ctx: Any, response: Any, case: schemathesis.Case) -> None:
    """The status is one the OpenAPI document lists, or one the written spec allows (see above)."""
    method = case.operation.method.upper()
    if case.method.upper() != method:
        # The coverage phase also sends methods the path does not define (TRACE ...):
        # no OSB operation, so HTTP's rules apply (RFC 9110): OPTIONS is answered,
        # anything else is 405, and both say what is allowed in an Allow header.
        expected = 200 if case.method.upper() == "OPTIONS" else 405
        assert response.status_code == expected, (
            f"{case.method} {case.formatted_path} answered {response.status_code}, not {expected}"
        )
        assert response.headers.get("allow"), f"a {expected} answer to {case.method} needs an Allow header"
        return
    documented = {int(code) for code in case.operation.responses.status_codes}
    allowed = (
        documented | set(SPEC_ALLOWED.get((method, case.operation.path), {})) | set(SPEC_ALLOWED_EVERYWHERE)
    )
    assert response.status_code in allowed, (
        f"{method} {case.operation.path} answered {response.status_code}; "
        f"the OpenAPI document lists {sorted(documented)} and the spec allows no other here"
    )
    if response.status_code >= 400 and response.status_code not in documented:
        body = response.json()
        # "Service Broker Errors": an error body's fields, when present, are non-empty strings.
        assert isinstance(body, dict), f"error body is not a JSON object: {response.text[:200]}"
        for key in ("error", "description"):
            value = body.get(key)
            assert isinstance(value, str), f"error body lacks {key!r}"
            assert value, f"error body has an empty {key!r}"


CHECKS = [not_a_server_error, response_schema_conformance, spec_status_conformance]


# -- steering generated data towards real objects --------------------------------


def _opaque(value: Any) -> dict[str, Any]:
    # `context` is opaque to the broker but must be an object; keep a generated one.
    return value if isinstance(value, dict) else {}


def _pick_id(case: Any, name: str, which: str, live: str) -> str:
    """The live id, the generated one, or a fresh GUID derived from the generated case.

    Hypothesis offers its simplest ids ("0") again and again; a GUID made from
    the whole generated case gives each distinct case its own new object.
    """
    if which == "live":
        return live
    if which == "generated":
        return case.path_parameters[name]
    return str(uuid.uuid5(_NS, repr((case.path_parameters, case.query, case.body))))


def register_steering(schema: Any, service: str, plan_ids: list[str]) -> None:
    """A schema-scoped `flatmap_case` hook: some fuzzed cases as generated, most aimed at real objects.

    Steering the whole case at once (path, query and body together) is what
    makes a steered case valid: steering each part on its own would leave most
    cases with one random part, which the broker refuses with a 400.
    """
    plans = st.sampled_from(plan_ids)
    async_ok = {"accepts_incomplete": "true"}
    id_kinds = st.sampled_from(["fresh", "generated", "live"])
    first_true = st.sampled_from([True, False])  # unlike booleans(), simplest is True

    def provision(case: Any, plan: str, which: str) -> None:
        # A fresh or a generated (odd) id provisions for real; the live id
        # answers 200 (same attributes) or 409 (different ones). "live-moved"
        # asks for the live id in another org, always a 409: the plan alone
        # cannot be relied on for it, since Hypothesis favours the first plan.
        moved = which == "live-moved"
        which = "live" if moved else which
        case.path_parameters = {"instance_id": _pick_id(case, "instance_id", which, LIVE_INSTANCE)}
        case.query = async_ok
        body = case.body if isinstance(case.body, dict) else {}
        case.body = {
            "service_id": service,
            "plan_id": plan,
            "organization_guid": "another-org-guid" if moved else "org-guid",
            "space_guid": "space-guid",
            "context": _opaque(body.get("context")),
        }

    def update(case: Any, plan: str, with_plan: bool) -> None:
        case.path_parameters = {"instance_id": UPDATED_INSTANCE}
        case.query = async_ok
        body = case.body if isinstance(case.body, dict) else {}
        case.body = {"service_id": service, "context": _opaque(body.get("context"))}
        if with_plan:
            case.body["plan_id"] = plan

    def deprovision(case: Any, plan: str, index: int) -> None:
        case.path_parameters = {"instance_id": DOOMED_INSTANCES[index]}  # deleted once, then 410
        case.query = {"service_id": service, "plan_id": plan, **async_ok}

    def bind(case: Any, plan: str, which: str) -> None:
        # A fresh or generated binding id binds for real; the live one answers 200 (same) or 409.
        binding = _pick_id(case, "binding_id", which, LIVE_BINDING)
        case.path_parameters = {"instance_id": LIVE_INSTANCE, "binding_id": binding}
        case.query = async_ok
        body = case.body if isinstance(case.body, dict) else {}
        case.body = {
            "service_id": service,
            "plan_id": plan,
            "bind_resource": {"app_guid": "app-guid"},
            "context": _opaque(body.get("context")),
        }

    def unbind(case: Any, plan: str, index: int) -> None:
        case.path_parameters = {"instance_id": LIVE_INSTANCE, "binding_id": DOOMED_BINDINGS[index]}
        case.query = {"service_id": service, "plan_id": plan}

    def fetch(case: Any, _plan: str, live: bool) -> None:
        # The live objects (200), or a random id on the live instance (404).
        params = {**case.path_parameters, "instance_id": LIVE_INSTANCE}
        if live and "binding_id" in params:
            params["binding_id"] = LIVE_BINDING
        case.path_parameters = params
        case.query = {}

    steer: dict[tuple[str, str], tuple[Callable[[Any, str, Any], None], st.SearchStrategy]] = {
        ("PUT", INSTANCE): (provision, st.sampled_from(["fresh", "generated", "live", "live-moved"])),
        ("PATCH", INSTANCE): (update, first_true),
        ("DELETE", INSTANCE): (deprovision, st.integers(0, len(DOOMED_INSTANCES) - 1)),
        ("GET", INSTANCE): (fetch, first_true),
        ("GET", INSTANCE + "/last_operation"): (fetch, first_true),
        ("PUT", BINDING): (bind, id_kinds),
        ("DELETE", BINDING): (unbind, st.integers(0, len(DOOMED_BINDINGS) - 1)),
        ("GET", BINDING): (fetch, first_true),
        ("GET", BINDING + "/last_operation"): (fetch, first_true),
    }

    @schema.hook
    def flatmap_case(context: Any, case: Any) -> st.SearchStrategy:
        found = steer.get((context.operation.method.upper(), context.operation.path))
        if found is None:
            return st.just(case)
        apply, choice = found

        def steered(drawn: tuple[bool, str, Any]) -> Any:
            aim, plan, pick = drawn
            if aim:
                apply(case, plan, pick)
            return case

        # Two in three steered; steering is the first choice, so it is also what
        # Hypothesis shrinks towards. The coverage phase (which hooks do not
        # touch) already sends dozens of malformed requests per operation.
        return st.tuples(st.sampled_from([True, True, False]), plans, choice).map(steered)


# -- the run -----------------------------------------------------------------------

if not OPENAPI_PATH.is_file():
    pytest.skip(
        f"the OSB OpenAPI document is absent: {OPENAPI_PATH} (CI places shared/ beside the clone)",
        allow_module_level=True,
    )

# The schema is loaded at import (schemathesis' lazy `from_fixture` loader fails
# under pytest 9.2: it writes `Node._nodeid`, which pytest 9.2 no longer has), so
# the broker's address reaches each request through the `contract_target` fixture.
schema = schemathesis.openapi.from_path(
    OPENAPI_PATH,
    config=schemathesis.Config.from_dict(
        {
            "headers": API_HEADERS,
            "request-timeout": 30,
            "seed": SEED,
            "generation": {
                "deterministic": True,
                "max-examples": MAX_EXAMPLES,
                "database": "none",
            },
            "phases": {"stateful": {"enabled": False}},
        }
    ),
)
# The catalog's ids; the fixture checks that the broker advertises exactly these.
register_steering(schema, SERVICE_ID, [SMALL_PLAN, LARGE_PLAN])
_provisioned: list[str] = []
_statuses: dict[tuple[str, str], Counter[int]] = defaultdict(Counter)

# What the steering must reach for the run to mean anything: the real success
# paths of every operation that touches PostgreSQL, and their idempotent answers.
MUST_SEE: dict[tuple[str, str], set[int]] = {
    ("PUT", INSTANCE): {201, 200, 409},
    ("PATCH", INSTANCE): {200},
    ("DELETE", INSTANCE): {200, 410},
    ("GET", INSTANCE): {200, 404},
    ("GET", INSTANCE + "/last_operation"): {200},
    ("PUT", BINDING): {201, 200},
    ("DELETE", BINDING): {200, 410},
    ("GET", BINDING): {200, 404},
    ("GET", BINDING + "/last_operation"): {200},
}


@schema.hook
def after_call(context: Any, case: schemathesis.Case, response: Any) -> None:
    where = (case.operation.method.upper(), case.operation.path)
    _statuses[where][response.status_code] += 1
    # Remember every instance the run really created, so the fixture removes it;
    # by the path as sent, since generated ids arrive percent-encoded.
    if where == ("PUT", INSTANCE) and response.status_code == 201:
        _provisioned.append(urlsplit(response.request.url).path)


@pytest.fixture(scope="module")
def contract_target(broker: BrokerProcess) -> Iterator[str]:
    """The broker's URL, with the instance and bindings the steered requests aim at; all removed after."""
    client = OsbClient(broker.url, BROKER_USER, BROKER_PASSWORD)
    advertised = client.catalog().json()["services"][0]
    assert advertised["id"] == SERVICE_ID
    assert {p["id"] for p in advertised["plans"]} == {SMALL_PLAN, LARGE_PLAN}
    made: list[str] = []
    try:
        for instance_id in [LIVE_INSTANCE, UPDATED_INSTANCE, *DOOMED_INSTANCES]:
            assert client.provision(instance_id).status_code == 201
            made.append(f"/v2/service_instances/{instance_id}")
        for binding_id in [LIVE_BINDING, *DOOMED_BINDINGS]:
            assert client.bind(LIVE_INSTANCE, binding_id).status_code == 201
        yield broker.url
        # Only a full run can be held to this; `-k` may select a few operations.
        if set(MUST_SEE) <= set(_statuses):
            for where, wanted in MUST_SEE.items():
                missing = wanted - set(_statuses[where])
                assert not missing, (
                    f"{where}: steering never reached {sorted(missing)}; saw {_statuses[where]}"
                )
    finally:
        # In parallel: dropping a database waits for a checkpoint, dozens in a row add up.
        # One client per thread: a requests.Session is not meant to be shared between threads.
        def deprovision(path: str) -> requests.Response:
            own = OsbClient(broker.url, BROKER_USER, BROKER_PASSWORD)
            return own.request("DELETE", path, params={"service_id": SERVICE_ID, "plan_id": SMALL_PLAN})

        with ThreadPoolExecutor(max_workers=4) as pool:
            answers = list(pool.map(deprovision, made + _provisioned))
        _provisioned.clear()
        # 410: a fuzzed DELETE (any non-empty hints will do) may have removed it already.
        failed = [(r.status_code, r.text) for r in answers if r.status_code not in (200, 410)]
        assert not failed


@schema.parametrize()
@hypothesis.settings(
    # Far above any real request (the request timeout, 30 s, fires first with a
    # clearer message); it only stops a hung example from stalling the session.
    deadline=timedelta(seconds=60),
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_broker_follows_the_osb_contract(case: schemathesis.Case, contract_target: str) -> None:
    # Credentials and the version header go with every call, whatever was generated:
    # the config's `auth` serves only the CLI runner, and the coverage phase drops
    # required headers to probe for 400s. Setting the header on the case (not only
    # passing it to the call) is what makes schemathesis stop removing it.
    case.headers = {**(case.headers or {}), **API_HEADERS}
    case.call_and_validate(base_url=contract_target, auth=(BROKER_USER, BROKER_PASSWORD), checks=CHECKS)
