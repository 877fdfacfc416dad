"""register-broker against the stand-in Cloud Controller + UAA, with the real broker serving its catalog."""

from __future__ import annotations

from pathlib import Path

import pytest

from postgres_service_broker.local_cluster import free_port
from tests.errands.errand_runner import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    BROKER_NAME,
    CLIENT_ID,
    CLIENT_SECRET,
    assert_no_secrets,
    registrar_config,
    run_registrar,
)
from tests.support.broker_process import (
    BROKER_PASSWORD,
    BROKER_USER,
    SECOND_PASSWORD,
    SECOND_USER,
    BrokerProcess,
)
from tests.support.fake_cloud_controller import StandInCloudFoundry, make_certificate

BROKER_JOB = r"/v3/jobs/[^/]+"


def output(result: object) -> str:
    return result.stdout + result.stderr  # type: ignore[attr-defined]


def test_first_registration_posts_the_broker_and_polls_its_job(
    stand_in: StandInCloudFoundry, broker: BrokerProcess, tmp_path: Path
) -> None:
    result = run_registrar(tmp_path, "register", registrar_config(stand_in, broker))

    assert result.returncode == 0, output(result)
    registered = stand_in.broker_named(BROKER_NAME)
    assert registered is not None
    assert (registered["url"], registered["username"], registered["password"]) == (
        broker.url,
        BROKER_USER,
        BROKER_PASSWORD,
    )
    assert registered["state"] == "AVAILABLE"
    assert len(stand_in.calls("POST", "/v3/service_brokers")) == 1
    assert stand_in.calls("PATCH", r"/v3/service_brokers/.+") == []
    # The job answered PROCESSING once, then COMPLETE: both polls were needed.
    assert len(stand_in.calls("GET", BROKER_JOB)) == 2
    # The catalog really came from the broker, and every plan is now public.
    plans = stand_in.plans_of(BROKER_NAME)
    assert {p["name"] for p in plans} == {"small", "large"}
    assert {p["visibility_type"] for p in plans} == {"public"}
    # UAA was found through the Cloud Controller's root document.
    assert f"uses UAA {stand_in.uaa_url}" in result.stdout
    assert "registered" in result.stdout
    assert_no_secrets(output(result), *stand_in.issued_tokens)


def test_rerun_updates_the_broker_with_patch(
    stand_in: StandInCloudFoundry, broker: BrokerProcess, tmp_path: Path
) -> None:
    assert run_registrar(tmp_path, "register", registrar_config(stand_in, broker)).returncode == 0
    guid = stand_in.broker_named(BROKER_NAME)["guid"]  # type: ignore[index]

    # Rotated credentials: the broker accepts both pairs, so the catalog job succeeds with either.
    rotated = registrar_config(stand_in, broker)
    rotated["broker"] = {**rotated["broker"], "username": SECOND_USER, "password": SECOND_PASSWORD}
    result = run_registrar(tmp_path, "register", rotated)

    assert result.returncode == 0, output(result)
    assert len(stand_in.brokers) == 1
    registered = stand_in.broker_named(BROKER_NAME)
    assert registered is not None
    assert registered["guid"] == guid
    assert (registered["username"], registered["password"]) == (SECOND_USER, SECOND_PASSWORD)
    assert len(stand_in.calls("POST", "/v3/service_brokers")) == 1
    patches = stand_in.calls("PATCH", f"/v3/service_brokers/{guid}")
    assert len(patches) == 1
    assert patches[0].body["url"] == broker.url
    assert patches[0].body["authentication"]["credentials"]["username"] == SECOND_USER
    assert "exists" in result.stdout
    assert_no_secrets(output(result), SECOND_PASSWORD)


def test_failed_job_exits_non_zero_with_the_jobs_errors(
    stand_in: StandInCloudFoundry, broker: BrokerProcess, tmp_path: Path
) -> None:
    wrong = registrar_config(stand_in, broker)
    wrong["broker"] = {**wrong["broker"], "password": "not-the-broker-password-Lm3"}
    result = run_registrar(tmp_path, "register", wrong)

    assert result.returncode == 1
    assert "register-broker: FAILED: service_broker.catalog.synchronize job" in result.stderr
    assert "CF-ServiceBrokerApiAuthenticationFailed" in result.stderr
    assert "Double-check that the username and password are correct" in result.stderr
    assert stand_in.broker_named(BROKER_NAME)["state"] == "SYNCHRONIZATION_FAILED"  # type: ignore[index]
    assert_no_secrets(output(result), "not-the-broker-password-Lm3")

    # The Cloud Controller keeps a broker whose first sync failed; a fixed re-run repairs it in place.
    fixed = run_registrar(tmp_path, "register", registrar_config(stand_in, broker))
    assert fixed.returncode == 0, output(fixed)
    assert stand_in.broker_named(BROKER_NAME)["state"] == "AVAILABLE"  # type: ignore[index]
    assert len(stand_in.calls("PATCH", r"/v3/service_brokers/.+")) == 1


