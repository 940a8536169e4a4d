"""Domain errors: raised below the HTTP layer, mapped to problem responses in `src/api/problems.py`."""

from __future__ import annotations


class DomainError(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFoundError(DomainError):
    """The resource is not in the caller's collection (whether it exists elsewhere is never said)."""


class InvalidInputError(DomainError):
    """Input that passed schema validation but cannot be used, e.g. a tampered page cursor."""

    def __init__(self, detail: str, *, loc: tuple[str, ...], error_type: str) -> None:
        super().__init__(detail)
        self.loc = loc
        self.error_type = error_type


class PreconditionFailedError(DomainError):
    """The client's precondition (e.g. the version it last saw) no longer holds; nothing was changed."""


class GoneError(DomainError):
    """What the client holds (a sync token) is too old to be answered; it must start again."""


class ConflictError(DomainError):
    """The request conflicts with one still being processed; the client may retry shortly."""


class AuthenticationError(DomainError):
    """No credentials, or credentials that do not verify."""


class MissingCredentialsError(AuthenticationError):
    """No credentials were sent at all."""


class PermissionDeniedError(DomainError):
    """Verified credentials that do not grant access to the resource."""


class ServiceUnavailableError(DomainError):
    """A dependency (the database, the key server) cannot answer right now; the client may retry."""
