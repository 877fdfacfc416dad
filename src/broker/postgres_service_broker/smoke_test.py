"""The smoke-tests errand: one service instance's whole life, through the broker, as CF would live it.

    python -m postgres_service_broker.smoke_test --config FILE

Steps: fetch the catalog, provision, bind, connect with the binding's
credentials, write a row and read it back on a second connection, unbind,
check the credentials no longer work, deprovision. Each step is printed; a
failure exits 1 naming the step. Whatever was created is removed again even
after a failure (unbind, then deprovision), and what could not be removed is
named so an operator can finish the job. Ids are random, so runs never clash.

Exit status: 0 passed, 1 a step failed, 2 the configuration is unusable.
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from postgres_service_broker.broker_client import BrokerClient, describe
from postgres_service_broker.cf.transport import HttpResponse, HttpTransport, TlsOptions, TransportError
from postgres_service_broker.config import ConfigError
from postgres_service_broker.errand_config import SmokeTestConfig, load_errand_config

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2

# libpq's messages when a login is refused (as opposed to a server that is not there).
REFUSED_LOGIN_MARKERS = (
    "password authentication failed",
    "does not exist",
    "is not permitted to log in",
    "no pg_hba.conf entry",
    "permission denied for database",
)

Say = Callable[[str], None]


class StepFailed(Exception):
    """A step did not do what it should; the message says what happened instead."""


@dataclass
class SmokeTest:
    config: SmokeTestConfig
    broker: BrokerClient
    say: Say
    instance_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    binding_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    service_id: str = ""
    plan_id: str = ""
    credentials: dict[str, Any] = field(default_factory=dict)
    # The org and space the instance claims to be in: random, like the ids.
    org_guid: str = field(default_factory=lambda: str(uuid.uuid4()))
    space_guid: str = field(default_factory=lambda: str(uuid.uuid4()))
    # What exists on the broker's side and so must be removed on the way out.
    instance_may_exist: bool = False
    binding_may_exist: bool = False
    _conn: psycopg.Connection[Any] | None = None

    def steps(self) -> list[tuple[str, Callable[[], str]]]:
        return [
            ("catalog", self.fetch_catalog),
            ("provision", self.provision),
            ("bind", self.bind),
            ("connect", self.connect),
            ("write-and-read", self.write_and_read),
            ("unbind", self.unbind),
            ("credentials-revoked", self.check_credentials_revoked),
            ("deprovision", self.deprovision),
        ]

    def run(self) -> str | None:
        """Run every step; returns the name of the failing step, or None when all passed."""
        steps = self.steps()
        for number, (name, action) in enumerate(steps, start=1):
            self.say(f"[{number}/{len(steps)}] {name}")
            try:
                detail = action()
            except (StepFailed, TransportError, psycopg.Error) as exc:
                self.say(f"[{number}/{len(steps)}] {name}: FAILED: {_one_line(exc)}")
                self.clean_up()
                return name
            self.say(f"[{number}/{len(steps)}] {name}: ok{': ' + detail if detail else ''}")
        return None

    # -- steps ------------------------------------------------------------------------

    def fetch_catalog(self) -> str:
        resp = self.broker.catalog()
        if resp.status != 200:
            raise StepFailed(f"GET /v2/catalog answered {describe(resp)}{_auth_hint(resp)}")
        doc = resp.json()
        services = doc.get("services") if isinstance(doc, dict) else None
        if not isinstance(services, list) or not services:
            raise StepFailed("the catalog lists no services")
        service = self._pick_service(services)
        plan = self._pick_plan(service)
        if not plan.get("bindable", service.get("bindable", False)):
            raise StepFailed(f"plan '{plan.get('name')}' is not bindable, so it cannot be smoke-tested")
        self.service_id, self.plan_id = str(service["id"]), str(plan["id"])
        return f"service '{service.get('name')}', plan '{plan.get('name')}'"

    def _pick_service(self, services: list[Any]) -> dict[str, Any]:
        names = [s.get("name") for s in services if isinstance(s, dict)]
        wanted = self.config.service_offering
        if wanted is None:
            if len(services) != 1:
                raise StepFailed(
                    f"the catalog has {len(services)} services ({', '.join(map(str, names))}); "
                    "set service_offering"
                )
            return services[0]
        for service in services:
            if isinstance(service, dict) and service.get("name") == wanted:
                return service
        raise StepFailed(f"service '{wanted}' is not in the catalog; it has: {', '.join(map(str, names))}")

    def _pick_plan(self, service: dict[str, Any]) -> dict[str, Any]:
        plans = [p for p in service.get("plans") or [] if isinstance(p, dict)]
        if not plans:
            raise StepFailed(f"service '{service.get('name')}' has no plans")
        wanted = self.config.plan
        if wanted is None:
            return plans[0]
        for plan in plans:
            if plan.get("name") == wanted:
                return plan
        names = ", ".join(str(p.get("name")) for p in plans)
        raise StepFailed(f"plan '{wanted}' is not in service '{service.get('name')}'; its plans: {names}")

    def _context(self) -> dict[str, Any]:
        return {
            "platform": "cloudfoundry",
            "organization_guid": self.org_guid,
            "organization_name": "smoke-tests",
            "space_guid": self.space_guid,
            "space_name": "smoke-tests",
        }

    def provision(self) -> str:
        body = {
            "service_id": self.service_id,
            "plan_id": self.plan_id,
            "organization_guid": self.org_guid,
            "space_guid": self.space_guid,
            "context": {**self._context(), "instance_name": f"smoke-test-{self.instance_id[:8]}"},
            "parameters": dict(self.config.instance_parameters),
        }
        # From here on the broker may have made something, even if the answer is an error.
        self.instance_may_exist = True
        resp = self.broker.provision(self.instance_id, body)
        if resp.status == 202:
            self._wait(lambda params: self.broker.instance_last_operation(self.instance_id, params), resp)
        elif resp.status not in (200, 201):
            raise StepFailed(f"PUT /v2/service_instances/{self.instance_id} answered {describe(resp)}")
        return f"instance {self.instance_id}"

    def bind(self) -> str:
        body = {
            "service_id": self.service_id,
            "plan_id": self.plan_id,
            "bind_resource": {"app_guid": str(uuid.uuid4())},
            "context": self._context(),
        }
        self.binding_may_exist = True
        resp = self.broker.bind(self.instance_id, self.binding_id, body)
        if resp.status == 202:
            self._wait(
                lambda params: self.broker.binding_last_operation(self.instance_id, self.binding_id, params),
                resp,
            )
            resp = self.broker.fetch_binding(self.instance_id, self.binding_id)
            if resp.status != 200:
                raise StepFailed(f"fetching the binding after it was created answered {describe(resp)}")
        elif resp.status not in (200, 201):
            # Never print the body of a bind: on success it holds a password.
            raise StepFailed(f"PUT .../service_bindings/{self.binding_id} answered {describe(resp)}")
        doc = resp.json()
        creds = doc.get("credentials") if isinstance(doc, dict) else None
        if not isinstance(creds, dict) or not isinstance(creds.get("uri"), str):
            raise StepFailed("the binding has no credentials with a 'uri'")
        self.credentials = creds
        return f"binding {self.binding_id}, user {creds.get('username')}, database {creds.get('name')}"

    def connect(self) -> str:
        self._conn = self._open()
        version = self._conn.execute("SHOW server_version").fetchone()
        return f"PostgreSQL {version[0] if version else '?'} at {_where(self.credentials)}"

    def write_and_read(self) -> str:
        assert self._conn is not None
        value = secrets.token_hex(16)
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS smoke_test (value text PRIMARY KEY, "
            "written_at timestamptz NOT NULL DEFAULT now())"
        )
        self._conn.execute("INSERT INTO smoke_test (value) VALUES (%s)", (value,))
        self._close()
        # Read on a new connection: the row must have been committed, not just seen by its writer.
        with self._open() as reader:
            row = reader.execute("SELECT value FROM smoke_test WHERE value = %s", (value,)).fetchone()
        if row is None or row[0] != value:
            raise StepFailed("the row written was not there when read back on a second connection")
        return "wrote a row and read it back"

    def unbind(self) -> str:
        self._close()
        self._remove_binding()
        return "binding removed"

    def check_credentials_revoked(self) -> str:
        try:
            with self._open():
                pass
        except psycopg.OperationalError as exc:
            text = str(exc)
            if any(marker in text for marker in REFUSED_LOGIN_MARKERS):
                return "the old credentials are refused"
            raise StepFailed(
                f"could not tell: connecting failed, but not with a refused login ({_one_line(exc)})"
            ) from None
        raise StepFailed("the binding's credentials still work after unbind")

    def deprovision(self) -> str:
        self._remove_instance()
        return "instance removed"

    # -- helpers ------------------------------------------------------------------------

    def _open(self) -> psycopg.Connection[Any]:
        with _ca_file(self.credentials.get("sslrootcert")) as ca_path:
            extra = {"sslrootcert": ca_path} if ca_path else {}
            return psycopg.connect(
                self.credentials["uri"],
                autocommit=True,
                connect_timeout=self.config.database_connect_timeout_seconds,
                application_name="smoke-tests",
                **extra,
            )

    def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None

    def _remove_binding(self) -> None:
        resp = self.broker.unbind(self.instance_id, self.binding_id, self.service_id, self.plan_id)
        if resp.status == 202:
            self._wait(
                lambda params: self.broker.binding_last_operation(self.instance_id, self.binding_id, params),
                resp,
                gone_is_success=True,
            )
        elif resp.status not in (200, 410):
            raise StepFailed(f"DELETE .../service_bindings/{self.binding_id} answered {describe(resp)}")
        self.binding_may_exist = False

    def _remove_instance(self) -> None:
        resp = self.broker.deprovision(self.instance_id, self.service_id, self.plan_id)
        if resp.status == 202:
            self._wait(
                lambda params: self.broker.instance_last_operation(self.instance_id, params),
                resp,
                gone_is_success=True,
            )
        elif resp.status not in (200, 410):
            raise StepFailed(f"DELETE /v2/service_instances/{self.instance_id} answered {describe(resp)}")
        self.instance_may_exist = False

    def _wait(
        self,
        poll: Callable[[dict[str, str]], HttpResponse],
        accepted: HttpResponse,
        *,
        gone_is_success: bool = False,
    ) -> None:
        """Poll last_operation after a 202 until it succeeds; 'failed' or the deadline fail the step."""
        params = {"service_id": self.service_id, "plan_id": self.plan_id}
        doc = accepted.json()
        if isinstance(doc, dict) and isinstance(doc.get("operation"), str):
            params["operation"] = doc["operation"]
        deadline = time.monotonic() + self.config.operation_timeout_seconds
        while True:
            resp = poll(params)
            if resp.status == 410 and gone_is_success:
                return
            if resp.status != 200:
                raise StepFailed(f"last_operation answered {describe(resp)}")
            body = resp.json() or {}
            state = body.get("state")
            if state == "succeeded":
                return
            if state == "failed":
                raise StepFailed(f"the broker reports the operation failed: {body.get('description', '')}")
            if state != "in progress":
                raise StepFailed(f"last_operation reported an unknown state {state!r}")
            if time.monotonic() >= deadline:
                raise StepFailed(f"still in progress after {self.config.operation_timeout_seconds:g}s")
            retry_after = resp.header("Retry-After")
            delay = self.config.poll_interval_seconds
            if retry_after and retry_after.isdigit():
                delay = min(float(retry_after), 60.0)
            time.sleep(delay)

    def clean_up(self) -> list[str]:
        """Remove what the failed run left on the broker; returns what could not be removed."""
        self._close()
        left: list[str] = []
        if self.binding_may_exist:
            try:
                self._remove_binding()
                self.say(f"cleanup: removed binding {self.binding_id}")
            except (StepFailed, TransportError) as exc:
                left.append(f"binding {self.binding_id} of instance {self.instance_id}")
                self.say(f"cleanup: could not remove binding {self.binding_id}: {_one_line(exc)}")
        if self.instance_may_exist:
            try:
                self._remove_instance()
                self.say(f"cleanup: removed instance {self.instance_id}")
            except (StepFailed, TransportError) as exc:
                left.append(f"instance {self.instance_id}")
                self.say(f"cleanup: could not remove instance {self.instance_id}: {_one_line(exc)}")
        if left:
            self.say(
                "cleanup: left behind on the broker: " + "; ".join(left) + " (remove them once it is healthy)"
            )
        return left


@contextlib.contextmanager
def _ca_file(ca: object) -> Iterator[str | None]:
    """libpq wants the CA as a file; bindings carry it as PEM text."""
    if not isinstance(ca, str) or "-----BEGIN" not in ca:
        yield ca if isinstance(ca, str) and ca else None
        return
    with tempfile.NamedTemporaryFile("w", suffix=".pem", prefix="smoke-tests-ca-") as handle:
        handle.write(ca)
        handle.flush()
        yield handle.name


def _where(creds: dict[str, Any]) -> str:
    hosts = creds.get("hosts") or [creds.get("hostname")]
    return f"{','.join(map(str, hosts))}:{creds.get('port')}/{creds.get('name')}"


def _auth_hint(resp: HttpResponse) -> str:
    return " (check broker.username and broker.password)" if resp.status == 401 else ""


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m postgres_service_broker.smoke_test",
        description="Provision, bind, use, unbind and deprovision through the broker.",
    )
    parser.add_argument("--config", required=True, help="the errand's YAML configuration file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    def say(message: str) -> None:
        print(f"smoke-tests: {message}", flush=True)

    try:
        config = load_errand_config(args.config, SmokeTestConfig, "smoke-tests")
    except ConfigError as exc:
        print(f"smoke-tests: FAILED: {exc}", file=sys.stderr, flush=True)
        return EXIT_CONFIG
    transport = HttpTransport(
        TlsOptions(config.skip_ssl_validation, config.ca_cert), config.request_timeout_seconds
    )
    broker = BrokerClient(
        config.broker.url, config.broker.username, config.broker.password.get_secret_value(), transport
    )
    test = SmokeTest(config, broker, say)
    say(f"broker {config.broker.url}; instance {test.instance_id}, binding {test.binding_id}")
    failed = test.run()
    if failed is not None:
        print(f"smoke-tests: FAILED at step '{failed}'", file=sys.stderr, flush=True)
        return EXIT_FAILED
    say("PASSED")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
