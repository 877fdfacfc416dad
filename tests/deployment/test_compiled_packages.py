"""The release's packages, really compiled, checked from where a VM has them: /var/vcap/packages."""

from __future__ import annotations

import re
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.deployment.conftest import COMPILE_TIMEOUT_SECONDS, ROOT
from tests.support import bosh_compile
from tests.support.bosh_compile import CompiledPackage
from tests.templates.tls_material import make_tls
from tests.templates.vcap_tree import VcapTree

pytestmark = [pytest.mark.slow, pytest.mark.timeout(COMPILE_TIMEOUT_SECONDS)]

PACKAGES = "/var/vcap/packages"


def run(tree: VcapTree, argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        tree.command(argv),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_postgres_package_is_postgresql_15_with_tls_and_icu(packages_tree: VcapTree) -> None:
    version = run(packages_tree, [f"{PACKAGES}/postgres/bin/postgres", "--version"])
    assert version.returncode == 0, version.stderr
    assert re.fullmatch(r"postgres \(PostgreSQL\) 15\.\d+\n", version.stdout), version.stdout
    configure = run(packages_tree, [f"{PACKAGES}/postgres/bin/pg_config", "--configure"])
    assert configure.returncode == 0, configure.stderr
    for feature in ("--with-openssl", "--with-icu", f"--prefix={PACKAGES}/postgres"):
        assert feature in configure.stdout


def test_postgres_package_has_the_contrib_extensions(compiled_packages: dict[str, CompiledPackage]) -> None:
    # share/ without a postgresql/ level: the prefix (/var/vcap/packages/postgres) names postgres already.
    extensions = compiled_packages["postgres"].install_dir / "share" / "extension"
    for name in ("citext", "pgcrypto", "uuid-ossp", "pg_stat_statements"):
        assert (extensions / f"{name}.control").is_file(), name


def test_python3_package_has_working_ssl(packages_tree: VcapTree) -> None:
    """A real TLS 1.3 handshake in the package's Python, verified against a CA."""
    tls = make_tls()
    material = packages_tree.root / "data" / "tls"
    material.mkdir(parents=True)
    for name, text in (("ca.pem", tls.ca), ("cert.pem", tls.certificate), ("key.pem", tls.private_key)):
        (material / name).write_text(text)
    script = textwrap.dedent(
        """
        import socket, ssl, sys, threading
        d = sys.argv[1]
        server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_ctx.load_cert_chain(f"{d}/cert.pem", f"{d}/key.pem")
        client_ctx = ssl.create_default_context(cafile=f"{d}/ca.pem")
        a, b = socket.socketpair()
        def serve():
            with server_ctx.wrap_socket(a, server_side=True) as s:
                s.sendall(s.recv(5).upper())
        t = threading.Thread(target=serve)
        t.start()
        with client_ctx.wrap_socket(b, server_hostname="127.0.0.1") as c:
            c.sendall(b"hello")
            print(c.version(), c.recv(5).decode(), ssl.OPENSSL_VERSION)
        t.join()
        """
    )
    result = run(packages_tree, [f"{PACKAGES}/python3/bin/python3", "-", str(material)], stdin=script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("TLSv1.3 HELLO OpenSSL "), result.stdout


def test_python3_package_has_the_bundled_sqlite(packages_tree: VcapTree) -> None:
    script = textwrap.dedent(
        """
        import sqlite3
        db = sqlite3.connect(":memory:")
        db.execute("CREATE VIRTUAL TABLE docs USING fts5(body)")
        db.executemany("INSERT INTO docs VALUES (?)", [("postgres for cloud foundry",), ("other",)])
        hit = db.execute("SELECT body FROM docs WHERE docs MATCH 'foundry'").fetchone()[0]
        field = db.execute("SELECT json_extract('{\\"a\\": [1, 2]}', '$.a[1]')").fetchone()[0]
        print(sqlite3.sqlite_version, hit, field)
        """
    )
    result = run(packages_tree, [f"{PACKAGES}/python3/bin/python3", "-"], stdin=script)
    assert result.returncode == 0, result.stderr
    # 3.44.2 is the amalgamation blob: linked in statically, not the system's library.
    assert result.stdout == "3.44.2 postgres for cloud foundry 2\n"


def test_broker_package_runs_on_the_python3_package(packages_tree: VcapTree) -> None:
    help_text = run(packages_tree, [f"{PACKAGES}/broker/bin/postgres-service-broker", "--help"])
    assert help_text.returncode == 0, help_text.stderr
    assert "serve" in help_text.stdout
    base = run(packages_tree, [f"{PACKAGES}/broker/bin/python", "-c", "import sys; print(sys.base_prefix)"])
    assert base.stdout.strip() == f"{PACKAGES}/python3", base.stdout + base.stderr


def test_a_second_compile_takes_every_package_from_the_cache(
    compiled_packages: dict[str, CompiledPackage],
) -> None:
    again = bosh_compile.compile_release(ROOT, bosh_compile.default_cache_dir(ROOT), log=lambda _: None)
    assert set(again) == set(compiled_packages) >= {"python3", "postgres", "broker"}
    for name, package in again.items():
        assert package.cached, name
        assert package.install_dir == compiled_packages[name].install_dir
        assert Path(package.install_dir).is_dir()
