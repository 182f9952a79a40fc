"""Messages and their activity, as Listrak keeps them: one cumulative row per (message, contact).

Rows only grow: flags turn true, `clickCount` and `orderTotal` rise, `activityDate` is the
first activity and never moves. A link's clickers are one row per click. Tests send
messages and make recipients open, click, bounce, complain and buy between (or during) the
worker's passes; `faults.shift_activity` moves a changed row to the end of its message's
order, as a store ordered by last change would, so a pass reading it may see it twice, or
(with `faults.offset_cursors`) skip another.
"""

from __future__ import annotations

import json
import threading
from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

_esc: Callable[[str], str] = json.encoder.encode_basestring_ascii


def _opt(value: str | None) -> str:
    return "null" if value is None else _esc(value)


def _bool(value: bool) -> str:
    return "true" if value else "false"


class SimRow:
    """One `MessageActivity` row, its JSON cached until it changes."""

    __slots__ = (
        "_json",
        "abuse",
        "activity_date",
        "bounce",
        "bounce_reason",
        "click",
        "click_count",
        "email",
        "open",
        "order_total",
        "read",
        "send_date",
        "seq",
    )

    def __init__(self, email: str, send_date: str, seq: int) -> None:
        self.email = email
        self.send_date = send_date
        self.seq = seq
        self.activity_date: str | None = None
        self.open = self.read = self.click = self.bounce = self.abuse = False
        self.click_count = 0
        self.order_total = 0.0
        self.bounce_reason: str | None = None
        self._json: bytes | None = None

    def json(self) -> bytes:
        """The row as the Activity route serves it."""
        if self._json is None:
            self._json = (
                f'{{"emailAddress":{_esc(self.email)},"sendDate":{_opt(self.send_date)},'
                f'"activityDate":{_opt(self.activity_date)},"open":{_bool(self.open)},'
                f'"read":{_bool(self.read)},"click":{_bool(self.click)},'
                f'"bounce":{_bool(self.bounce)},"abuse":{_bool(self.abuse)},'
                f'"unsubscribe":false,"clickCount":{self.click_count},'
                f'"orderTotal":{self.order_total!r},"bounceReason":{_opt(self.bounce_reason)}}}'
            ).encode()
        return self._json

    def as_dict(self) -> dict[str, Any]:
        """The row as a test reads it."""
        out: dict[str, Any] = json.loads(self.json())
        return out


@dataclass
class SimLink:
    """One tracked link of a message, and its clickers: (email, clickDate) per click."""

    link_id: int
    url: str
    description: str = ""
    clickers: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class SimMessage:
    """One message of a list and the activity of its recipients."""

    message_id: int
    subject: str
    send_date: str
    campaign_id: int | None = None
    ga_campaign_name: str | None = None
    test: bool = False
    rows: dict[str, SimRow] = field(default_factory=dict)
    order: list[SimRow] = field(default_factory=list)
    seqs: array = field(default_factory=lambda: array("Q"))  # type: ignore[type-arg]
    links: dict[int, SimLink] = field(default_factory=dict)
    next_seq: int = 1
    # "Sent", or "Scheduled" for one not sent yet (its subject and date may still change).
    status: str = "Sent"

    def add_row(self, email: str) -> SimRow:
        """A recipient's row, appended to the order."""
        row = self.rows[email.strip().lower()] = SimRow(email, self.send_date, self.next_seq)
        self.next_seq += 1
        self.order.append(row)
        self.seqs.append(row.seq)
        return row

    def move_to_end(self, row: SimRow) -> None:
        """A changed row moves behind every other: rows shift while a pass pages them."""
        i = bisect_right(self.seqs, row.seq) - 1
        del self.order[i]
        del self.seqs[i]
        row.seq, self.next_seq = self.next_seq, self.next_seq + 1
        self.order.append(row)
        self.seqs.append(row.seq)

    def after(self, seq: int | None) -> int:
        """Where in the order the rows after `seq` start."""
        return 0 if seq is None else bisect_right(self.seqs, seq)

    def json(self, extended: bool = False) -> dict[str, Any]:
        """`Message`, or `MessageExtendedSegmentsApplied` with `extended`."""
        out: dict[str, Any] = {
            "messageId": self.message_id,
            "sendDate": self.send_date,
            "messageStatus": self.status,
            "campaignId": self.campaign_id or 0,
            "externalCampaignId": None,
            "subject": self.subject,
        }
        if extended:
            out.update(
                googleAnalyticsCampaignName=self.ga_campaign_name,
                enableTracking=True,
                fromName="Example News",
                fromEmail="news@example.com",
            )
        return out


