"""Delivery: due messages (identifies, track events) go to Segment chunk by chunk.

What Segment answered decides their fate.

Accepted rows become sent. A row Segment refused on its own spends an attempt and backs off,
and after `delivery.max_attempts` it is dead. An outage is the endpoint's fault, never the
rows': delivery stops for this run, no row spends an attempt, and every row is due on the
next run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from operator import attrgetter
from typing import Any, Protocol, TypeVar

from ..config import Settings
from ..records import STOPPED, Delivery, Pending, RetryPolicy
from .context import ListRun

log = logging.getLogger(__name__)
Row = TypeVar("Row")


class Queue(Protocol[Row]):
    """A ledger of messages for Segment: the identify outbox, or the activity's events."""

    def pending(
        self, list_id: int, now: datetime, *, after: str = ..., limit: int = ...
    ) -> list[tuple[Row, int]]: ...

    def mark_sent(self, list_id: int, message_ids: Sequence[str]) -> int: ...

    def mark_rejected(
        self,
        list_id: int,
        refusals: Sequence[tuple[str, int, str]],
        now: datetime,
        policy: RetryPolicy,
    ) -> int: ...

    def note_waiting(self, list_id: int, now: datetime, label: str) -> int: ...


def deliver(run: ListRun) -> None:
    """Send every due identify, chunk by chunk, until none is left or Segment is unreachable."""
    ctx, cfg = run.ctx, run.cfg
    _, retired = ctx.db.traits.recorded(cfg.id)

    def send(rows: list[Pending]) -> Delivery:
        return ctx.emitter.deliver(rows, cfg.trait_name, retired)

    def posting(ids: list[str]) -> None:
        ctx.db.outbox.mark_posted(cfg.id, ids)

    drain(run, ctx.db.outbox, send, attrgetter("message_id"), posting)


def drain(
    run: ListRun,
    queue: Queue[Row],
    send: Callable[[list[Row]], Delivery],
    message_id: Callable[[Row], str],
    posting: Callable[[list[str]], object] | None = None,
) -> None:
    """Send every due message of the queue, chunk by chunk; the shared loop of both kinds.

    `posting` is told each chunk's ids just before they are posted (the identify outbox
    remembers that Segment may now hold them; an event's id names its fact for good).
    """
    ctx, cfg = run.ctx, run.cfg
    after = ""
    while True:
        now = ctx.clock()
        rows = queue.pending(cfg.id, now, after=after, limit=ctx.settings.segment.chunk_size)
        if not rows:
            return
        after = message_id(rows[-1][0])
        if posting is not None:
            posting([message_id(row) for row, _ in rows])
        delivery = send([row for row, _ in rows])
        record(run, delivery, {message_id(row): n for row, n in rows}, now, queue)
        run.progress("delivered", run.result.delivered)
        run.lock.verify()
        if delivery.outage is not None:
            stop_for_outage(run, delivery.outage, now, queue)
            return


def record(
    run: ListRun,
    delivery: Delivery,
    attempts: dict[str, int],
    now: datetime,
    queue: Queue[Any] | None = None,
) -> None:
    """Accepted rows become sent; refused ones spend an attempt (`attempts` holds theirs)."""
    outbox = queue if queue is not None else run.ctx.db.outbox
    cfg, result = run.cfg, run.result
    outbox.mark_sent(cfg.id, delivery.accepted)
    result.delivered += len(delivery.accepted)
    if delivery.rejected:
        refused = [(mid, attempts[mid], err) for mid, err in delivery.rejected.items()]
        outbox.mark_rejected(cfg.id, refused, now, retry_policy(run.ctx.settings))
        result.failed += len(refused)
        log.error(
            "list %s: Segment refused %d message(s): %s",
            cfg.id,
            len(refused),
            next(iter(delivery.rejected.values())),
        )


def stop_for_outage(
    run: ListRun, reason: str, now: datetime, queue: Queue[Any] | None = None
) -> None:
    """Leave every due row due, labelled with why it waits; no attempt is spent."""
    outbox = queue if queue is not None else run.ctx.db.outbox
    left = outbox.note_waiting(run.cfg.id, now, waiting_label(reason))
    run.result.outage = reason
    log.error(
        "list %s: %s; delivery stops for this run, %d row(s) are due on the next",
        run.cfg.id,
        reason,
        left,
    )


def waiting_label(reason: str) -> str:
    """What `status` says a row waits for: `stopped`, `rate limited: …` or `outage: …`."""
    if reason == STOPPED:
        return "stopped"
    if " 429 " in f" {reason} ":
        return f"rate limited: {reason}"
    return f"outage: {reason}"


def retry_policy(settings: Settings) -> RetryPolicy:
    """How long a refused row waits, and when it is dead: [delivery] decides for both ways."""
    d = settings.delivery
    return RetryPolicy(max_attempts=d.max_attempts, base=d.backoff_base, cap=d.backoff_max)
