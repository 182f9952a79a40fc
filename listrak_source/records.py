"""Plain records that cross module boundaries; no I/O, no third-party imports.

Contacts and pages come from Listrak, changes and stored rows pass between the diff and
the state, pending rows go to Segment, and a run's outcome goes to the database, the
report and the metrics. Each is defined here once, so no two layers import one another
just to share a shape.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, NamedTuple


class RunKind(enum.StrEnum):
    """What a run was asked to do; stored in `runs.kind`."""

    SYNC = "sync"
    DRY_RUN = "dry-run"
    BACKFILL = "backfill"
    BASELINE = "baseline"

    @property
    def sees_whole_list(self) -> bool:
        """Backfill and baseline act on every subscriber, so they always scan fully."""
        return self in (RunKind.BACKFILL, RunKind.BASELINE)


class RunStatus(enum.StrEnum):
    """How a run ended; stored in `runs.status`, shown by status, labelled in metrics."""

    RUNNING = "running"
    OK = "ok"
    PARTIAL = "partial"
    HELD = "held"
    STOPPED = "stopped"
    FAILED = "failed"
    SKIPPED = "skipped"


# A run that finished its job, though maybe with rows still to deliver.
SUCCESS_STATUSES = frozenset({RunStatus.OK, RunStatus.PARTIAL})
# A run whose scan completed: what makes a list not yet due for a fleet of daemons (a held
# run completed its scan too; running it again sooner would only hold it again).
DID_ITS_JOB = SUCCESS_STATUSES | {RunStatus.HELD}


class Contact(NamedTuple):
    """One contact as a list scan returned it, already validated.

    A NamedTuple rather than a frozen dataclass: a million of these are built per full
    scan, and a frozen dataclass costs several times as much to construct.
    """

    email: str
    subscribed: bool
    fields: Mapping[int, str] = MappingProxyType({})
    subscribe_date: datetime | None = None
    resubscribe_date: datetime | None = None
    unsubscribe_date: datetime | None = None
    unsubscribe_method: str | None = None
    # The digest of the bytes Listrak sent for this contact, when they were split apart.
    digest: int | None = None

    @property
    def key(self) -> str:
        """State is keyed by the lower-cased address so case edits are not new people."""
        return self.email.lower()


@dataclass(frozen=True, slots=True)
class Reject:
    """A contact the scan could not use, and why: stored and shown, never fatal."""

    reason: str
    email: str | None = None
    raw: str = ""


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a scan: what parsed, what did not, and the cursor that follows."""

    contacts: list[Contact]
    rejects: list[Reject]
    next_cursor: str | None


class Pieces(NamedTuple):
    """A page's contacts as sent, not decoded: `head` + part + `}` is each one's JSON."""

    head: bytes
    parts: list[bytes]
    # The page without its contacts (`"data":[]`): its status and cursor.
    envelope: bytes


@dataclass(slots=True)
class RawPage:
    """One page of a scan as Listrak sent it: its contacts' JSON, not yet checked.

    The reader asks for the next page as soon as it has this one's cursor; checking the
    contacts is left to the consumer, so Listrak's time and the worker's overlap. A page
    whose contacts split cleanly holds them as `pieces` (with `data` empty, and the body as
    sent in `content`): each one's digest can then recognize an unchanged contact without
    decoding it. `digests` are the pieces', once counted.
    """

    data: list[Any]
    next_cursor: str | None
    pieces: Pieces | None = None
    content: bytes = b""
    digests: list[int] | None = None
    # The subscription state its scan asked for, which a contact that names none is in
    # (see contacts.parse_contact).
    state: bool = True

    @property
    def size(self) -> int:
        """How many contacts the page holds."""
        return len(self.pieces.parts) if self.pieces is not None else len(self.data)

    def release(self) -> None:
        """Let the page's JSON go: it is several times the size of what it becomes."""
        self.data = []
        self.pieces = None
        self.content = b""
        self.digests = None


