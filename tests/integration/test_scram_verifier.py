"""The broker's own SCRAM-SHA-256 verifiers, checked against libpq's and against a real server's login."""

from __future__ import annotations

import base64
import threading
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from postgres_service_broker.credentials import generate_password
from postgres_service_broker.local_cluster import LocalCluster
from postgres_service_broker.scram import ITERATIONS, scram_sha256_verifier


def test_the_verifier_is_the_one_libpq_computes_for_the_same_salt(admin_conn: psycopg.Connection) -> None:
    password = generate_password()
    theirs = admin_conn.pgconn.encrypt_password(password.encode(), b"anyone", b"scram-sha-256").decode()
    # SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>
    salt = base64.b64decode(theirs.split("$")[1].split(":")[1])
    assert scram_sha256_verifier(password, salt=salt) == theirs


def test_each_verifier_has_its_own_salt() -> None:
    password = generate_password()
    first, second = scram_sha256_verifier(password), scram_sha256_verifier(password)
    assert first != second
    assert first.startswith(f"SCRAM-SHA-256${ITERATIONS}:")


@pytest.fixture
def login_role(admin_conn: psycopg.Connection) -> Iterator[tuple[str, str]]:
    role, password = f"scram_{uuid.uuid4().hex[:12]}", generate_password()
    admin_conn.execute(
        sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(role), sql.Literal(scram_sha256_verifier(password))
        )
    )
    yield role, password
    admin_conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_the_server_accepts_the_password_and_refuses_another(
    pg_cluster: LocalCluster, login_role: tuple[str, str]
) -> None:
    role, password = login_role
    conninfo = {**pg_cluster.conninfo(), "user": role, "dbname": "postgres"}
    with psycopg.connect(**{**conninfo, "password": password}) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (role,)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(**{**conninfo, "password": password + "x"})


@pytest.mark.parametrize("password", ["", "caf\u00e9-password", "tab\there"])
def test_passwords_saslprep_could_change_are_refused(password: str) -> None:
    with pytest.raises(ValueError, match="printable ASCII"):
        scram_sha256_verifier(password)


def test_hashing_leaves_other_threads_running() -> None:
    """The reason for not using libpq's: other threads must go on while a verifier is computed."""
    ticks = 0
    done = threading.Event()

    def count() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            time.sleep(0)

    counter = threading.Thread(target=count)
    counter.start()
    try:
        started = time.perf_counter()
        for _ in range(20):
            scram_sha256_verifier(generate_password())
        elapsed = time.perf_counter() - started
    finally:
        done.set()
        counter.join()
    # Had the hashing held the GIL, the counter would run only between the 20
    # calls: libpq's function lets it run about 7 times here, this one about 250.
    assert ticks >= 60, f"the other thread ran {ticks} times in {elapsed * 1000:.0f} ms"
