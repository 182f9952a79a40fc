"""Reading Listrak for a pass: new messages, a message's clickers and rows, the unsubscribes.

Every page is diffed against the ledger and written with the events it owes in one
transaction, so what a crash interrupts is read again and owes the same events, under the
same ids, which the ledger already holds or Segment drops.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import TypeVar

from ..tracking.dates import read_from, to_listrak, to_utc
from ..tracking.ids import event_id
from ..tracking.messages import list_properties, message_properties, properties
from ..tracking.records import SENT, ActivityRow, Fact, MessageInfo, NewEvent, Seen, StoredMessage
from ..tracking.table import click_fact, merge, row_facts, unsubscribe_fact, wanted
from .source import Mode, Pass

T = TypeVar("T")
_DATE = "%Y-%m-%dT%H:%M:%S"


def paced(p: Pass, pages: Iterable[T]) -> Iterator[T]:
    """Each page of a route, counted against the pass's budget before it is asked for."""
    iterator = iter(pages)
    while True:
        p.spend()
        try:
            page = next(iterator)
        except StopIteration:
            p.requests -= 1  # the route had ended: no request was made
            return
        yield page


def list_common(p: Pass) -> dict[str, object]:
    """The list's properties every event carries."""
    p.spend()
    name = p.source.get_list(p.cfg.id).get("listName")
    return list_properties(p.cfg.id, name if isinstance(name, str) else None)


def discover(p: Pass) -> list[StoredMessage]:
    """Messages sent since the pass's start, new ones saved with their properties; newest
    first, those a short pass left over before the others."""
    ledger, list_id = p.ctx.db.activity, p.cfg.id
    known = ledger.messages(list_id)
    start = to_listrak(p.since, p.where)
    found = [
        m for page in paced(p, _chunks(p.source.iter_messages(list_id, start=start))) for m in page
    ]
    campaigns: dict[int, str] | None = None
    for info in found:
        if info.message_id in known or not _sent(info):
            continue
        if campaigns is None and info.campaign_id is not None:
            p.spend()
            campaigns = p.source.get_campaigns(list_id)
        known[info.message_id] = _save(p, info, campaigns or {})
    open_ = [m for m in known.values() if m.sent_at is None or m.sent_at >= p.since]
    return sorted(open_, key=lambda m: (not m.deferred, -(m.sent_at or p.since).timestamp()))


def _sent(info: MessageInfo) -> bool:
    """A scheduled message is not kept until it is sent: its subject and date may change.
    Any other status counts as sent, so a name Listrak's documentation does not give never
    leaves a message unread."""
    return (info.status or "").strip().lower() != "scheduled"


def _chunks(messages: Iterable[MessageInfo]) -> Iterator[list[MessageInfo]]:
    """The message route's pages, as the client yields them one message at a time."""
    yield list(messages)


def _save(p: Pass, info: MessageInfo, campaigns: dict[int, str]) -> StoredMessage:
    p.spend()
    details = p.source.get_message_details(p.cfg.id, info.message_id)
    ga = details.get("googleAnalyticsCampaignName")
    name = campaigns.get(info.campaign_id) if info.campaign_id is not None else None
    full = MessageInfo(
        info.message_id,
        info.send_date,
        info.subject,
        info.campaign_id,
        name,
        ga if isinstance(ga, str) else None,
    )
    stored = StoredMessage(
        info.message_id, info.send_date, to_utc(info.send_date, p.where), message_properties(full)
    )
    p.ctx.db.activity.save_message(p.cfg.id, stored)
    return stored


def read_message(p: Pass, message: StoredMessage) -> None:
    """Clickers since the last mark (less the overlap), then every row; the read is recorded
    complete only when both ran to the end."""
    mark = read_clicks(p, message)
    common = {**message.properties, **p.common}
    size = p.ctx.settings.listrak.page_size
    # Unless Email Sent is asked for, a row with no activity owes nothing and is neither
    # parsed, looked up nor stored: most of a broadcast's rows, on every pass.
    acted_only = SENT not in p.ctx.settings.activity.events
    pages = p.source.iter_activity(
        p.cfg.id, message.message_id, page_size=size, acted_only=acted_only
    )
    for page in paced(p, pages):
        p.outcome.rows += page.read
        _record_rows(p, message.message_id, page.rows, common)
    p.ctx.db.activity.message_read(
        p.cfg.id,
        message.message_id,
        read_at=p.ctx.clock(),
        clicks_mark=mark,
        backfilled=p.mode != Mode.SYNC,
    )
    p.outcome.messages += 1