@dataclass(frozen=True, slots=True)
class ScanSpec:
    """One pass over a list: which state, and from which Listrak date."""

    subscribed: bool = True
    start_date: datetime | None = None  # naive, in Listrak's own clock
    use_original_subscribe_date: bool | None = None
    # The list has no high-water mark to keep (dropped, or never set): a full pass then
    # decodes its pages, where it would recognize them, until one gives a date that may
    # set the mark (its first two at least).
    learns_mark: bool = False

    @property
    def full(self) -> bool:
        """A full scan sees every subscriber, so only it may sweep."""
        return self.subscribed and self.start_date is None


@dataclass(frozen=True, slots=True)
class ListState:
    """What the worker remembers about a list between runs."""

    last_full_scan_at: datetime | None = None  # our clock, UTC
    high_water_mark: datetime | None = None  # Listrak's clock, naive
    last_full_run: int | None = None  # the run of the last complete full scan


class PageKeys(NamedTuple):
    """A page's contact keys by state: only subscribed contacts count as seen by a scan.

    `marks`, beside `subscribed`: what each subscribed contact's stored row holds when it
    is unchanged (see `subscription_mark`); None for an unreadable contact, and no marks at
    all when the caller gives none. `user_ids`: the marks carry the list's userId.
    """

    subscribed: list[str]
    unsubscribed: list[str]
    marks: list[str | None] | None = None
    user_ids: bool = False
    # Each key's digest as its first contact in the page carries it (see Contact.digest);
    # None for one that is not a subscription.
    digests: Mapping[str, int | None] = MappingProxyType({})

    @classmethod
    def of(
        cls,
        contacts: Sequence[Contact],
        on_list: Sequence[Reject] = (),
        *,
        user_id_field: int | None = None,
    ) -> PageKeys:
        """Split a page's contacts' keys by their state.

        `on_list` are rejects a Subscribed scan returned: unreadable, but on the list, so
        they count as seen and no sweep removes them.
        """
        subscribed = [c for c in contacts if c.subscribed]
        seen = [c.key for c in subscribed]
        marks: list[str | None] = [
            subscription_mark(c.key, user_id_of(c, user_id_field)) for c in subscribed
        ]
        unreadable = [r.email.lower() for r in on_list if r.email is not None]
        # Reversed, so the first of a key's contacts is the one kept.
        digests = {c.key: c.digest if c.subscribed else None for c in reversed(contacts)}
        return cls(
            seen + unreadable,
            [c.key for c in contacts if not c.subscribed],
            marks + [None] * len(unreadable),
            user_id_field is not None,
            digests,
        )


def subscription_mark(key: str, user_id: str | None) -> str:
    """A subscribed contact as its stored row holds it when nothing changed: the key, and
    the userId when the list has one (no userId and an empty one differ)."""
    return f"{key}\0{user_id}" if user_id is not None else f"{key}\1"


def user_id_of(contact: Contact, field: int | None) -> str | None:
    """The contact's userId: the value of the list's user-id profile field, if it has one."""
    return contact.fields.get(field) if field is not None else None


class Kind(enum.StrEnum):
    """Why a row's desired state changed; also the metric label."""

    SUBSCRIBED = "subscribed"
    UNSUBSCRIBED = "unsubscribed"
    USER_ID = "user_id"


class Stored(NamedTuple):
    """What the state table holds for one (list, contact) before this page.

    NamedTuples, like Contact: a first sync builds a million Changes, a re-sync a
    million Stored rows, and a frozen dataclass costs several times as much to build.
    """

    desired_subscribed: bool
    desired_user_id: str | None
    last_seen_run: int | None = None
    # What Segment last accepted: a change back to it has nothing to say, unless a message
    # posted since may have reached Segment (in_doubt).
    sent_subscribed: bool | None = None
    sent_user_id: str | None = None
    in_doubt: bool = False
    # The spelling of the address the row's messages carry: Segment's anonymousId.
    email: str | None = None
    # The digest of the contact's bytes that set the desired values, if stored.
    digest: int | None = None