@pytest.mark.parametrize(
    ("uaa", "hint"),
    [
        (
            {"client_id": CLIENT_ID, "client_secret": "wrong-secret-Hj2"},
            "check uaa.client_id and uaa.client_secret",
        ),
        (
            {"grant_type": "password", "username": ADMIN_USER, "password": "wrong-password-Hj2"},
            "check uaa.username and uaa.password",
        ),
    ],
    ids=["client_credentials", "password"],
)
def test_bad_uaa_credentials_fail_clearly_before_touching_the_cloud_controller(
    stand_in: StandInCloudFoundry, broker: BrokerProcess, tmp_path: Path, uaa: dict, hint: str
) -> None:
    result = run_registrar(tmp_path, "register", registrar_config(stand_in, broker, uaa=uaa))

    assert result.returncode == 1
    assert f"UAA at {stand_in.uaa_url} refused a token" in result.stderr
    assert "HTTP 401" in result.stderr
    assert "Bad credentials" in result.stderr
    assert hint in result.stderr
    assert [r.path for r in stand_in.requests if r.server == "cc"] == ["/"]
    assert_no_secrets(output(result), "wrong-secret-Hj2", "wrong-password-Hj2")


def test_password_grant_with_a_configured_uaa_url(
    stand_in: StandInCloudFoundry, broker: BrokerProcess, tmp_path: Path
) -> None:
    uaa = {
        "url": stand_in.uaa_url,
        "grant_type": "password",
        "username": ADMIN_USER,
        "password": ADMIN_PASSWORD,
    }
    result = run_registrar(tmp_path, "register", registrar_config(stand_in, broker, uaa=uaa))

    assert result.returncode == 0, output(result)
    assert stand_in.calls("GET", "/") == []  # no discovery needed
    assert [r.query["grant_type"] for r in stand_in.requests if r.server == "uaa"] == [["password"]]
    assert stand_in.broker_named(BROKER_NAME) is not None


def test_a_token_without_the_admin_scope_is_named(
    stand_in: StandInCloudFoundry, broker: BrokerProcess, tmp_path: Path
) -> None:
    stand_in.add_client("read-only", "read-only-secret", scopes=("cloud_controller.read",))
    uaa = {"client_id": "read-only", "client_secret": "read-only-secret"}
    result = run_registrar(tmp_path, "register", registrar_config(stand_in, broker, uaa=uaa))

    assert result.returncode == 1
    assert "POST /v3/service_brokers failed with HTTP 403" in result.stderr
    assert "CF-NotAuthorized (10003)" in result.stderr
    assert "cloud_controller.admin" in result.stderr


def test_listed_organizations_are_found_across_pages(broker: BrokerProcess, tmp_path: Path) -> None:
    # Two results per page, and hrefs on an external domain the errand cannot reach: it must
    # follow pagination.next.href and the job's Location on the server it was configured with.
    with StandInCloudFoundry(per_page_default=2, external_url="https://api.sys.example.invalid") as cf:
        cf.add_client(CLIENT_ID, CLIENT_SECRET)
        wanted = [f"team-{n}" for n in range(5)]
        for name in ["other-1", *wanted, "other-2", "other-3"]:
            cf.add_organization(name)
        doc = registrar_config(cf, broker, visibility={"access": "organizations", "organizations": wanted})
        result = run_registrar(tmp_path, "register", doc)

        assert result.returncode == 0, output(result)
        org_pages = cf.calls("GET", "/v3/organizations")
        assert [r.query.get("page", ["1"])[0] for r in org_pages] == ["1", "2", "3"]
        plans = cf.plans_of(BROKER_NAME)
        assert len(plans) == 2
        for plan in plans:
            assert cf.visibility(plan["guid"]) == ("organization", set(wanted))


def test_an_unknown_organization_fails_before_anything_changes(
    stand_in: StandInCloudFoundry, broker: BrokerProcess, tmp_path: Path
) -> None:
    stand_in.add_organization("known")
    visibility = {"access": "organizations", "organizations": ["known", "no-such-org"]}
    result = run_registrar(tmp_path, "register", registrar_config(stand_in, broker, visibility=visibility))

    assert result.returncode == 1
    assert "organization(s) not found: no-such-org" in result.stderr
    assert stand_in.calls("POST", "/v3/service_brokers") == []
    assert stand_in.broker_named(BROKER_NAME) is None


