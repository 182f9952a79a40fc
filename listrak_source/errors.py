"""Errors a user can act on: each renders as one line, and carries the exit status."""

from __future__ import annotations

# Exit statuses: 1 = the run did not fully succeed (retry later), 2 = the
# configuration or environment is wrong (a person must fix something).
EXIT_FAILED = 1
EXIT_CONFIG = 2


class ListrakSourceError(Exception):
    """Base of every error the CLI prints as one line instead of a traceback."""

    exit_code = EXIT_FAILED


class ConfigError(ListrakSourceError):
    """The configuration, a secret, or the database URL is wrong."""

    exit_code = EXIT_CONFIG


class SchemaError(ListrakSourceError):
    """The database is at a schema this version does not know."""

    exit_code = EXIT_CONFIG


class ListrakError(ListrakSourceError):
    """Listrak answered with an error that retrying will not fix."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


class ListrakAuthError(ListrakError):
    """Credentials refused, or a renewed token still gets 401: a person must act."""

    exit_code = EXIT_CONFIG


class UnknownListError(ListrakError):
    """A configured list id does not exist for these credentials."""

    exit_code = EXIT_CONFIG


class BetaRouteError(ListrakError):
    """The integration may not use the Beta bulk profile-field route: Listrak must enable it."""

    exit_code = EXIT_CONFIG


class ListrakUnavailableError(ListrakError):
    """Retries ran out on 429s, 5xx answers or connection errors."""


class ListrakProtocolError(ListrakError):
    """Listrak answered something we cannot trust, such as a cursor that repeats."""


class LeaseHeldError(ListrakSourceError):
    """Another worker holds this list's lease."""


class LeaseLostError(ListrakSourceError):
    """Our lease expired and another worker took the list over mid-run."""
