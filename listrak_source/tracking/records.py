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


@dataclass(slots=True)
class ActivityCounts:
    """What one activity pass did, for the run's line, status and metrics."""

    messages: int = 0
    rows: int = 0
    changed: int = 0
    recorded: int = 0
    delivered: int = 0
    failed: int = 0
    deferred: int = 0
