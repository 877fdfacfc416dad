"""The pg-monitor job's templates: what they render from defaults and from a full property set, and
what they refuse. The defaults must be the figures of ha_settings.py, which the HA tests prove."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from postgres_service_broker import ha_settings
from tests.templates.job_inputs import MONITOR_PASSWORD, pg_monitor_minimal
from tests.templates.rendered_checks import (
    assert_no_secret_shown,
    assert_shellcheck_clean,
    assert_valid_bash,
    files_holding_secrets,
)
from tests.templates.renderer import RenderError, job_spec, render_job
from tests.templates.test_postgres_templates import hba_rules, parse_conf
from tests.templates.tls_material import make_tls

TLS = make_tls("10.0.3.30")
SPEC = {"address": "10.0.3.30", "az": "z1", "index": 0}


def full_properties() -> dict[str, Any]:
    return {
        "pg_monitor": {
            "port": 6432,
            "autoctl_node_password": MONITOR_PASSWORD,
            "allowed_networks": ["10.0.1.7/24", "fd00::1/8"],
            "number_sync_standbys": 1,
            "health_check_period_ms": 2000,
            "health_check_timeout_ms": 1500,
            "health_check_max_retries": 3,
            "health_check_retry_delay_ms": 250,
            "node_considered_unhealthy_timeout_ms": 5000,
            "primary_demote_timeout_ms": 20000,
            "startup_grace_period_ms": 15000,
            "max_connections": 50,
            "shared_buffers": "64MB",
            "tls": {"certificate": TLS.certificate, "private_key": TLS.private_key, "ca": TLS.ca},
            "startup_timeout_seconds": 60,
            "shutdown_timeout_seconds": 20,
        }
    }


@pytest.fixture(scope="module")
def defaults() -> dict[str, str]:
    return render_job("pg-monitor", pg_monitor_minimal(), SPEC)


@pytest.fixture(scope="module")
def full() -> dict[str, str]:
    return render_job("pg-monitor", full_properties(), SPEC)


def test_spec_defaults_are_the_ha_settings() -> None:
    """The job's defaults follow ha_settings.py: a tuned constant must be carried into the spec."""
    properties = job_spec("pg-monitor")["properties"]
    expected = {
        "pg_monitor.health_check_period_ms": ha_settings.HEALTH_CHECK_PERIOD_MS,
        "pg_monitor.health_check_timeout_ms": ha_settings.HEALTH_CHECK_TIMEOUT_MS,
        "pg_monitor.health_check_max_retries": ha_settings.HEALTH_CHECK_MAX_RETRIES,
        "pg_monitor.health_check_retry_delay_ms": ha_settings.HEALTH_CHECK_RETRY_DELAY_MS,
        "pg_monitor.node_considered_unhealthy_timeout_ms": ha_settings.NODE_CONSIDERED_UNHEALTHY_TIMEOUT_MS,
        "pg_monitor.primary_demote_timeout_ms": ha_settings.PRIMARY_DEMOTE_TIMEOUT_MS,
        "pg_monitor.startup_grace_period_ms": ha_settings.STARTUP_GRACE_PERIOD_MS,
        "pg_monitor.number_sync_standbys": ha_settings.NUMBER_SYNC_STANDBYS,
    }
    assert {name: properties[name]["default"] for name in expected} == expected


def test_defaults_set_every_monitor_setting_of_ha_settings(defaults: dict[str, str]) -> None:
    conf = parse_conf(defaults["config/postgresql.conf"])
    assert {
        k: v for k, v in conf.items() if k.startswith("pgautofailover.")
    } == ha_settings.monitor_settings()
    assert conf["port"] == "5432"
    assert conf["hba_file"] == "/var/vcap/jobs/pg-monitor/config/pg_hba.conf"
    assert conf["unix_socket_directories"] == "/var/vcap/sys/run/pg-monitor"
    assert conf["password_encryption"] == "scram-sha-256"
    assert conf["ssl"] == "off"
    assert conf["log_statement"] == "none"
    assert "NUMBER_SYNC_STANDBYS=0" in defaults["bin/env.sh"]


def test_full_properties_land(full: dict[str, str]) -> None:
    conf = parse_conf(full["config/postgresql.conf"])
    assert conf["pgautofailover.health_check_period"] == "2000"
    assert conf["pgautofailover.health_check_timeout"] == "1500"
    assert conf["pgautofailover.health_check_max_retries"] == "3"
    assert conf["pgautofailover.health_check_retry_delay"] == "250"
    assert conf["pgautofailover.node_considered_unhealthy_timeout"] == "5000"
    assert conf["pgautofailover.primary_demote_timeout"] == "20000"
    assert conf["pgautofailover.startup_grace_period"] == "15000"
    assert conf["port"] == "6432"
    assert conf["max_connections"] == "50"
    assert conf["shared_buffers"] == "64MB"
    assert conf["ssl"] == "on"
    assert full["config/tls/server.crt"].strip() == TLS.certificate.strip()
    assert full["config/tls/ca.crt"].strip() == TLS.ca.strip()
    env = full["bin/env.sh"]
    assert "PORT=6432" in env
    assert "ADDRESS=10.0.3.30" in env
    assert "NUMBER_SYNC_STANDBYS=1" in env
    assert "TLS_ENABLED=true" in env
    assert "TLS_CA_GIVEN=true" in env


