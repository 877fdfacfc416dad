"""The postgres job in HA mode (a `pg-monitor` link): the keeper under bpm, pg_auto_failover's
pg_hba rules, the keeper settings from ha_settings.py, and the passwords only in files. Without the
link the job renders as the single server it was (tests/templates/test_postgres_templates.py)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from postgres_service_broker import ha_settings
from tests.templates.job_inputs import (
    ADMIN_PASSWORD,
    MONITOR_ADDRESSES,
    MONITOR_PASSWORD,
    REPLICATION_PASSWORD,
    SECRETS,
    pg_monitor_link,
    postgres_ha_minimal,
    postgres_minimal,
)
from tests.templates.rendered_checks import (
    assert_no_secret_shown,
    assert_shellcheck_clean,
    assert_valid_bash,
    files_holding_secrets,
)
from tests.templates.renderer import Link, RenderError, job_spec, render_job
from tests.templates.test_postgres_templates import hba_rules, parse_conf
from tests.templates.tls_material import make_tls

TLS = make_tls("10.0.1.10")
SPEC = {"address": "10.0.1.10", "az": "z2", "index": 1}


def full_properties() -> dict[str, Any]:
    return {
        "postgres": {
            "port": 6543,
            "listen_addresses": "10.0.1.10",
            "admin_username": "cluster_admin",
            "admin_password": ADMIN_PASSWORD,
            "allowed_networks": ["10.0.0.0/16"],
            "tls": {"certificate": TLS.certificate, "private_key": TLS.private_key, "ca": TLS.ca},
            "ha": {
                "replication_password": REPLICATION_PASSWORD,
                "candidate_priority": 70,
                "replication_quorum": False,
                "network_partition_timeout_seconds": 3,
                "wal_sender_timeout": "5s",
                "switchover_timeout_seconds": 45,
            },
        }
    }


def render_ha(properties: dict[str, Any], monitor: Link | None = None) -> dict[str, str]:
    return render_job("postgres", properties, SPEC, {"pg-monitor": monitor or pg_monitor_link()})


@pytest.fixture(scope="module")
def defaults() -> dict[str, str]:
    return render_ha(postgres_ha_minimal())


@pytest.fixture(scope="module")
def full() -> dict[str, str]:
    monitor = pg_monitor_link(
        {"pg_monitor": {"autoctl_node_password": MONITOR_PASSWORD, "port": 7432, "tls": {"ca": TLS.ca}}}
    )
    return render_ha(full_properties(), monitor)


@pytest.fixture(scope="module")
def single() -> dict[str, str]:
    return render_job("postgres", postgres_minimal())


def test_spec_defaults_are_the_ha_settings() -> None:
    properties = job_spec("postgres")["properties"]
    assert properties["postgres.ha.candidate_priority"]["default"] == ha_settings.CANDIDATE_PRIORITY
    assert properties["postgres.ha.replication_quorum"]["default"] is ha_settings.REPLICATION_QUORUM
    keeper = ha_settings.keeper_settings()
    assert (
        str(properties["postgres.ha.network_partition_timeout_seconds"]["default"])
        == (keeper["timeout.network_partition_timeout"])
    )
    node = ha_settings.node_postgres_settings()
    assert properties["postgres.ha.wal_sender_timeout"]["default"] == node["wal_sender_timeout"]


def test_bpm_runs_the_keeper_in_ha_mode_and_postgres_otherwise(
    defaults: dict[str, str], single: dict[str, str]
) -> None:
    keeper, watch = yaml.safe_load(defaults["config/bpm.yml"])["processes"]
    assert keeper["name"] == "postgres"
    assert watch == {
        "name": "standby-watch",
        "executable": "/bin/bash",
        "args": ["/var/vcap/jobs/postgres/bin/ha-standby-watch"],
        "persistent_disk": True,
    }
    assert keeper["executable"] == "/var/vcap/packages/pg-auto-failover/bin/pg_autoctl"
    assert keeper["args"] == ["run", "--pgdata", "/var/vcap/store/postgres/data"]
    assert keeper["env"]["PGPASSFILE"] == "/var/vcap/store/postgres/pgpass"
    assert keeper["env"]["PGUSER"] == "pgadmin"
    assert keeper["persistent_disk"] is True
    assert keeper["shutdown_signal"] == "INT"
    (server,) = yaml.safe_load(single["config/bpm.yml"])["processes"]
    assert server["executable"] == "/var/vcap/packages/postgres/bin/postgres"
    assert "HA_MODE=false" in single["bin/env.sh"]
    assert "HA_MODE=true" in defaults["bin/env.sh"]


def test_keeper_and_node_settings_are_the_ha_settings(defaults: dict[str, str]) -> None:
    env = defaults["bin/env.sh"]
    keeper = ha_settings.keeper_settings()
    assert f"NETWORK_PARTITION_TIMEOUT_SECONDS={keeper['timeout.network_partition_timeout']}" in env
    assert f"CANDIDATE_PRIORITY={ha_settings.CANDIDATE_PRIORITY}" in env
    assert f"REPLICATION_QUORUM={str(ha_settings.REPLICATION_QUORUM).lower()}" in env
    conf = parse_conf(defaults["config/postgresql.conf"])
    for name, value in ha_settings.node_postgres_settings().items():
        assert conf[name] == value
    assert conf["synchronous_commit"] == "on"
    assert conf["hot_standby"] == "on"
    assert conf["log_statement"] == "none"
    assert conf["ident_file"] == "/var/vcap/data/postgres/pg_ident.conf"
    # pg_autoctl sets synchronous_standby_names itself, following the monitor.
    assert "synchronous_standby_names" not in conf


def test_node_identity_and_monitor_address(defaults: dict[str, str]) -> None:
    env = defaults["bin/env.sh"]
    assert "NODE_NAME=postgres_z2_1" in env
    assert "NODE_ADDRESS=10.0.1.10" in env
    monitor = f"postgres://autoctl_node@{MONITOR_ADDRESSES[0]}:5432/pg_auto_failover?sslmode=prefer"
    assert f"MONITOR_URI='{monitor}'" in env
    assert MONITOR_PASSWORD not in env


def test_full_properties_land(full: dict[str, str]) -> None:
    env = full["bin/env.sh"]
    assert "CANDIDATE_PRIORITY=70" in env
    assert "REPLICATION_QUORUM=false" in env
    assert "NETWORK_PARTITION_TIMEOUT_SECONDS=3" in env
    assert "SWITCHOVER_TIMEOUT_SECONDS=45" in env
    assert "TLS_CA_GIVEN=true" in env
    # The monitor's CA comes through the link, and the node verifies the monitor with it.
    assert "sslmode=verify-ca&sslrootcert=/var/vcap/jobs/postgres/config/ha/monitor-ca.pem" in env
    assert f":{7432}/pg_auto_failover" in env
    assert full["config/ha/monitor-ca.pem"].strip() == TLS.ca.strip()
    assert parse_conf(full["config/postgresql.conf"])["wal_sender_timeout"] == "5s"
    assert full["config/tls/ca.crt"].strip() == TLS.ca.strip()


def test_pg_hba_has_replication_and_monitor_rules_and_no_trust(
    defaults: dict[str, str], full: dict[str, str]
) -> None:
    rules = hba_rules(defaults["config/pg_hba.conf"])
    # The keeper's OS user logs in locally as the admin by peer, before the scram line for everyone else.
    assert rules[0] == ["local", "all", "pgadmin", "peer", "map=local_admin"]
    assert rules[1] == ["local", "all", "all", "scram-sha-256"]
    assert ["host", "replication", "pgautofailover_replicator", "0.0.0.0/0", "scram-sha-256"] in rules
    assert [
        "host",
        "postgres",
        "pgautofailover_monitor",
        f"{MONITOR_ADDRESSES[0]}/32",
        "scram-sha-256",
    ] in rules
    full_rules = hba_rules(full["config/pg_hba.conf"])
    assert [
        "hostssl",
        "replication",
        "pgautofailover_replicator",
        "10.0.0.0/16",
        "scram-sha-256",
    ] in full_rules
    assert full_rules[0][2] == "cluster_admin"
    for rendered in (defaults, full):
        text = rendered["config/pg_hba.conf"]
        assert "trust" not in [word for rule in hba_rules(text) for word in rule]
        assert {rule[3] for rule in hba_rules(text) if rule[0] == "local"} <= {"peer", "scram-sha-256"}
        assert {rule[-1] for rule in hba_rules(text) if rule[0] != "local"} == {"scram-sha-256"}


def test_single_mode_has_no_ha_lines(single: dict[str, str]) -> None:
    text = single["config/pg_hba.conf"]
    assert "pgautofailover" not in text
    assert "peer" not in text
    conf = parse_conf(single["config/postgresql.conf"])
    assert "ident_file" not in conf
    assert "wal_sender_timeout" not in conf
    assert single["config/ha/pgpass"].strip() == ""
    assert single["config/ha/roles.sql"].strip() == ""


def test_passwords_only_in_files_the_scripts_read(defaults: dict[str, str]) -> None:
    escape = lambda text: text.replace("\\", "\\\\").replace(":", "\\:")  # noqa: E731 - pgpass escaping
    pgpass = defaults["config/ha/pgpass"].splitlines()
    assert pgpass == [
        f"{MONITOR_ADDRESSES[0]}:5432:pg_auto_failover:autoctl_node:{escape(MONITOR_PASSWORD)}",
        f"*:*:*:pgautofailover_replicator:{escape(REPLICATION_PASSWORD)}",
    ]
    roles = defaults["config/ha/roles.sql"]
    assert roles.splitlines()[0] == "SET log_statement = 'none';"
    assert f"PASSWORD '{REPLICATION_PASSWORD.replace(chr(39), chr(39) * 2)}'" in roles
    assert f"PASSWORD '{ADMIN_PASSWORD.replace(chr(39), chr(39) * 2)}'" in roles
    holding = files_holding_secrets(defaults)
    assert holding <= {
        "config/admin_password",
        "config/admin_role.sql",
        "config/ha/pgpass",
        "config/ha/roles.sql",
    }
    for dest in (
        "config/bpm.yml",
        "bin/env.sh",
        "bin/ha-pre-start",
        "bin/ha-post-start",
        "bin/ha-drain",
        "bin/ha-standby-watch",
    ):
        assert not any(s in defaults[dest] for s in SECRETS), dest


@pytest.mark.parametrize(
    ("ha", "complaint"),
    [
        ({"candidate_priority": "50"}, "postgres.ha.candidate_priority"),
        ({"candidate_priority": 101}, "postgres.ha.candidate_priority"),
        ({"replication_quorum": "yes"}, "postgres.ha.replication_quorum"),
        ({"network_partition_timeout_seconds": 1.5}, "postgres.ha.network_partition_timeout_seconds"),
        ({"wal_sender_timeout": 2000}, "postgres.ha.wal_sender_timeout"),
        ({"switchover_timeout_seconds": 0}, "postgres.ha.switchover_timeout_seconds"),
        ({"replication_password": 42}, "postgres.ha.replication_password"),
        ({"standby_stall_seconds": 1}, "postgres.ha.standby_stall_seconds"),
        ({"standby_stall_seconds": "10"}, "postgres.ha.standby_stall_seconds"),
    ],
)
def test_wrong_values_fail_rendering_naming_the_property(ha: dict[str, Any], complaint: str) -> None:
    properties = postgres_ha_minimal()
    properties["postgres"]["ha"] = {**properties["postgres"]["ha"], **ha}
    with pytest.raises(RenderError, match=complaint) as caught:
        render_ha(properties)
    assert_no_secret_shown(str(caught.value))


def test_ha_mode_needs_the_replication_password() -> None:
    with pytest.raises(RenderError, match=r"postgres\.ha\.replication_password"):
        render_ha(postgres_minimal())


@pytest.mark.parametrize(
    "script",
    [
        "bin/pre-start",
        "bin/post-start",
        "bin/drain",
        "bin/env.sh",
        "bin/ha-pre-start",
        "bin/ha-post-start",
        "bin/ha-drain",
        "bin/ha-standby-watch",
    ],
)
def test_scripts_are_valid_bash(defaults: dict[str, str], full: dict[str, str], script: str) -> None:
    for rendered in (defaults, full):
        assert_valid_bash(rendered, script)


def test_rendered_scripts_pass_shellcheck(full: dict[str, str]) -> None:
    assert_shellcheck_clean("postgres", full)


def test_drain_hands_over_to_the_ha_script_keeping_the_integer_contract(defaults: dict[str, str]) -> None:
    drain = defaults["bin/drain"]
    # The HA script is exec'd with stdout restored, so it prints the one integer itself.
    assert "exec /var/vcap/jobs/postgres/bin/ha-drain" in drain
    ha_drain = defaults["bin/ha-drain"]
    assert "perform switchover" in ha_drain
    assert "echo 0 >&3" in ha_drain


def test_standby_watch_runs_only_in_ha_mode_with_its_stall_limit(
    defaults: dict[str, str], full: dict[str, str], single: dict[str, str]
) -> None:
    assert [p["name"] for p in yaml.safe_load(single["config/bpm.yml"])["processes"]] == ["postgres"]
    default_stall = job_spec("postgres")["properties"]["postgres.ha.standby_stall_seconds"]["default"]
    assert default_stall == 10
    assert "\nSTALL_SECONDS=10\n" in defaults["bin/ha-standby-watch"]
    properties = full_properties()
    properties["postgres"]["ha"]["standby_stall_seconds"] = 25
    watch = render_ha(properties)["bin/ha-standby-watch"]
    assert watch.startswith("#!/bin/bash\n")
    assert "\nSTALL_SECONDS=25\n" in watch
    # It acts through the monitor only on the primary, and ends only the maintenances it started.
    assert "pg_is_in_recovery()" in watch
    assert "pgautofailover.start_maintenance" in watch
    assert "pgautofailover.stop_maintenance" in watch
