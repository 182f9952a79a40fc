"""The event table: a row as last seen and as read now become the events it owes, once each.

| event | fires when | once per | timestamp |
|---|---|---|---|
| Email Sent | a row for a recipient appears | message, contact, sendDate | sendDate |
| Email Opened | `open` becomes true | message, contact, send | activityDate |
| Email Link Clicked | a clicker row appears | message, link, contact, clickDate | clickDate |
| Email Bounced | `bounce` becomes true | message, contact, send | activityDate, else sendDate |
| Email Marked As Spam | `abuse` becomes true | message, contact, send | when first seen |
| Email Converted | `orderTotal` grows | each increase | when first seen |
| Unsubscribed | the subscriber scan sees one | list, contact, unsubscribeDate | unsubscribeDate |

Each fact's key is made of Listrak's raw values only (never of when we read them), so a
row read twice, or out of order, or by a fresh database, names the same fact the same way.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import datetime, tzinfo
from decimal import Decimal

from .dates import to_utc
from .records import (
    BOUNCED,
    CLICKED,
    CONVERTED,
    OPENED,
    SENT,
    SPAM,
    UNSUBSCRIBED,
    ActivityRow,
    Clicker,
    Fact,
    Link,
    Seen,
)

# The key's spelling is a JSON array, as this encoder writes it: every stored fact and
# every event id was made from it, so it never changes.
_KEY = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def fact_key(*parts: object) -> str:
    """An unambiguous key from raw values (an address may hold any character).

    Exactly `_KEY.encode(parts)`, written out for the values keys are made of (text, whole
    numbers, None): a first pass makes one key a fact, and the encoder's own set-up cost
    several times the writing.
    """
    out = []
    for part in parts:
        if isinstance(part, str):
            out.append(_quoted(part))
        elif part is None:
            out.append("null")
        elif isinstance(part, int) and not isinstance(part, bool):
            out.append(int.__repr__(part))
        else:
            return _KEY.encode(parts)
    return f"[{','.join(out)}]"


_quoted = json.encoder.encode_basestring  # the encoder's own, with ensure_ascii off


def merge(before: Seen | None, row: ActivityRow) -> Seen:
    """The row as the ledger keeps it: what was seen of this send, joined with what is read now.

    A new sendDate is a new send: its flags start again.
    """
    prior = before if before is not None and before.send_date == row.send_date else Seen()
    return Seen(
        send_date=row.send_date,
        opened=prior.opened or row.open,
        bounced=prior.bounced or row.bounce,
        abused=prior.abused or row.abuse,
        order_total=max(prior.order_total, row.order_total),
        click_count=max(prior.click_count, row.click_count),
    )


def row_facts(
    message_id: int, before: Seen | None, row: ActivityRow, *, where: tzinfo, now: datetime
) -> list[Fact]:
    """Every event the move from `before` to `row` owes, by the table above."""
    same_send = before is not None and before.send_date == row.send_date
    prior = before if before is not None and same_send else Seen()
    email, key, send = row.email.strip(), row.key, row.send_date
    sent_at = to_utc(send, where) or now
    acted_at = to_utc(row.activity_date, where)
    facts: list[Fact] = []
    if not same_send:
        facts.append(Fact(SENT, fact_key("sent", message_id, key, send), email, sent_at))
    if row.open and not prior.opened:
        at = acted_at or sent_at
        facts.append(Fact(OPENED, fact_key("open", message_id, key, send), email, at))
    if row.bounce and not prior.bounced:
        extra = {"bounce_reason": row.bounce_reason} if row.bounce_reason else {}
        at = acted_at or sent_at
        facts.append(Fact(BOUNCED, fact_key("bounce", message_id, key, send), email, at, extra))
    if row.abuse and not prior.abused:
        facts.append(Fact(SPAM, fact_key("abuse", message_id, key, send), email, now))
    if row.order_total > prior.order_total:
        facts.append(_converted(message_id, prior.order_total, row, now))
    return facts


def _converted(message_id: int, before: float, row: ActivityRow, now: datetime) -> Fact:
    """One increase of the order total, sent as the increase; keyed by both totals."""
    increase = float(Decimal(repr(row.order_total)) - Decimal(repr(before)))
    key = fact_key("order", message_id, row.key, row.send_date, repr(before), repr(row.order_total))
    return Fact(CONVERTED, key, row.email.strip(), now, {"order_total": increase})


def click_fact(
    message_id: int, link: Link, clicker: Clicker, *, where: tzinfo, now: datetime
) -> Fact:
    """A link clicker row: one event per (message, link, contact, clickDate)."""
    email = clicker.email.strip()
    key = fact_key("click", message_id, link.link_id, email.lower(), clicker.click_date)
    extra: dict[str, object] = {"link_id": str(link.link_id)}
    if link.url:
        extra["link_url"] = link.url
    return Fact(CLICKED, key, email, to_utc(clicker.click_date, where) or now, extra)


def unsubscribe_fact(
    list_id: int, email: str, date: str, method: str | None, *, where: tzinfo, now: datetime
) -> Fact:
    """An unsubscribe the subscriber scan saw: once per (list, contact, unsubscribeDate)."""
    address = email.strip()
    key = fact_key("unsubscribe", list_id, address.lower(), date)
    extra = {"unsubscribe_type": method} if method else {}
    return Fact(UNSUBSCRIBED, key, address, to_utc(date, where) or now, extra)


def wanted(facts: list[Fact], events: Collection[str]) -> list[Fact]:
    """Only the events the config asks for: `[activity] events`."""
    return [fact for fact in facts if fact.event in events]