def read_clicks(p: Pass, message: StoredMessage) -> str | None:
    """Every link's clickers since the mark; the newest clickDate read is the next mark."""
    p.spend()
    links = p.source.get_links(p.cfg.id, message.message_id)
    mark = message.clicks_mark
    start = _less(p, mark)
    common = {**message.properties, **p.common}
    for link in links:
        pages = p.source.iter_clickers(p.cfg.id, message.message_id, link.link_id, start=start)
        for page in paced(p, pages):
            now = p.ctx.clock()
            facts = [click_fact(message.message_id, link, c, where=p.where, now=now) for c in page]
            _record(p, None, {}, facts, common)
            mark = max([mark or "", *(c.click_date or "" for c in page)]) or None
    return _capped(p, mark)


def _naive(date: datetime, p: Pass) -> datetime:
    """A contact's date as Listrak's naive wall time: one that came with its own offset is
    moved into Listrak's zone first, or the string would name another moment."""
    return to_listrak(date, p.where) if date.tzinfo is not None else date


def _capped(p: Pass, mark: str | None) -> str | None:
    """The mark, never ahead of this host's clock: a date Listrak wrote ahead of it (a
    clock or a zone set wrong) would start the next read past what happens meanwhile."""
    now = to_listrak(p.ctx.clock(), p.where).strftime(_DATE)
    return min(mark, now) if mark else mark


def _less(p: Pass, mark: str | None) -> datetime | None:
    return read_from(mark, p.ctx.settings.activity.overlap, p.where) if mark else None


def _record_rows(
    p: Pass, message_id: int, page: list[ActivityRow], common: dict[str, object]
) -> None:
    """Diff one page against the ledger: changed rows and their events, one transaction."""
    seen = p.ctx.db.activity.seen(p.cfg.id, message_id, [row.key for row in page])
    changed: dict[str, Seen] = {}
    facts: list[Fact] = []
    now = p.ctx.clock()
    for row in page:
        before = seen.get(row.key)
        after = merge(before, row)
        if after == before:
            continue
        facts += row_facts(message_id, before, row, where=p.where, now=now)
        seen[row.key] = changed[row.key] = after
    _record(p, message_id, changed, facts, common)


def _record(
    p: Pass,
    message_id: int | None,
    changed: dict[str, Seen],
    facts: list[Fact],
    common: dict[str, object],
) -> None:
    events = {
        e.message_id: e for e in _events(p, wanted(facts, p.ctx.settings.activity.events), common)
    }
    if not changed and not events:
        return
    baseline = p.mode == Mode.BASELINE
    added = p.ctx.db.activity.record(
        p.cfg.id, message_id, changed, list(events.values()), p.ctx.clock(), sent=baseline
    )
    p.outcome.recorded += len(added)
    if p.courier is not None:
        p.courier.page(added)
    for event in events.values():
        p.outcome.events[event.event] = p.outcome.events.get(event.event, 0) + 1


def _events(p: Pass, facts: list[Fact], common: dict[str, object]) -> Iterator[NewEvent]:
    for fact in facts:
        yield NewEvent(
            event_id(p.key_hash, fact.key),
            fact.key,
            fact.event,
            fact.email,
            fact.at,
            properties(fact, common),
        )


def read_unsubscribes(p: Pass, mark: str | None) -> str | None:
    """Unsubscribes dated since the mark (less the overlap), or since the pass's start; each
    is an Unsubscribed event once. Returns the newest unsubscribeDate read.

    A backfill or a baseline reads from its own date whatever the mark: the syncs before it
    moved the mark past the history it is asked for."""
    floor = to_listrak(p.since, p.where)
    start = (_less(p, mark) or floor) if p.mode == Mode.SYNC else floor
    pages = p.source.iter_pages(p.cfg.id, subscribed=False, start_date=max(start, floor))
    for page in paced(p, pages):
        now = p.ctx.clock()
        facts = []
        for c in page.contacts:
            if c.subscribed or c.unsubscribe_date is None:
                continue
            raw = _naive(c.unsubscribe_date, p).strftime(_DATE)
            facts.append(
                unsubscribe_fact(
                    p.cfg.id, c.email, raw, c.unsubscribe_method, where=p.where, now=now
                )
            )
            mark = max(mark or "", raw)
        _record(p, None, {}, facts, p.common)
    return _capped(p, mark)
