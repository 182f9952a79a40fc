"""Errors a user can act on: each renders as one line, and carries the exit status."""

from __future__ import annotations

import traceback

# Exit statuses: 1 = the run did not fully succeed (retry later), 2 = the
# configuration or environment is wrong (a person must fix something).
EXIT_FAILED = 1
EXIT_CONFIG = 2
_PACKAGE = "listrak_source"


class ListrakSourceError(Exception):
    """Base of every error the CLI prints as one line instead of a traceback."""

    exit_code = EXIT_FAILED


class ConfigError(ListrakSourceError):
    """The configuration, a secret, or the database URL is wrong."""

    exit_code = EXIT_CONFIG


class TraitRenamedError(ConfigError):
    """The config names another trait than the list's messages carry: a rename to confirm."""


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


class ReportingAreaError(ListrakError):
    """The integration may not read email activity: its Reporting area is not enabled."""

    exit_code = EXIT_CONFIG


class ListrakUnavailableError(ListrakError):
    """Retries ran out on 429s, 5xx answers or connection errors."""


class ListrakProtocolError(ListrakError):
    """Listrak answered something we cannot trust, such as a cursor that repeats."""


class ListSkippedError(ListrakSourceError):
    """A list's run did not start because another worker has the list, or just had it."""


class ListBusyError(ListSkippedError):
    """Another worker holds this list's lock."""


class RanRecentlyError(ListSkippedError):
    """Another worker started this list within its schedule's period: nothing to do yet."""


class LockLostError(ListrakSourceError):
    """The list's lock went away mid-run (its database connection died); the run stops."""


class StopRequested(ListrakSourceError):
    """A stop signal arrived while a run waited on Listrak; the wait is abandoned."""


def describe_error(exc: BaseException) -> str:
    """One line for any error, fit to store, log and print.

    Our own errors read as written; a database error is its driver's first line; anything
    else is its type and where it was raised. Never SQL, bound parameters or an exception's
    arguments, which may quote contacts' emails.
    """
    if isinstance(exc, ListrakSourceError):
        return _first_line(str(exc)) or type(exc).__name__
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    driver = getattr(exc, "orig", None)
    if isinstance(driver, BaseException) and hasattr(exc, "statement"):
        # SQLAlchemy's wrapper of a driver error: its own text carries the SQL and parameters.
        return f"database error: {_first_line(str(driver)) or type(driver).__name__}"
    return f"unexpected {type(exc).__name__}{_raised_at(exc)}"


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _raised_at(exc: BaseException) -> str:
    """ " at listrak_source/x.py:12": the deepest frame of ours, which is where to look."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if _PACKAGE in f.filename] or frames
    if not ours:
        return ""
    frame = ours[-1]
    path = frame.filename
    return f" at {path[path.rfind(_PACKAGE) :] if _PACKAGE in path else path}:{frame.lineno}"
