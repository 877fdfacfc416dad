"""OSB error responses: a status code and a body of ``{"error": ..., "description": ...}``."""

from __future__ import annotations

from typing import Any


class OsbError(Exception):
    """An error the broker answers with; `error` is the OSB error code (CamelCase, one word)."""

    def __init__(
        self,
        status: int,
        error: str,
        description: str,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description
        self.headers = headers or {}
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "description": self.description, **self.extra}


def bad_request(description: str) -> OsbError:
    return OsbError(400, "BadRequest", description)


def conflict(description: str) -> OsbError:
    return OsbError(409, "Conflict", description)


def concurrency_error(description: str) -> OsbError:
    return OsbError(422, "ConcurrencyError", description)


def maintenance_info_conflict(description: str) -> OsbError:
    return OsbError(422, "MaintenanceInfoConflict", description)