def test_visibility_public_then_listed_orgs_for_one_plan_then_admin_only(
    stand_in: StandInCloudFoundry, broker: BrokerProcess, tmp_path: Path
) -> None:
    stand_in.add_organization("finance")
    stand_in.add_organization("marketing")

    public = run_registrar(tmp_path, "register", registrar_config(stand_in, broker))
    assert public.returncode == 0, output(public)
    plans = {p["name"]: p["guid"] for p in stand_in.plans_of(BROKER_NAME)}
    assert stand_in.visibility(plans["small"]) == ("public", set())
    assert stand_in.visibility(plans["large"]) == ("public", set())

    listed = {"access": "organizations", "organizations": ["finance"], "plans": ["small"]}
    result = run_registrar(tmp_path, "register", registrar_config(stand_in, broker, visibility=listed))
    assert result.returncode == 0, output(result)
    # PATCH replaces: small is now for finance only; large, not listed in plans, is left alone.
    assert stand_in.visibility(plans["small"]) == ("organization", {"finance"})
    assert stand_in.visibility(plans["large"]) == ("public", set())

    result = run_registrar(
        tmp_path, "register", registrar_config(stand_in, broker, visibility={"access": "admin"})
    )
    assert result.returncode == 0, output(result)
    assert stand_in.visibility(plans["small"]) == ("admin", set())
    assert stand_in.visibility(plans["large"]) == ("admin", set())


def test_an_unknown_plan_name_is_named_with_the_plans_there_are(
    stand_in: StandInCloudFoundry, broker: BrokerProcess, tmp_path: Path
) -> None:
    visibility = {"access": "public", "plans": ["small", "medium"]}
    result = run_registrar(tmp_path, "register", registrar_config(stand_in, broker, visibility=visibility))

    assert result.returncode == 1
    assert "plan(s) not in the broker's catalog: medium; its plans are: large, small" in result.stderr


def test_a_job_that_does_not_finish_times_out(broker: BrokerProcess, tmp_path: Path) -> None:
    with StandInCloudFoundry(job_polls=10**6) as cf:
        cf.add_client(CLIENT_ID, CLIENT_SECRET)
        doc = registrar_config(cf, broker, job_timeout_seconds=0.5)
        result = run_registrar(tmp_path, "register", doc)

    assert result.returncode == 1
    assert "service_broker.catalog.synchronize job" in result.stderr
    assert "still PROCESSING after 0.5s" in result.stderr


def test_a_token_that_expires_during_the_job_is_renewed(broker: BrokerProcess, tmp_path: Path) -> None:
    # Tokens live 2s; the job needs 5 polls 0.5s apart, so the first token dies mid-run.
    with StandInCloudFoundry(job_polls=4, token_lifetime_s=2) as cf:
        cf.add_client(CLIENT_ID, CLIENT_SECRET)
        result = run_registrar(tmp_path, "register", registrar_config(cf, broker, poll_interval_seconds=0.5))

        assert result.returncode == 0, output(result)
        assert len([r for r in cf.requests if r.server == "uaa"]) >= 2
        assert cf.broker_named(BROKER_NAME)["state"] == "AVAILABLE"  # type: ignore[index]


def test_https_needs_the_ca_certificate_or_skip_ssl_validation(broker: BrokerProcess, tmp_path: Path) -> None:
    cert, key, pem = make_certificate(tmp_path)
    with StandInCloudFoundry(tls_cert=(cert, key)) as cf:
        cf.add_client(CLIENT_ID, CLIENT_SECRET)
        assert cf.api_url.startswith("https://")

        untrusted = run_registrar(tmp_path, "register", registrar_config(cf, broker))
        assert untrusted.returncode == 1
        assert "TLS certificate was not accepted" in untrusted.stderr
        assert "ca_cert" in untrusted.stderr
        assert cf.brokers == {}

        trusted = run_registrar(tmp_path, "register", registrar_config(cf, broker, ca_cert=pem))
        assert trusted.returncode == 0, output(trusted)

        skipped = run_registrar(tmp_path, "register", registrar_config(cf, broker, skip_ssl_validation=True))
        assert skipped.returncode == 0, output(skipped)


def test_an_unreachable_cloud_controller_is_named(
    stand_in: StandInCloudFoundry, broker: BrokerProcess, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = run_registrar(
        tmp_path, "register", registrar_config(stand_in, broker, cloud_controller={"url": url})
    )

    assert result.returncode == 1
    assert f"GET {url}/" in result.stderr
    assert "connection refused" in result.stderr
