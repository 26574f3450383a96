"""The one error model: services raise these, the API exception handler maps them to HTTP."""

from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    """A domain error a client can act on. `code` is stable and machine-readable."""

    status_code = 400
    default_code = "invalid"

    def __init__(
        self, message: str, *, code: str | None = None, extra: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.extra = extra or {}


class NotFound(ApplicationError):
    status_code = 404
    default_code = "not_found"


class PermissionDenied(ApplicationError):
    status_code = 403
    default_code = "permission_denied"


class Conflict(ApplicationError):
    status_code = 409
    default_code = "conflict"
