"""Domain errors: what went wrong, said without HTTP.

Services and queries raise these; the one handler in services/api/app.py turns each kind into its
status and the JSON error body `{"error": {"code", "message", "details"}}`.
"""

from __future__ import annotations


class DomainError(Exception):
    """Something the client can act on: a stable `code`, a sentence, and per-field `details`."""

    def __init__(self, code: str, message: str, details: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or []


class NotFound(DomainError):
    """No such thing in the caller's tenant. Say it the same way for another tenant's thing and a
    thing that does not exist, so nothing leaks."""

    def __init__(self, message: str) -> None:
        super().__init__("not_found", message)


class InvalidInput(DomainError):
    """A parameter the client got wrong: `field` names it, `reason` says what it must be."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__("invalid_request", f"{field} {reason}", [{"field": field, "reason": reason}])
        self.field = field
        self.reason = reason


class Conflict(DomainError):
    """The request contradicts data already stored; `code` names the kind of conflict."""

    def __init__(self, code: str, message: str, *, field: str, reason: str) -> None:
        super().__init__(code, message, [{"field": field, "reason": reason}])
