"""Plain records of the audience direction that cross from the state to a push and to status."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import NamedTuple

# Check box and radio button values Listrak reads as selected; anything else (including a
# blank or a missing value) is not selected. Compared case-insensitively.
SELECTED = frozenset({"on", "true", "1", "yes", "checked"})


def is_selected(value: str | None) -> bool:
    """What a profile-field value read back from Listrak says about its box."""
    return value is not None and value.strip().lower() in SELECTED


def box_value(member: bool) -> str:
    """What the bulk route is sent: `on` selects a box, `off` clears it."""
    return "on" if member else "off"


@dataclass(frozen=True, slots=True)
class CommitResult:
    """What one committed request did: how many items, copies, stale events and new values."""

    received: int = 0
    duplicates: int = 0
    superseded: int = 0
    recorded: int = 0
    ignored: Mapping[str, int] = field(default_factory=dict)


class PendingValue(NamedTuple):
    """A profile-field value to send: for whom (Listrak's spelling of the email), which, what."""

    email_key: str
    email: str
    field_id: int
    desired: bool
    attempts: int
    # The box is checked in Listrak as far as is known (or may be, after a send whose answer
    # was lost): an `off` for it is an uncheck the mass-flip guard counts.
    checked: bool = False


class Answered(NamedTuple):
    """One value Listrak settled: accepted (error None) or refused on its own."""

    field_id: int
    email_key: str
    value: bool
    attempts: int
    error: str | None = None


class Backlog(NamedTuple):
    """A list's pending values: to send (due or backing off), held for non-subscribers, dead."""

    pending: int = 0
    held: int = 0
    dead: int = 0


class PushStatus(enum.StrEnum):
    """How a push of one list ended; stored in `audience_pushes.status`."""

    RUNNING = "running"
    OK = "ok"
    PARTIAL = "partial"
    HELD = "held"
    STOPPED = "stopped"
    FAILED = "failed"
    SKIPPED = "skipped"  # another process was pushing the list; never stored


@dataclass
class PushResult:
    """The outcome of one push of one list, for its record, the CLI and the metrics."""

    list_id: int
    started_at: datetime
    push_id: int = 0
    status: PushStatus = PushStatus.RUNNING
    finished_at: datetime | None = None
    error: str | None = None
    exit_code: int = 0
    contacts: int = 0
    accepted: int = 0
    rejected: int = 0
    requests: int = 0
    held_fields: list[int] = field(default_factory=list)
    backlog: Backlog = field(default_factory=Backlog)
    outage: str | None = None

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form for `push --json`-like output and logs."""
        out = asdict(self)
        del out["exit_code"]
        out["status"] = str(self.status)
        out["backlog"] = self.backlog._asdict()
        for key in ("started_at", "finished_at"):
            moment = getattr(self, key)
            out[key] = moment.isoformat() if moment is not None else None
        return out
