"""Configuration files of the errands: register-broker, deregister-broker and smoke-tests.

Each errand reads one YAML file rendered by its BOSH job. Like the broker's
own configuration, it is validated before anything is contacted, unknown keys
are errors (a typo must not fall back to a default), and every message names
the field to fix (``uaa.client_secret``). Secrets are `SecretStr`, so they
never show in a message or a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)

from postgres_service_broker.config import ConfigError, read_yaml_file

NonEmpty = Annotated[str, Field(min_length=1, max_length=1024)]
Seconds = Annotated[float, Field(gt=0, le=86400)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _http_url(value: str, *, root_only: bool) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        # Credentials in a URL end up in logs and process lists; they have their own fields.
        raise ValueError("must not contain a user name or password; use the username/password fields")
    if parts.query or parts.fragment:
        raise ValueError("must not have a query string or fragment")
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        raise ValueError("has an invalid port") from None
    if root_only and parts.path not in ("", "/"):
        raise ValueError("must be the API's root URL (no path), e.g. https://api.sys.example.com")
    return value.strip().rstrip("/")


def _no_commas(value: str) -> str:
    # The Cloud Controller's `names` filters split on commas.
    if "," in value:
        raise ValueError("must not contain a comma")
    return value


class _Tls(_Strict):
    # For the API endpoints (Cloud Controller and UAA, or the broker).
    skip_ssl_validation: StrictBool = False
    ca_cert: str | None = None


# -- register-broker / deregister-broker -------------------------------------------


class CloudControllerSettings(_Strict):
    url: str

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_url(value, root_only=True)


class UaaSettings(_Strict):
    # Discovered from the Cloud Controller's root document (links.uaa) when not given.
    url: str | None = None
    grant_type: Literal["client_credentials", "password"] = "client_credentials"
    # Required with client_credentials; the password grant defaults to the cf CLI's client.
    client_id: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    client_secret: SecretStr | None = None
    username: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    password: SecretStr | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value, root_only=False)

    @model_validator(mode="after")
    def _grant_fields(self) -> UaaSettings:
        if self.grant_type == "client_credentials":
            missing = [
                name
                for name, value in (("client_id", self.client_id), ("client_secret", self.client_secret))
                if value is None or (isinstance(value, SecretStr) and not value.get_secret_value())
            ]
            if missing:
                raise ValueError(f"{' and '.join(missing)} required with grant_type client_credentials")
            if self.username is not None or self.password is not None:
                raise ValueError("username/password are only used with grant_type password")
        else:
            missing = [n for n, v in (("username", self.username), ("password", self.password)) if v is None]
            if missing:
                raise ValueError(f"{' and '.join(missing)} required with grant_type password")
        return self

    @property
    def effective_client_id(self) -> str:
        return self.client_id or "cf"

    @property
    def effective_client_secret(self) -> str:
        return self.client_secret.get_secret_value() if self.client_secret else ""


class BrokerRegistration(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=255)]
    # Needed to register; deregistering needs only the name.
    url: str | None = None
    username: NonEmpty | None = None
    password: SecretStr | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _no_commas(value)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value, root_only=False)


class VisibilitySettings(_Strict):
    # public: every org; organizations: only those listed; admin: nobody but admins.
    access: Literal["public", "organizations", "admin"] = "public"
    organizations: list[Annotated[str, Field(min_length=1, max_length=255)]] = []
    # Plan names to apply this to; empty means every plan of the broker.
    plans: list[Annotated[str, Field(min_length=1, max_length=255)]] = []

    @field_validator("organizations")
    @classmethod
    def _orgs(cls, value: list[str]) -> list[str]:
        for name in value:
            _no_commas(name)
        return value

    @model_validator(mode="after")
    def _orgs_match_access(self) -> VisibilitySettings:
        if self.access == "organizations" and not self.organizations:
            raise ValueError("organizations must list at least one organization with access: organizations")
        if self.access != "organizations" and self.organizations:
            raise ValueError(f"organizations are only used with access: organizations, not {self.access}")
        return self


class RegistrarConfig(_Tls):
    cloud_controller: CloudControllerSettings
    uaa: UaaSettings
    broker: BrokerRegistration
    visibility: VisibilitySettings = VisibilitySettings()
    # deregister only: remove the broker's offerings from CF even with service
    # instances left (their data stays on the cluster). Never on by default.
    purge: StrictBool = False
    request_timeout_seconds: Seconds = 30.0
    job_timeout_seconds: Seconds = 600.0
    poll_interval_seconds: Seconds = 2.0


def require_registration_fields(config: RegistrarConfig) -> tuple[str, str, str]:
    """(url, username, password) of the broker, which registering needs and deregistering does not."""
    broker = config.broker
    missing = [f"broker.{n}" for n in ("url", "username", "password") if getattr(broker, n) is None]
    if missing:
        raise ConfigError(f"invalid configuration: {', '.join(missing)} required to register the broker")
    assert broker.url is not None
    assert broker.username is not None
    assert broker.password is not None
    return broker.url, broker.username, broker.password.get_secret_value()


# -- smoke-tests -----------------------------------------------------------------------


class SmokeTestBroker(_Strict):
    url: str
    username: NonEmpty
    password: SecretStr

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_url(value, root_only=False)


class SmokeTestConfig(_Tls):
    broker: SmokeTestBroker
    # Names in the broker's catalog; by default its only offering and that offering's first plan.
    service_offering: Annotated[str, Field(min_length=1)] | None = None
    plan: Annotated[str, Field(min_length=1)] | None = None
    instance_parameters: dict[str, Any] = {}
    request_timeout_seconds: Seconds = 60.0
    # How long an asynchronous provision/bind/unbind/deprovision may take.
    operation_timeout_seconds: Seconds = 900.0
    poll_interval_seconds: Seconds = 2.0
    database_connect_timeout_seconds: Annotated[int, Field(ge=1, le=600)] = 10


# -- loading -----------------------------------------------------------------------------

M = TypeVar("M", bound=BaseModel)


def _describe(exc: ValidationError, what: str) -> str:
    lines = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown setting (check the spelling)"
        elif err["type"] == "missing":
            msg = "required"
        msg = msg.removeprefix("Value error, ")
        lines.append(f"{path}: {msg}")
    return f"invalid {what} configuration:\n  " + "\n  ".join(lines)


def parse_errand_config(doc: Any, model: type[M], what: str) -> M:
    if not isinstance(doc, dict):
        raise ConfigError(f"invalid {what} configuration: the document must be a mapping")
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, what)) from None


def load_errand_config(path: str | Path, model: type[M], what: str) -> M:
    return parse_errand_config(read_yaml_file(path, f"the {what} configuration file"), model, what)
