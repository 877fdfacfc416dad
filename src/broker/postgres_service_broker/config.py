"""The broker's configuration: one YAML file, or environment variables when pushed as an app.

Everything is validated once, at start. A bad value stops the broker with a
message that names the field (``database.port``) and, for environment
configuration, the variable it came from, so an operator knows what to fix.
Unknown keys are errors too: a typo must not silently fall back to a default.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from postgres_service_broker import __version__

# CLI-friendly names, as the OSB spec defines them: alphanumerics, periods, hyphens.
CLI_FRIENDLY = r"^[A-Za-z0-9][A-Za-z0-9.-]*$"
# A PostgreSQL extension name as it appears in pg_available_extensions.
EXTENSION_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,62}$"

DEFAULT_SERVICE_ID = "5c2d6a5e-3d3b-4b8e-9d1a-7f0e2f9b6c41"
DEFAULT_SMALL_PLAN_ID = "0b6c3f3e-8f0e-4d55-a1f1-3c6a1c9e2b10"
DEFAULT_LARGE_PLAN_ID = "9e4a7d12-56b1-4f0c-8c3e-2d9b0a6f7e21"


class ConfigError(Exception):
    """The configuration cannot be used; the message names the field to fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BrokerCredential(_Strict):
    """One username/password pair the platform may use; several may be valid at once."""

    username: Annotated[str, Field(min_length=1, max_length=256)]
    password: Annotated[SecretStr, Field(min_length=8, max_length=1024)]


class ListenConfig(_Strict):
    host: str = "0.0.0.0"
    port: Annotated[int, Field(ge=1, le=65535)] = 8080
    # Requests the app serves at once (http_server.py's max_requests).
    threads: Annotated[int, Field(ge=1, le=256)] = 32


class DatabaseConfig(_Strict):
    """How the broker reaches the shared cluster as an administrator, and what apps are told."""

    host: Annotated[str, Field(min_length=1)] = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 5432
    user: Annotated[str, Field(min_length=1)] = "postgres"
    password: SecretStr | None = None
    admin_database: Annotated[str, Field(min_length=1, max_length=63)] = "postgres"
    state_database: Annotated[str, Field(min_length=1, max_length=63)] = "service_broker"
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = "prefer"
    sslrootcert: str | None = None
    connect_timeout: Annotated[int, Field(ge=1, le=300)] = 10
    pool_size: Annotated[int, Field(ge=2, le=500)] = 40
    # Where apps connect; differs from `host` when the broker reaches the
    # cluster through another address (a local socket, a private network).
    public_hosts: list[Annotated[str, Field(min_length=1)]] | None = None
    public_port: Annotated[int, Field(ge=1, le=65535)] | None = None

    @property
    def hosts(self) -> list[str]:
        """`host` may list several nodes, comma-separated, as libpq allows (HA)."""
        return [h.strip() for h in self.host.split(",") if h.strip()]

    @property
    def credential_hosts(self) -> list[str]:
        return list(self.public_hosts) if self.public_hosts else self.hosts

    @property
    def credential_port(self) -> int:
        return self.public_port or self.port


class PlanConfig(_Strict):
    id: Annotated[str, Field(min_length=1, max_length=255)]
    name: Annotated[str, Field(min_length=1, max_length=255, pattern=CLI_FRIENDLY)]
    description: Annotated[str, Field(min_length=1, max_length=255)]
    connection_limit: Annotated[int, Field(ge=1, le=10000)]
    free: bool = True
    display_name: str | None = None
    bullets: list[str] = []
    costs: list[dict[str, Any]] | None = None


