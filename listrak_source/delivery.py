"""Delivery: pending rows go to Segment chunk by chunk; only accepted ids count as sent."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from .config import ListSettings, Settings
from .runtime import RunResult, Runtime
from .scanning import keep_lease
from .segment import Delivery
from .store import RetryPolicy

log = logging.getLogger(__name__)

_RATE_LIMIT_PAUSE = timedelta(minutes=1)


def deliver(rt: Runtime, cfg: ListSettings, result: RunResult) -> bool:
    """Send pending rows chunk by chunk; False when a whole chunk failed (Segment down)."""
    policy = _policy(rt.settings)
    after = ""
    while True:
        now = rt.clock()
        rows = rt.store.pending(cfg.id, now, after=after, limit=rt.settings.segment.chunk_size)
        if not rows:
            return True
        after = rows[-1][0].message_id
        delivery = rt.emitter.deliver([row for row, _ in rows], cfg.trait_name)
        attempts = {row.message_id: n for row, n in rows}
        _record_delivery(rt, cfg, result, delivery, attempts=attempts, now=now, policy=policy)
        if rt.on_progress is not None:
            rt.on_progress("delivered", result.delivered)
        keep_lease(rt, cfg)
        if not delivery.accepted:
            log.error(
                "list %s: Segment accepted nothing in a chunk; the rest waits for the next run",
                cfg.id,
            )
            return False


def _record_delivery(
    rt: Runtime,
    cfg: ListSettings,
    result: RunResult,
    delivery: Delivery,
    *,
    attempts: dict[str, int],
    now: datetime,
    policy: RetryPolicy,
) -> None:
    rt.store.mark_sent(cfg.id, delivery.accepted)
    result.delivered += len(delivery.accepted)
    if delivery.failed:
        failures = [(mid, attempts[mid], err) for mid, err in delivery.failed.items()]
        rt.store.mark_failed(cfg.id, failures, now, policy)
        result.failed += len(failures)
        log.error(
            "list %s: %d messages not accepted: %s",
            cfg.id,
            len(failures),
            next(iter(delivery.failed.values())),
        )
    if delivery.rate_limited:
        rt.store.postpone(cfg.id, delivery.rate_limited, now + _RATE_LIMIT_PAUSE)
        result.failed += len(delivery.rate_limited)


def _policy(settings: Settings) -> RetryPolicy:
    d = settings.delivery
    return RetryPolicy(max_attempts=d.max_attempts, base=d.backoff_base, cap=d.backoff_max)