class Change(NamedTuple):
    """A new desired state for one contact, and the message id it goes out under.

    `message_id` is None for a change back to exactly what Segment last accepted while no
    message of the row may have reached Segment since: the pending message is dropped and
    nothing is sent. `email` is the spelling Segment got first, whatever Listrak shows now.
    """

    key: str
    email: str
    subscribed: bool
    user_id: str | None
    kind: Kind
    message_id: str | None
    is_new: bool = False
    # The contact's digest, stored with a subscription it sets (see Contact.digest).
    digest: int | None = None


@dataclass(slots=True)
class PageDiff:
    """What one page changes: rows to write, and contacts refused."""

    changes: list[Change] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)


class Pending(NamedTuple):
    """One row whose desired state Segment has not accepted yet.

    A NamedTuple, like Change: a first sync hands a million of them to delivery.
    """

    list_id: int
    key: str
    email: str
    subscribed: bool
    user_id: str | None
    message_id: str
    detected_at: datetime


@dataclass(slots=True)
class Delivery:
    """What Segment answered for one chunk of pending rows, by message id.

    `accepted` rows count as sent; `rejected` ones were refused on their own (a batch split
    until the message at fault stood alone) and spend an attempt; when `outage` is set the
    endpoint failed, and every row not named here is simply still due.
    """

    accepted: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)
    outage: str | None = None
    requests: int = 0


# Why a delivery ended early when the run was asked to stop during a wait.
STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long a failed row waits, and after how many attempts it is dead."""

    max_attempts: int
    base: timedelta
    cap: timedelta

    def delay(self, attempts: int) -> timedelta:
        """Exponential in the attempts already made, capped."""
        delay: timedelta = self.base * (2 ** max(attempts - 1, 0))
        return min(delay, self.cap)


@dataclass(frozen=True, slots=True)
class Waiting:
    """Pending rows of a list that share a reason to wait, and when the first is due again."""

    reason: str  # "not yet sent", "outage: …", "rate limited: …", "stopped", "rejected: …"
    rows: int
    next_attempt_at: datetime | None  # None: due on the very next run

    def describe(self) -> str:
        """One line for a run's summary and `status`."""
        when = self.next_attempt_at.isoformat(timespec="seconds") if self.next_attempt_at else None
        return f"{self.rows} {self.reason}" + (f" (next attempt {when})" if when else "")


COUNT_FIELDS = (
    "scanned",
    "subscribed",
    "unsubscribed",
    "user_id_changed",
    "rejected",
    "delivered",
    "failed",
)


@dataclass
class RunResult:
    """The outcome of one run, as stored in `runs` and shown by status and metrics."""

    list_id: int
    kind: RunKind
    started_at: datetime
    run_id: int = 0
    status: RunStatus = RunStatus.RUNNING
    finished_at: datetime | None = None
    error: str | None = None
    exit_code: int = 0
    scanned: int = 0
    subscribed: int = 0
    unsubscribed: int = 0
    user_id_changed: int = 0
    rejected: int = 0
    delivered: int = 0
    failed: int = 0
    full_scan: bool = True
    dead: int = 0
    pending: int = 0
    # Set when delivery stopped because Segment could not be reached (or the run stopped).
    outage: str | None = None
    waiting: list[Waiting] = field(default_factory=list)
    # What Listrak sent that the run worked around, for the operator to fix there.
    note: str | None = None
    future_dated: int = 0
    # Subscribers a full scan missed that Listrak did not report gone: kept until the next
    # full scan misses them too, so Segment may hold them a while after they left.
    unconfirmed: int = 0

    def add_note(self, text: str) -> None:
        """Record something the run worked around; several are joined on one line."""
        self.note = f"{self.note}; {text}" if self.note else text

    def counts(self) -> dict[str, int]:
        """The counters stored with the run."""
        return {name: getattr(self, name) for name in COUNT_FIELDS}

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form for status --json and logs."""
        out = asdict(self)
        del out["exit_code"]
        out["kind"], out["status"] = str(self.kind), str(self.status)
        out["waiting"] = [
            {"reason": w.reason, "rows": w.rows, "next_attempt_at": _iso(w.next_attempt_at)}
            for w in self.waiting
        ]
        for key in ("started_at", "finished_at"):
            out[key] = _iso(out[key])
        return out


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
