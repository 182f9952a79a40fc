"""Delivery: pending rows go to Segment chunk by chunk; only accepted ids count as sent."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from .config import Settings
from .context import ListRun
from .records import Delivery, RetryPolicy
from .scan import keep_lease

log = logging.getLogger(__name__)

_RATE_LIMIT_PAUSE = timedelta(minutes=1)


def deliver(run: ListRun) -> bool:
    """Send pending rows chunk by chunk; False when a whole chunk failed (Segment down)."""
    ctx, cfg, result = run.ctx, run.cfg, run.result
    policy = _policy(ctx.settings)
    _, retired = ctx.db.traits.recorded(cfg.id)
    after = ""
    while True:
        now = ctx.clock()
        rows = ctx.db.outbox.pending(
            cfg.id, now, after=after, limit=ctx.settings.segment.chunk_size
        )
        if not rows:
            return True
        after = rows[-1][0].message_id
        delivery = ctx.emitter.deliver([row for row, _ in rows], cfg.trait_name, retired)
        attempts = {row.message_id: n for row, n in rows}
        _record_delivery(run, delivery, attempts=attempts, now=now, policy=policy)
        run.progress("delivered", result.delivered)
        keep_lease(run)
        if not delivery.accepted:
            log.error(
                "list %s: Segment accepted nothing in a chunk; the rest waits for the next run",
                cfg.id,
            )
            return False


def _record_delivery(
    run: ListRun,
    delivery: Delivery,
    *,
    attempts: dict[str, int],
    now: datetime,
    policy: RetryPolicy,
) -> None:
    outbox, cfg, result = run.ctx.db.outbox, run.cfg, run.result
    outbox.mark_sent(cfg.id, delivery.accepted)
    result.delivered += len(delivery.accepted)
    if delivery.failed:
        failures = [(mid, attempts[mid], err) for mid, err in delivery.failed.items()]
        outbox.mark_failed(cfg.id, failures, now, policy)
        result.failed += len(failures)
        log.error(
            "list %s: %d messages not accepted: %s",
            cfg.id,
            len(failures),
            next(iter(delivery.failed.values())),
        )
    if delivery.rate_limited:
        outbox.postpone(cfg.id, delivery.rate_limited, now + _RATE_LIMIT_PAUSE)
        result.failed += len(delivery.rate_limited)


def _policy(settings: Settings) -> RetryPolicy:
    d = settings.delivery
    return RetryPolicy(max_attempts=d.max_attempts, base=d.backoff_base, cap=d.backoff_max)