class ServiceConfig(_Strict):
    id: Annotated[str, Field(min_length=1, max_length=255)] = DEFAULT_SERVICE_ID
    name: Annotated[str, Field(min_length=1, max_length=255, pattern=CLI_FRIENDLY)] = "postgres"
    description: Annotated[str, Field(min_length=1, max_length=255)] = (
        "PostgreSQL databases on a shared, managed cluster"
    )
    display_name: str = "PostgreSQL"
    long_description: str = (
        "Each service instance is its own PostgreSQL database on a shared cluster; "
        "each binding gets its own login role with a random password."
    )
    provider_display_name: str = "postgres-service"
    documentation_url: str = "https://www.postgresql.org/docs/15/"
    support_url: str = "https://www.postgresql.org/support/"
    image_url: str | None = None
    tags: list[str] = ["postgresql", "relational", "postgres"]
    plans: Annotated[list[PlanConfig], Field(min_length=1)] = [
        PlanConfig(
            id=DEFAULT_SMALL_PLAN_ID,
            name="small",
            description="A database on the shared cluster, at most 10 connections",
            connection_limit=10,
            bullets=["Shared cluster", "Up to 10 concurrent connections"],
        ),
        PlanConfig(
            id=DEFAULT_LARGE_PLAN_ID,
            name="large",
            description="A database on the shared cluster, at most 100 connections",
            connection_limit=100,
            bullets=["Shared cluster", "Up to 100 concurrent connections"],
        ),
    ]

    @model_validator(mode="after")
    def _plans_unique(self) -> ServiceConfig:
        for attr in ("id", "name"):
            seen: set[str] = set()
            for plan in self.plans:
                value = getattr(plan, attr)
                if value in seen:
                    raise ValueError(f"two plans share the {attr} {value!r}")
                seen.add(value)
        if any(plan.id == self.id for plan in self.plans):
            raise ValueError("a plan id must differ from the service id")
        return self


class BrokerConfig(_Strict):
    auth: Annotated[list[BrokerCredential], Field(min_length=1)]
    database: DatabaseConfig = DatabaseConfig()
    # Encrypts the binding passwords the broker keeps so it can answer a repeated
    # or fetched binding with the same credentials; never stored beside them.
    encryption_key: Annotated[SecretStr, Field(min_length=32)]
    listen: ListenConfig = ListenConfig()
    catalog: ServiceConfig = ServiceConfig()
    allowed_extensions: list[Annotated[str, Field(pattern=EXTENSION_NAME)]] = [
        "citext",
        "hstore",
        "pg_trgm",
        "pgcrypto",
        "uuid-ossp",
    ]
    maintenance_version: str = __version__
    lock_timeout_seconds: Annotated[float, Field(gt=0, le=300)] = 15.0
    max_request_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 1024 * 1024
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("maintenance_version")
    @classmethod
    def _semver(cls, value: str) -> str:
        if not re.fullmatch(r"\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?", value):
            raise ValueError("must be a semantic version such as 1.2.3")
        return value

    @model_validator(mode="after")
    def _usernames_unique(self) -> BrokerConfig:
        names = [cred.username for cred in self.auth]
        if len(names) != len(set(names)):
            raise ValueError("auth: each username may appear once")
        return self


# Environment variables and the field each one sets, for building the
# configuration of a pushed app and for naming the variable in errors.
ENV_FIELDS: dict[str, str] = {
    "PORT": "listen.port",
    "BROKER_LISTEN_HOST": "listen.host",
    "BROKER_USERNAME": "auth.0.username",
    "BROKER_PASSWORD": "auth.0.password",
    "BROKER_CREDENTIALS": "auth",
    "BROKER_ENCRYPTION_KEY": "encryption_key",
    "DATABASE_URL": "database",
    "PGHOST": "database.host",
    "PGPORT": "database.port",
    "PGUSER": "database.user",
    "PGPASSWORD": "database.password",
    "PGDATABASE": "database.admin_database",
    "PGSSLMODE": "database.sslmode",
    "PGSSLROOTCERT": "database.sslrootcert",
    "BROKER_STATE_DATABASE": "database.state_database",
    "BROKER_PUBLIC_HOSTS": "database.public_hosts",
    "BROKER_PUBLIC_PORT": "database.public_port",
    "BROKER_CATALOG_JSON": "catalog",
    "BROKER_ALLOWED_EXTENSIONS": "allowed_extensions",
    "BROKER_LOG_LEVEL": "log_level",
}


def _database_from_url(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ConfigError("DATABASE_URL: must start with postgres:// or postgresql://")
    out: dict[str, Any] = {}
    if parts.hostname:
        out["host"] = parts.hostname
    try:
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"DATABASE_URL: bad port ({exc})") from None
    if port:
        out["port"] = port
    if parts.username:
        out["user"] = unquote(parts.username)
    if parts.password:
        out["password"] = unquote(parts.password)
    if parts.path.strip("/"):
        out["admin_database"] = unquote(parts.path.strip("/"))
    for item in filter(None, parts.query.split("&")):
        key, _, value = item.partition("=")
        if key in ("sslmode", "sslrootcert"):
            out[key] = unquote(value)
    return out


