"""Logging: text on a terminal, JSON lines elsewhere, each line tagged with its list and run."""

from __future__ import annotations

import contextvars
import functools
import json
import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import IO, Any, Literal

LogFormat = Literal["text", "json", "auto"]
MASK = "***"
# A secret this short can be part of an ordinary word (a one-character secret "s" is in
# "Listrak"): it is masked only where it stands on its own, never inside a longer word.
# The receiver's secrets are refused under this length; Listrak's client secret and
# Segment's write key have no published minimum, so a short one must not mangle lines.
WHOLE_WORD_BELOW = 16
# Anything shaped like an address: an answer from Listrak or Segment may quote one, as
# it was written or percent-encoded as in a request's path.
_EMAIL = re.compile(r"[^\s@\"'<>(),;:]+(?:@|%40)[^\s@\"'<>(),;:]+")

# Context variables rather than thread-locals: each scheduler thread and each asyncio
# task sees only the list and run it is working on.
_list_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("list_id", default=None)
_run_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("run_id", default=None)

# Libraries whose INFO lines are noise in a worker's log: the first always (httpcore's
# DEBUG is a firehose), the rest only unless the operator asked for DEBUG.
_ALWAYS_QUIET = ("httpx", "httpcore")
# Alembic logs its dialect on every connection it inspects, which is every command.
_QUIET_UNLESS_DEBUG = (
    "segment",
    "apscheduler.executors",
    "apscheduler.scheduler",  # job bookkeeping lines carry no list or run id
    "alembic.runtime.migration",
    "alembic.runtime.plugins",  # newer Alembic lists every plugin it sets up, per command
    "uvicorn.error",  # the receiver's start and stop; the worker logs its own line for each
)

# Marks the handlers this module installed, so a second configure_logging replaces them
# without removing handlers others attached (pytest's caplog, for one).
_OURS = "_listrak_source_handler"


