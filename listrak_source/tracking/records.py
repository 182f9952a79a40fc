"""Plain records of the activity direction: Listrak's rows in, facts and stored events out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

SENT = "Email Sent"
OPENED = "Email Opened"
CLICKED = "Email Link Clicked"
BOUNCED = "Email Bounced"
SPAM = "Email Marked As Spam"
CONVERTED = "Email Converted"
UNSUBSCRIBED = "Unsubscribed"
# Spelled as Listrak's own Segment source documents them.
EVENT_NAMES = (SENT, OPENED, CLICKED, BOUNCED, SPAM, CONVERTED, UNSUBSCRIBED)
# Email Sent is one event per recipient of every broadcast: only on request.
DEFAULT_EVENTS = tuple(name for name in EVENT_NAMES if name != SENT)


class ActivityRow(NamedTuple):
    """One `MessageActivity` row: Listrak's cumulative summary of one (message, contact).

    Dates are kept as Listrak's raw naive strings: event ids are made from them, so they
    must not depend on how we read their zone.
    """

    email: str
    send_date: str | None = None
    activity_date: str | None = None
    open: bool = False
    click: bool = False
    bounce: bool = False
    abuse: bool = False
    unsubscribe: bool = False
    click_count: int = 0
    order_total: float = 0.0
    bounce_reason: str | None = None

    @property
    def key(self) -> str:
        """Activity is keyed by the lower-cased address, like the subscriber state."""
        return self.email.strip().lower()


class ActivityPage(NamedTuple):
    """One page of a message's activity: the rows kept, and how many the page held."""

    rows: list[ActivityRow]
    read: int


class Seen(NamedTuple):
    """What the ledger keeps of a row, merged over every read: flags only turn true and the
    order total only rises, so a stale read after a newer one changes nothing."""

    send_date: str | None = None
    opened: bool = False
    bounced: bool = False
    abused: bool = False
    order_total: float = 0.0
    click_count: int = 0


class Clicker(NamedTuple):
    """One `MessageLinkClicker` row of a link."""

    email: str
    click_date: str | None


class Link(NamedTuple):
    """One `MessageLink` of a message."""

    link_id: int
    url: str | None


@dataclass(frozen=True, slots=True)
class MessageInfo:
    """A sent message, with what every one of its events carries."""

    message_id: int
    send_date: str | None
    subject: str | None = None
    campaign_id: int | None = None
    campaign_name: str | None = None
    ga_campaign_name: str | None = None
    status: str | None = None
    is_test: bool = False


class Fact(NamedTuple):
    """One event worth sending: its name, its once-per key from Listrak's raw facts, and when."""

    event: str
    key: str
    email: str
    at: datetime
    extra: Mapping[str, Any] = {}


@dataclass(frozen=True, slots=True)
class TrackEvent:
    """An event the ledger holds, ready to be built into a `track` call."""

    message_id: str
    event: str
    email: str
    timestamp: datetime
    properties: Mapping[str, Any] = field(default_factory=dict)


class NewEvent(NamedTuple):
    """A fact made an event: its messageId, its key, and what the track call carries."""

    message_id: str
    fact: str
    event: str
    email: str
    at: datetime
    properties: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message the ledger knows: its properties, when it was sent, how far reads got."""

    message_id: int
    send_date: str | None
    sent_at: datetime | None
    properties: Mapping[str, Any]
    read_at: datetime | None = None
    deferred: bool = False
    clicks_mark: str | None = None
    backfilled: bool = False


@dataclass(frozen=True, slots=True)
class ListPass:
    """An activity list's last pass, as status and the metrics show it."""

    list_id: int
    last_pass_at: datetime | None = None
    status: str | None = None
    error: str | None = None
    open_messages: int = 0
    deferred: int = 0
    unsub_mark: str | None = None


@dataclass(slots=True)
class EventTally:
    """Events of one name in the ledger: waiting for Segment, accepted, refused for good."""

    pending: int = 0
    sent: int = 0
    dead: int = 0


@dataclass(slots=True)
class ActivityOutcome:
    """How one list's activity pass ended, for the run's line, the exit status and status."""

    list_id: int
    status: str = "running"  # ok, partial, failed, skipped
    error: str | None = None
    exit_code: int = 0
    messages: int = 0  # read through this pass
    deferred: int = 0  # open messages left for the next pass (the budget ran out)
    open_messages: int = 0
    rows: int = 0
    recorded: int = 0
    delivered: int = 0
    failed: int = 0
    pending: int = 0
    dead: int = 0
    outage: str | None = None
    events: dict[str, int] = field(default_factory=dict)  # recorded this pass, by name

    def describe(self, *, dry_run: bool = False) -> str:
        """One line for `sync` and the logs; a dry run says what a real run would send."""
        sent = f"would send {self.delivered}" if dry_run else f"{self.delivered} sent"
        line = (
            f"activity {self.status}: {self.messages} message(s) read, {self.recorded} "
            f"event(s) recorded, {sent}"
        )
        extra = [
            f"{self.deferred} message(s) wait for the next pass" if self.deferred else "",
            f"{self.pending} not yet accepted by Segment" if self.pending else "",
            f"{self.dead} dead" if self.dead else "",
            self.error or "",
        ]
        return "; ".join([line, *filter(None, extra)])