def _json_env(env: Mapping[str, str], name: str) -> Any:
    try:
        return json.loads(env[name])
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{name}: not valid JSON ({exc.msg} at position {exc.pos})") from None


def config_dict_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """Build the configuration document from environment variables (a pushed app)."""
    doc: dict[str, Any] = {}
    listen: dict[str, Any] = {}
    if "PORT" in env:
        listen["port"] = env["PORT"]
    if "BROKER_LISTEN_HOST" in env:
        listen["host"] = env["BROKER_LISTEN_HOST"]
    if listen:
        doc["listen"] = listen

    auth: list[Any] = []
    if "BROKER_USERNAME" in env or "BROKER_PASSWORD" in env:
        auth.append({"username": env.get("BROKER_USERNAME", ""), "password": env.get("BROKER_PASSWORD", "")})
    if "BROKER_CREDENTIALS" in env:
        extra = _json_env(env, "BROKER_CREDENTIALS")
        if not isinstance(extra, list):
            raise ConfigError("BROKER_CREDENTIALS: must be a JSON list of {username, password}")
        auth.extend(extra)
    doc["auth"] = auth
    if "BROKER_ENCRYPTION_KEY" in env:
        doc["encryption_key"] = env["BROKER_ENCRYPTION_KEY"]

    database: dict[str, Any] = {}
    if env.get("DATABASE_URL"):
        database.update(_database_from_url(env["DATABASE_URL"]))
    else:
        for var, key in (
            ("PGHOST", "host"),
            ("PGPORT", "port"),
            ("PGUSER", "user"),
            ("PGPASSWORD", "password"),
            ("PGDATABASE", "admin_database"),
            ("PGSSLMODE", "sslmode"),
            ("PGSSLROOTCERT", "sslrootcert"),
        ):
            if var in env:
                database[key] = env[var]
    if "BROKER_STATE_DATABASE" in env:
        database["state_database"] = env["BROKER_STATE_DATABASE"]
    if env.get("BROKER_PUBLIC_HOSTS"):
        database["public_hosts"] = [h.strip() for h in env["BROKER_PUBLIC_HOSTS"].split(",")]
    if "BROKER_PUBLIC_PORT" in env:
        database["public_port"] = env["BROKER_PUBLIC_PORT"]
    if database:
        doc["database"] = database

    if "BROKER_CATALOG_JSON" in env:
        doc["catalog"] = _json_env(env, "BROKER_CATALOG_JSON")
    if "BROKER_ALLOWED_EXTENSIONS" in env:
        raw = env["BROKER_ALLOWED_EXTENSIONS"]
        doc["allowed_extensions"] = [e.strip() for e in raw.split(",") if e.strip()]
    if "BROKER_LOG_LEVEL" in env:
        doc["log_level"] = env["BROKER_LOG_LEVEL"].upper()
    return doc


def _describe(exc: ValidationError, env_source: bool) -> str:
    reverse = {field: var for var, field in ENV_FIELDS.items()}
    lines = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown setting (check the spelling)"
        hint = ""
        if env_source:
            for candidate in (path, path.rsplit(".", 1)[0], path.split(".", 1)[0]):
                if candidate in reverse:
                    hint = f" (from {reverse[candidate]})"
                    break
        lines.append(f"{path}: {msg}{hint}")
    return "invalid broker configuration:\n  " + "\n  ".join(lines)


def parse_config(doc: Any, *, env_source: bool = False) -> BrokerConfig:
    if not isinstance(doc, dict):
        raise ConfigError("invalid broker configuration: the document must be a mapping")
    try:
        return BrokerConfig.model_validate(doc)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, env_source)) from None


def read_yaml_file(path: str | Path, label: str = "configuration file") -> Any:
    """The YAML document in `path`, or a `ConfigError` naming `label` and the path.

    A YAML error is reported by position only: the parser's message quotes the
    offending line, which may hold a password.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {label} {path}: {exc.strerror}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{label} {path} is not valid YAML{where}") from None


def load_config(path: str | Path | None, env: Mapping[str, str]) -> BrokerConfig:
    """Load from `path` when given (or ``BROKER_CONFIG``), else from environment variables."""
    path = path or env.get("BROKER_CONFIG")
    if path:
        return parse_config(read_yaml_file(path))
    return parse_config(config_dict_from_env(env), env_source=True)
