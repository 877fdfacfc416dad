"""The one shape of PostgreSQL credentials an app receives, brokered or user-provided.

The keys are the ones app libraries look for: ``uri`` (dj-database-url, Rails,
java-cfenv), ``jdbcUrl`` (Spring / java-cfenv), and the parts on their own
(``hostname``, ``port``, ``name``, ``username``, ``password``). With more than
one host (high availability) the URIs list every host and ask for the writable
one, so a client follows a failover by reconnecting.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote


def generate_password() -> str:
    """A random password: 256 bits, URL-safe so it survives every URI form unescaped."""
    return secrets.token_urlsafe(32)


def _host_port(host: str, port: int) -> str:
    # IPv6 literals need brackets inside URIs.
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


def build_credentials(
    *,
    hosts: Sequence[str],
    port: int,
    database: str,
    username: str,
    password: str,
    sslmode: str | None = None,
    ca_certificate: str | None = None,
) -> dict[str, Any]:
    """Return the credentials document for one login role on one database."""
    if not hosts:
        raise ValueError("at least one host is needed")
    netloc_hosts = ",".join(_host_port(h, port) for h in hosts)
    user_q = quote(username, safe="")
    pass_q = quote(password, safe="")
    db_q = quote(database, safe="")

    uri_params: list[str] = []
    jdbc_params = [f"user={user_q}", f"password={pass_q}"]
    if len(hosts) > 1:
        uri_params.append("target_session_attrs=read-write")
        jdbc_params.append("targetServerType=primary")
    if sslmode:
        uri_params.append(f"sslmode={sslmode}")
        jdbc_params.append(f"sslmode={sslmode}")
    uri = f"postgres://{user_q}:{pass_q}@{netloc_hosts}/{db_q}"
    if uri_params:
        uri += "?" + "&".join(uri_params)
    jdbc = f"jdbc:postgresql://{netloc_hosts}/{db_q}?" + "&".join(jdbc_params)

    creds: dict[str, Any] = {
        "uri": uri,
        "jdbcUrl": jdbc,
        "hostname": hosts[0],
        "hosts": list(hosts),
        "port": port,
        "name": database,
        "database": database,
        "username": username,
        "password": password,
    }
    if sslmode:
        creds["sslmode"] = sslmode
    if ca_certificate:
        creds["sslrootcert"] = ca_certificate
    return creds