@contextmanager
def log_context(list_id: int | None = None, run_id: int | None = None) -> Iterator[None]:
    """Tag every log line inside the block; an argument left as None keeps the outer value."""
    tokens: list[tuple[contextvars.ContextVar[int | None], contextvars.Token[int | None]]] = []
    for var, value in ((_list_id, list_id), (_run_id, run_id)):
        if value is not None:
            tokens.append((var, var.set(value)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def current_context() -> dict[str, int]:
    """The list and run ids in force here, leaving out those not set."""
    found = {"list_id": _list_id.get(), "run_id": _run_id.get()}
    return {key: value for key, value in found.items() if value is not None}


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each secret with ***."""
    # Longest first, so a secret containing another is masked whole.
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        if len(secret) < WHOLE_WORD_BELOW:
            text = _standalone(secret).sub(MASK, text)
        else:
            text = text.replace(secret, MASK)
    return text


@functools.lru_cache(maxsize=64)
def _standalone(secret: str) -> re.Pattern[str]:
    """The secret where it is not the middle of a longer word."""
    before = r"(?<!\w)" if re.match(r"\w", secret[0]) else ""
    after = r"(?!\w)" if re.match(r"\w", secret[-1]) else ""
    return re.compile(before + re.escape(secret) + after)


def hide_emails(text: str) -> str:
    """The text with every email-shaped word replaced, for errors kept, shown or logged."""
    return _EMAIL.sub("<email>", text)


class Throttle:
    """Lets each kind of line through once per interval; the next one that passes says how
    many were held back. A flood of refused connections is then a line a minute, not a
    full disk of the same line."""

    def __init__(self, interval: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._kinds: dict[str, tuple[float, int]] = {}

    def admit(self, kind: str) -> int | None:
        """None to leave this line out; else how many of its kind were left out before it."""
        now = self._clock()
        with self._lock:
            last = self._kinds.get(kind)
            if last is not None and now - last[0] < self._interval:
                self._kinds[kind] = (last[0], last[1] + 1)
                return None
            self._kinds[kind] = (now, 0)
        return 0 if last is None else last[1]


def held_back(count: int) -> str:
    """What a throttled line adds to say how many like it were left out."""
    return f" ({count:,} more like this since the last such line)" if count else ""


class ThrottleFilter(logging.Filter):
    """A Throttle on a logger's records, each message template being its own kind."""

    def __init__(self, throttle: Throttle) -> None:
        super().__init__()
        self._throttle = throttle

    def filter(self, record: logging.LogRecord) -> bool:
        """Drop the record within its kind's interval; else let it say what was dropped."""
        count = self._throttle.admit(f"{record.name}:{record.msg}")
        if count is None:
            return False
        if count:
            record.msg = record.getMessage() + held_back(count)
            record.args = None
        return True


class ContextFilter(logging.Filter):
    """Copies the list and run ids onto each record, unless the call passed its own."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Stamp the context while still on the thread that logged."""
        for key, value in current_context().items():
            if getattr(record, key, None) is None:
                setattr(record, key, value)
        return True


class SecretFilter(logging.Filter):
    """Masks configured secret values in a record's message, exception and stack text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets: set[str] = {s for s in secrets if s}

    def add(self, secret: str) -> None:
        """Mask one more value, such as an access token obtained at run time."""
        if secret:
            self._secrets.add(secret)

    def filter(self, record: logging.LogRecord) -> bool:
        """Render the message now and mask it, so formatters only ever see the safe text."""
        if not self._secrets:
            return True
        record.msg = redact(record.getMessage(), self._secrets)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self._secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self._secrets)
        return True


def _timestamp(record: logging.LogRecord) -> str:
    stamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


class TextFormatter(logging.Formatter):
    """One readable line: time, level, logger, [list N run M], message."""

    def format(self, record: logging.LogRecord) -> str:
        """Prefix the standard rendering with the context a reader needs."""
        tags = [f"{name} {value}" for name, value in _record_context(record)]
        context = f" [{' '.join(tags)}]" if tags else ""
        head = f"{_timestamp(record)} {record.levelname:<7} {record.name}{context}: "
        return head + super().format(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for journald, Loki, CloudWatch and friends."""

    def format(self, record: logging.LogRecord) -> str:
        """Serialise the fields a log pipeline indexes on."""
        entry: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name, value in _record_context(record):
            entry[f"{name}_id"] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False, default=str)


def _record_context(record: logging.LogRecord) -> list[tuple[str, object]]:
    found = [("list", getattr(record, "list_id", None)), ("run", getattr(record, "run_id", None))]
    return [(name, value) for name, value in found if value is not None]


def resolve_format(fmt: LogFormat, stream: IO[str]) -> Literal["text", "json"]:
    """The format `auto` means on this stream: text on a terminal, JSON elsewhere."""
    if fmt != "auto":
        return fmt
    try:
        return "text" if stream.isatty() else "json"
    except (AttributeError, ValueError):  # a closed or file-less stream
        return "json"


def _level_number(level: str) -> int:
    number = logging.getLevelNamesMapping().get(level.upper())
    if number is None:
        raise ValueError(f"unknown log level {level!r}")
    return number


def _quiet_libraries(level: int) -> None:
    for name in _ALWAYS_QUIET:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    for name in _QUIET_UNLESS_DEBUG:
        quiet = level > logging.DEBUG
        logging.getLogger(name).setLevel(max(level, logging.WARNING) if quiet else logging.NOTSET)


def configure_logging(
    fmt: LogFormat = "auto",
    level: str = "INFO",
    stream: IO[str] | None = None,
    *,
    secrets: Iterable[str] = (),
) -> SecretFilter:
    """Install the worker's single root handler; returns its SecretFilter to add tokens later."""
    out = sys.stderr if stream is None else stream
    number = _level_number(level)
    handler = logging.StreamHandler(out)
    setattr(handler, _OURS, True)
    secret_filter = SecretFilter(secrets)
    handler.addFilter(ContextFilter())
    handler.addFilter(secret_filter)
    handler.setFormatter(JsonFormatter() if resolve_format(fmt, out) == "json" else TextFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(number)
    _quiet_libraries(number)
    return secret_filter
