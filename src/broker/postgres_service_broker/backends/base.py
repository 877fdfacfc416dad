"""The interface between the OSB layer and a service backend.

Requests arrive here already validated for shape (types, required fields,
known plans, parameter schemas); a backend decides what exists, what
conflicts, and what to build. Its errors name what went wrong in words an app
developer can act on; the OSB layer maps them onto status codes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol


class BackendError(Exception):
    """Base of the errors a backend raises; the message is user-facing."""


class InstanceNotFound(BackendError):
    pass


class BindingNotFound(BackendError):
    pass


class Conflict(BackendError):
    """The resource exists (or is being made) with different attributes."""


class Busy(BackendError):
    """Another operation holds the resource; the platform should retry later."""


class InvalidRequest(BackendError):
    """The request cannot be carried out as asked (a bad reference or value)."""


class Unprocessable(BackendError):
    """The request is well-formed but the instance's state does not allow it."""


class BackendUnavailable(BackendError):
    """The system the backend manages cannot be reached right now."""


@dataclass(frozen=True)
class ProvisionRequest:
    instance_id: str
    service_id: str
    plan_id: str
    organization_guid: str
    space_guid: str
    parameters: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    maintenance_version: str | None = None


@dataclass(frozen=True)
class UpdateRequest:
    instance_id: str
    service_id: str
    plan_id: str | None = None
    parameters: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    maintenance_version: str | None = None


@dataclass(frozen=True)
class BindRequest:
    instance_id: str
    binding_id: str
    service_id: str | None
    plan_id: str | None
    parameters: dict[str, Any] | None = None
    app_guid: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    predecessor_binding_id: str | None = None


@dataclass(frozen=True)
class ProvisionResult:
    created: bool


@dataclass(frozen=True)
class BindResult:
    created: bool
    credentials: dict[str, Any]
    endpoints: list[dict[str, Any]]


@dataclass(frozen=True)
class InstanceView:
    service_id: str
    plan_id: str
    parameters: dict[str, Any]
    maintenance_version: str | None


@dataclass(frozen=True)
class BindingView:
    credentials: dict[str, Any]
    endpoints: list[dict[str, Any]]
    parameters: dict[str, Any]


@dataclass(frozen=True)
class LastOperation:
    state: Literal["in progress", "succeeded", "failed"]
    description: str | None = None


class ServiceBackend(Protocol):
    def provision(self, request: ProvisionRequest) -> ProvisionResult: ...

    def update(self, request: UpdateRequest) -> None: ...

    def deprovision(self, instance_id: str) -> None: ...

    def fetch_instance(self, instance_id: str) -> InstanceView: ...

    def instance_last_operation(self, instance_id: str) -> LastOperation: ...

    def bind(self, request: BindRequest) -> BindResult: ...

    def unbind(self, instance_id: str, binding_id: str) -> None: ...

    def fetch_binding(self, instance_id: str, binding_id: str) -> BindingView: ...

    def binding_last_operation(self, instance_id: str, binding_id: str) -> LastOperation: ...

    def ping(self) -> None: ...