def test_pg_hba_is_peer_locally_and_scram_for_the_keepers_only(
    defaults: dict[str, str], full: dict[str, str]
) -> None:
    rules = hba_rules(defaults["config/pg_hba.conf"])
    assert ["local", "all", "all", "peer"] in rules
    remote = [r for r in rules if r[0] != "local"]
    assert remote == [
        ["host", "pg_auto_failover", "autoctl_node", "0.0.0.0/0", "scram-sha-256"],
        ["host", "pg_auto_failover", "autoctl_node", "::/0", "scram-sha-256"],
    ]
    full_rules = hba_rules(full["config/pg_hba.conf"])
    assert [r[0] for r in full_rules if r[0] != "local"] == ["hostssl", "hostssl"]
    # Normalised to network/prefix.
    assert [r[3] for r in full_rules if r[0] != "local"] == ["10.0.1.0/24", "fd00::/8"]
    for rendered in (defaults, full):
        methods = {r[-1] for r in hba_rules(rendered["config/pg_hba.conf"])}
        assert methods <= {"peer", "scram-sha-256"}
        assert "trust" not in rendered["config/pg_hba.conf"]


def test_bpm_runs_pg_autoctl_with_no_secret(defaults: dict[str, str]) -> None:
    bpm = yaml.safe_load(defaults["config/bpm.yml"])
    (process,) = bpm["processes"]
    assert process["name"] == "pg-monitor"
    assert process["executable"] == "/var/vcap/packages/pg-auto-failover/bin/pg_autoctl"
    assert process["args"] == ["run", "--pgdata", "/var/vcap/store/pg-monitor/data"]
    assert process["persistent_disk"] is True
    assert process["shutdown_signal"] == "INT"
    assert process["env"]["PGPASSFILE"] == "/var/vcap/store/pg-monitor/pgpass"
    assert MONITOR_PASSWORD not in defaults["config/bpm.yml"]


def test_the_password_goes_only_to_files_pre_and_post_start_read(defaults: dict[str, str]) -> None:
    holding = files_holding_secrets(defaults)
    # SQL doubles the quote and pgpass escapes ':' and '\': the secret appears escaped there.
    escaped_sql = MONITOR_PASSWORD.replace("'", "''")
    escaped_pgpass = MONITOR_PASSWORD.replace("\\", "\\\\").replace(":", "\\:")
    assert f"PASSWORD '{escaped_sql}'" in defaults["config/roles.sql"]
    assert defaults["config/pgpass"].strip() == f"*:*:pg_auto_failover:autoctl_node:{escaped_pgpass}"
    assert holding <= {"config/roles.sql", "config/pgpass"}
    assert "SET log_statement = 'none'" in defaults["config/roles.sql"].splitlines()[0]


@pytest.mark.parametrize(
    ("properties", "complaint"),
    [
        ({"port": "5432"}, "pg_monitor.port"),
        ({"health_check_period_ms": "1s"}, "pg_monitor.health_check_period_ms"),
        ({"primary_demote_timeout_ms": 0}, "pg_monitor.primary_demote_timeout_ms"),
        ({"number_sync_standbys": -1}, "pg_monitor.number_sync_standbys"),
        ({"shared_buffers": 32}, "pg_monitor.shared_buffers"),
        ({"allowed_networks": ["10.0.0.1"]}, r"pg_monitor.allowed_networks\[0\]"),
        ({"tls": {"certificate": TLS.certificate}}, "pg_monitor.tls.private_key"),
        ({"autoctl_node_password": 12345}, "pg_monitor.autoctl_node_password"),
        ({"autoctl_node_password": "a\nb"}, "pg_monitor.autoctl_node_password"),
    ],
)
def test_wrong_values_fail_rendering_naming_the_property(properties: dict[str, Any], complaint: str) -> None:
    merged = {"pg_monitor": {**pg_monitor_minimal()["pg_monitor"], **properties}}
    with pytest.raises(RenderError, match=complaint) as caught:
        render_job("pg-monitor", merged, SPEC)
    assert_no_secret_shown(str(caught.value))


def test_missing_password_fails_rendering() -> None:
    with pytest.raises(RenderError, match=r"pg_monitor\.autoctl_node_password"):
        render_job("pg-monitor", {}, SPEC)


@pytest.mark.parametrize("script", ["bin/pre-start", "bin/post-start", "bin/drain", "bin/env.sh"])
def test_scripts_are_valid_bash(defaults: dict[str, str], full: dict[str, str], script: str) -> None:
    for rendered in (defaults, full):
        assert_valid_bash(rendered, script)


def test_rendered_scripts_pass_shellcheck(full: dict[str, str]) -> None:
    assert_shellcheck_clean("pg-monitor", full)


def test_the_link_carries_port_password_and_ca() -> None:
    provides = job_spec("pg-monitor")["provides"]
    assert provides == [
        {
            "name": "pg-monitor",
            "type": "pg-monitor",
            "properties": ["pg_monitor.port", "pg_monitor.autoctl_node_password", "pg_monitor.tls.ca"],
        }
    ]