class ActivityData:
    """Every list's messages and campaigns; the simulator's clock and zone date them."""

    lock: threading.RLock
    zone: tzinfo
    now: Callable[[], datetime]
    shift_changed: Callable[[], bool]

    def __init__(self) -> None:
        self.messages: dict[int, dict[int, SimMessage]] = {}
        self.campaigns: dict[int, dict[int, str]] = {}

    def _date(self, at: datetime | None) -> str:
        return (at or self.now()).astimezone(self.zone).strftime("%Y-%m-%dT%H:%M:%S")

    def add_campaign(self, list_id: int, campaign_id: int, name: str) -> None:
        """A campaign messages can belong to."""
        with self.lock:
            self.campaigns.setdefault(list_id, {})[campaign_id] = name

    def send_message(
        self,
        list_id: int,
        message_id: int,
        recipients: Iterable[str],
        *,
        subject: str = "",
        campaign_id: int | None = None,
        ga_campaign_name: str | None = None,
        test: bool = False,
        at: datetime | None = None,
    ) -> None:
        """A message sent now (or `at`): a row for each recipient, with nothing on it yet."""
        with self.lock:
            msg = SimMessage(
                message_id,
                subject or f"Message {message_id}",
                self._date(at),
                campaign_id,
                ga_campaign_name,
                test,
            )
            for email in recipients:
                msg.add_row(email)
            self.messages.setdefault(list_id, {})[message_id] = msg

    def add_link(self, list_id: int, message_id: int, link_id: int, url: str) -> None:
        """A tracked link of a message."""
        with self.lock:
            self.message(list_id, message_id).links[link_id] = SimLink(link_id, url)

    def message(self, list_id: int, message_id: int) -> SimMessage:
        """The message, or a KeyError that says which."""
        try:
            return self.messages[list_id][message_id]
        except KeyError:
            raise KeyError(f"message {message_id} of list {list_id} was never sent") from None

    def open(self, list_id: int, message_id: int, email: str) -> None:
        """The recipient opens the message (a pixel load, or a pre-fetch)."""
        self._change(list_id, message_id, email, open=True, read=True)

    def click(self, list_id: int, message_id: int, link_id: int, email: str) -> None:
        """A click: a clicker row now, and the row counts it (a click is an open too)."""
        with self.lock:
            msg = self.message(list_id, message_id)
            row = self._row(msg, email)
            msg.links[link_id].clickers.append((row.email, self._date(None)))
            self._change(list_id, message_id, email, open=True, click=True, clicks=1)

    def bounce(self, list_id: int, message_id: int, email: str, reason: str = "") -> None:
        """The message bounced for this recipient."""
        self._change(list_id, message_id, email, bounce=True, bounce_reason=reason or None)

    def complain(self, list_id: int, message_id: int, email: str) -> None:
        """The recipient marks the message as spam."""
        self._change(list_id, message_id, email, abuse=True)

    def convert(self, list_id: int, message_id: int, email: str, amount: float) -> None:
        """An order attributed to the message: `orderTotal` grows (or falls, for a refund)."""
        self._change(list_id, message_id, email, order=amount)

    def activity_row(self, list_id: int, message_id: int, email: str) -> dict[str, Any]:
        """The row as Listrak would serve it now."""
        with self.lock:
            return self._row(self.message(list_id, message_id), email).as_dict()

    def _row(self, msg: SimMessage, email: str) -> SimRow:
        try:
            return msg.rows[email.strip().lower()]
        except KeyError:
            raise KeyError(f"{email!r} did not receive message {msg.message_id}") from None

    def _change(
        self,
        list_id: int,
        message_id: int,
        email: str,
        *,
        clicks: int = 0,
        order: float = 0.0,
        **flags: Any,
    ) -> None:
        with self.lock:
            msg = self.message(list_id, message_id)
            row = self._row(msg, email)
            for name, value in flags.items():
                setattr(row, name, value)
            row.click_count += clicks
            row.order_total = round(row.order_total + order, 2)
            if row.activity_date is None:
                row.activity_date = self._date(None)
            row._json = None
            if self.shift_changed():
                msg.move_to_end(row)
