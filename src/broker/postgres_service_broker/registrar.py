"""The register-broker and deregister-broker errands, talking to the Cloud Controller's v3 API.

    python -m postgres_service_broker.registrar register   --config FILE
    python -m postgres_service_broker.registrar deregister --config FILE

register creates the broker (``POST /v3/service_brokers``) or, when one of
that name exists, points it at the configured URL and credentials (``PATCH``),
waits for the catalog job, then sets plan visibility; running it again
converges on the same state. deregister takes access away and removes the
broker, and refuses while service instances exist unless ``purge: true``.

Exit status: 0 done, 1 the operation failed (the message says why), 2 the
configuration is unusable.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from postgres_service_broker.cf.cloud_controller import CloudControllerClient, CloudControllerError
from postgres_service_broker.cf.transport import HttpTransport, TlsOptions, TransportError
from postgres_service_broker.cf.uaa import (
    ClientCredentialsGrant,
    Grant,
    PasswordGrant,
    TokenSource,
    UaaClient,
    UaaError,
)
from postgres_service_broker.config import ConfigError
from postgres_service_broker.errand_config import (
    RegistrarConfig,
    load_errand_config,
    require_registration_fields,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
# Instance names shown when refusing to deregister; the count is always exact.
NAMES_SHOWN = 5

Say = Callable[[str], None]


class RegistrarError(Exception):
    """Registration cannot go on; the message says what to do."""


def _grant(config: RegistrarConfig) -> Grant:
    uaa = config.uaa
    if uaa.grant_type == "password":
        # Both are checked by the configuration's validation.
        assert uaa.username is not None
        assert uaa.password is not None
        return PasswordGrant(
            uaa.effective_client_id,
            uaa.effective_client_secret,
            uaa.username,
            uaa.password.get_secret_value(),
        )
    return ClientCredentialsGrant(uaa.effective_client_id, uaa.effective_client_secret)


def connect(config: RegistrarConfig, say: Say) -> CloudControllerClient:
    """A Cloud Controller client holding a UAA token (fetched now, so bad credentials fail first)."""
    transport = HttpTransport(
        TlsOptions(config.skip_ssl_validation, config.ca_cert), config.request_timeout_seconds
    )
    cc = CloudControllerClient(config.cloud_controller.url, transport)
    uaa_url = config.uaa.url
    if uaa_url is None:
        uaa_url = cc.uaa_url()
        say(f"Cloud Controller {cc.api_url} uses UAA {uaa_url}")
    grant = _grant(config)
    tokens = TokenSource(UaaClient(uaa_url, transport), grant)
    tokens.authorization()
    say(f"got a UAA token for {grant.describe()}")
    cc.tokens = tokens
    return cc


def register(config: RegistrarConfig, say: Say) -> None:
    url, username, password = require_registration_fields(config)
    name = config.broker.name
    visibility = config.visibility
    cc = connect(config, say)

    # Resolve organizations before changing anything, so a typo changes nothing.
    org_guids: list[str] = []
    if visibility.access == "organizations":
        found = cc.organization_guids(visibility.organizations)
        missing = [o for o in visibility.organizations if o not in found]
        if missing:
            raise RegistrarError(
                f"organization(s) not found: {', '.join(missing)}; fix visibility.organizations "
                "(names are case-sensitive)"
            )
        org_guids = [found[o] for o in visibility.organizations]

    existing = cc.find_service_broker(name)
    if existing is not None and existing.space_guid is not None:
        raise RegistrarError(
            f"a space-scoped service broker named '{name}' exists (space {existing.space_guid}); "
            "delete it or choose another broker.name"
        )
    if existing is None:
        say(f"creating service broker '{name}' at {url}")
        job = cc.create_service_broker(name, url, username, password)
    else:
        say(f"service broker '{name}' exists ({existing.guid}); updating its URL ({url}) and credentials")
        job = cc.update_service_broker(existing.guid, url, username, password)
    if job is not None:
        say("waiting for the Cloud Controller to fetch the broker's catalog")
        cc.wait_for_job(job, timeout_s=config.job_timeout_seconds, interval_s=config.poll_interval_seconds)

    broker = cc.find_service_broker(name)
    if broker is None:
        raise RegistrarError(f"service broker '{name}' is gone right after registering it; was it deleted?")
    plans = cc.service_plans(broker.guid)
    if visibility.plans:
        by_name = {p.name: p for p in plans}
        unknown = [p for p in visibility.plans if p not in by_name]
        if unknown:
            raise RegistrarError(
                f"plan(s) not in the broker's catalog: {', '.join(unknown)}; "
                f"its plans are: {', '.join(sorted(by_name)) or 'none'} (fix visibility.plans)"
            )
        plans = [by_name[p] for p in visibility.plans]

    cc_type = {"public": "public", "organizations": "organization", "admin": "admin"}[visibility.access]
    audience = {
        "public": "every organization",
        "organizations": "organization(s) " + ", ".join(visibility.organizations),
        "admin": "administrators only",
    }[visibility.access]
    for plan in plans:
        cc.set_plan_visibility(plan.guid, cc_type, org_guids)
        say(f"plan '{plan.name}': visible to {audience}")
    say(f"service broker '{name}' is registered ({broker.guid})")


def deregister(config: RegistrarConfig, say: Say) -> None:
    name = config.broker.name
    cc = connect(config, say)
    broker = cc.find_service_broker(name)
    if broker is None:
        say(f"service broker '{name}' is not registered; nothing to do")
        return
    if broker.space_guid is not None:
        raise RegistrarError(
            f"the service broker named '{name}' is space-scoped (space {broker.space_guid}), "
            "so it is not the one this errand registers; leaving it alone"
        )

    offerings = cc.service_offerings(broker.guid)
    plans = cc.service_plans(broker.guid)
    instances = cc.service_instances([p.guid for p in plans]) if plans else []
    if instances and not config.purge:
        shown = ", ".join(i.name for i in instances[:NAMES_SHOWN])
        more = f" and {len(instances) - NAMES_SHOWN} more" if len(instances) > NAMES_SHOWN else ""
        raise RegistrarError(
            f"refusing to deregister service broker '{name}': {len(instances)} service instance(s) of its "
            f"plans exist ({shown}{more}). Delete them first (cf delete-service), or set purge: true to "
            "remove them from Cloud Foundry without deprovisioning (their databases stay on the cluster)."
        )

    # Nobody may create an instance while the broker is being removed.
    for plan in plans:
        if plan.visibility_type != "admin":
            cc.set_plan_visibility(plan.guid, "admin")
            say(f"plan '{plan.name}': access disabled")
    if config.purge:
        for offering in offerings:
            cc.purge_service_offering(offering.guid)
            say(f"purged service offering '{offering.name}' and its instances from Cloud Foundry")
        if instances:
            say(f"{len(instances)} service instance(s) were purged; their databases are still on the cluster")

    say(f"deleting service broker '{name}' ({broker.guid})")
    job = cc.delete_service_broker(broker.guid)
    cc.wait_for_job(job, timeout_s=config.job_timeout_seconds, interval_s=config.poll_interval_seconds)
    say(f"service broker '{name}' is deregistered")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m postgres_service_broker.registrar",
        description="Register the broker with Cloud Foundry, or remove it, through the Cloud Controller API.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command, text in (
        ("register", "create or update the broker, then set plan visibility"),
        ("deregister", "disable access and delete the broker (refuses while instances exist unless purge)"),
    ):
        cmd = sub.add_parser(command, help=text)
        cmd.add_argument("--config", required=True, help="the errand's YAML configuration file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    errand = f"{args.command}-broker"

    def say(message: str) -> None:
        print(f"{errand}: {message}", flush=True)

    def fail(message: str, status: int) -> int:
        print(f"{errand}: FAILED: {message}", file=sys.stderr, flush=True)
        return status

    try:
        config = load_errand_config(args.config, RegistrarConfig, errand)
        action = register if args.command == "register" else deregister
        action(config, say)
    except ConfigError as exc:
        return fail(str(exc), EXIT_CONFIG)
    except (RegistrarError, CloudControllerError, UaaError, TransportError) as exc:
        return fail(str(exc), EXIT_FAILED)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
