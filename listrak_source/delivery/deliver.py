"""Delivery: pending rows go to Segment chunk by chunk; what Segment answered decides their fate.

Accepted rows become sent. A row Segment refused on its own spends an attempt and backs off,
and after `delivery.max_attempts` it is dead. An outage is the endpoint's fault, never the
rows': delivery stops for this run, no row spends an attempt, and every row is due on the
next run.
"""

from __future__ import annotations

import logging
from datetime import datetime

from ..config import Settings
from ..records import STOPPED, Delivery, RetryPolicy
from .context import ListRun

log = logging.getLogger(__name__)


def deliver(run: ListRun) -> None:
    """Send every due row, chunk by chunk, until none is left or Segment is unreachable."""
    ctx, cfg = run.ctx, run.cfg
    _, retired = ctx.db.traits.recorded(cfg.id)
    after = ""
    while True:
        now = ctx.clock()
        chunk = ctx.settings.segment.chunk_size
        rows = ctx.db.outbox.pending(cfg.id, now, after=after, limit=chunk)
        if not rows:
            return
        after = rows[-1][0].message_id
        ctx.db.outbox.mark_posted(cfg.id, [row.message_id for row, _ in rows])
        delivery = ctx.emitter.deliver([row for row, _ in rows], cfg.trait_name, retired)
        record(run, delivery, {row.message_id: n for row, n in rows}, now)
        run.progress("delivered", run.result.delivered)
        run.lock.verify()
        if delivery.outage is not None:
            stop_for_outage(run, delivery.outage, now)
            return


def record(run: ListRun, delivery: Delivery, attempts: dict[str, int], now: datetime) -> None:
    """Accepted rows become sent; refused ones spend an attempt (`attempts` holds theirs)."""
    outbox, cfg, result = run.ctx.db.outbox, run.cfg, run.result
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


def stop_for_outage(run: ListRun, reason: str, now: datetime) -> None:
    """Leave every due row due, labelled with why it waits; no attempt is spent."""
    left = run.ctx.db.outbox.note_waiting(run.cfg.id, now, waiting_label(reason))
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
