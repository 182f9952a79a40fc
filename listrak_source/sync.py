"""One run for one list: lease, scan page by page, sweep, deliver, record the run."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from .config import ListSettings, Settings
from .diff import Kind, PageDiff, diff_page, removal_ratio
from .errors import LeaseHeldError, LeaseLostError, ListrakError
from .ledger import Ledger
from .logs import log_context
from .messages import oversize_reason
from .models import Page, Reject
from .segment import Delivery, Emitter
from .store import RetryPolicy, Store

log = logging.getLogger(__name__)

COUNT_FIELDS = (
    "scanned",
    "subscribed",
    "unsubscribed",
    "user_id_changed",
    "rejected",
    "delivered",
    "failed",
)
# Only a profile value this long can push a message near Segment's 32 KB.
_SIZE_CHECK_THRESHOLD = 16 * 1024
_RATE_LIMIT_PAUSE = timedelta(minutes=1)


class PageSource(Protocol):
    """The part of the Listrak client a run needs."""

    def iter_pages(
        self, list_id: int, *, field_ids: Sequence[int] = (), page_size: int = 5000
    ) -> Iterator[Page]: ...


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _uuid() -> str:
    return str(uuid.uuid4())


@dataclass
class Runtime:
    """Everything a run touches, wired by the CLI; tests hand in their own clock and ids."""

    settings: Settings
    store: Store
    ledger: Ledger | None  # None for a dry run: no lease, no run history
    listrak: PageSource
    emitter: Emitter
    holder: str
    clock: Callable[[], datetime] = _utcnow
    new_id: Callable[[], str] = _uuid
    stop: threading.Event = field(default_factory=threading.Event)
    on_progress: Callable[[str, int], None] | None = None


@dataclass
class RunResult:
    """The outcome of one run, as stored in `runs` and shown by status and metrics."""

    list_id: int
    kind: str
    started_at: datetime
    run_id: int = 0
    status: str = "running"
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
    dead: int = 0
    pending: int = 0

    def counts(self) -> dict[str, int]:
        """The counters stored with the run."""
        return {name: getattr(self, name) for name in COUNT_FIELDS}

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form for status --json and logs."""
        out = asdict(self)
        del out["exit_code"]
        for key in ("started_at", "finished_at"):
            out[key] = out[key].isoformat() if out[key] else None
        return out


def sync_list(
    rt: Runtime, cfg: ListSettings, *, kind: str = "sync", allow_mass_removal: bool = False
) -> RunResult:
    """Run one list; the daemon, sync, backfill, baseline and demo all come through here."""
    result = RunResult(list_id=cfg.id, kind=kind, started_at=rt.clock())
    ttl = rt.settings.delivery.lease_ttl
    if rt.ledger is not None:
        holder = rt.ledger.acquire(cfg.id, rt.holder, result.started_at, ttl)
        if holder is not None:
            raise LeaseHeldError(f"list {cfg.id} is being synced by {holder}; skipped")
        rt.ledger.fail_stale_runs(cfg.id, result.started_at)
        result.run_id = rt.ledger.start_run(cfg.id, kind, result.started_at, full_scan=True)
    try:
        with log_context(list_id=cfg.id, run_id=result.run_id or None):
            _run(rt, cfg, result, allow_mass_removal)
    except BaseException as exc:
        result.status, result.error = "failed", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        _finish(rt, cfg, result)
    return result


def _run(rt: Runtime, cfg: ListSettings, result: RunResult, allow_mass_removal: bool) -> None:
    try:
        complete = _scan(rt, cfg, result)
    except ListrakError as exc:
        log.error("list %s: scan failed, nothing swept: %s", cfg.id, exc)
        result.status, result.error, complete = "failed", str(exc), False
        result.exit_code = exc.exit_code
    if complete:
        _sweep(rt, cfg, result, allow_mass_removal)
    if result.kind == "backfill":
        rt.store.requeue_all(cfg.id, rt.clock(), rt.new_id)
    if result.kind == "baseline":
        rt.store.adopt_all(cfg.id)
    else:
        _deliver(rt, cfg, result)
    if result.status == "running":
        result.status = "partial" if (result.rejected or result.failed) else "ok"


def _finish(rt: Runtime, cfg: ListSettings, result: RunResult) -> None:
    result.finished_at = rt.clock()
    if rt.ledger is None:
        return
    try:
        rt.ledger.finish_run(
            result.run_id, result.status, result.finished_at, result.counts(), result.error
        )
        now = rt.ledger.status(cfg.id)
        result.pending, result.dead = int(now["pending"]), int(now["dead"])
    finally:
        rt.ledger.release(cfg.id, rt.holder)


def _scan(rt: Runtime, cfg: ListSettings, result: RunResult) -> bool:
    """Store every page; True only when the scan reached its last page."""
    field_ids = [cfg.user_id_field] if cfg.user_id_field is not None else []
    pages = rt.listrak.iter_pages(
        cfg.id, field_ids=field_ids, page_size=rt.settings.listrak.page_size
    )
    for page in pages:
        _store_page(rt, cfg, result, page)
        if rt.stop.is_set():
            log.info("list %s: stopping after this page; the scan is incomplete", cfg.id)
            return False
    return True


def _store_page(rt: Runtime, cfg: ListSettings, result: RunResult, page: Page) -> None:
    now = rt.clock()
    stored = rt.store.load(cfg.id, [c.key for c in page.contacts])
    diff = diff_page(
        page.contacts,
        stored,
        user_id_field=cfg.user_id_field,
        run_id=result.run_id,
        new_id=rt.new_id,
    )
    diff.rejects[:0] = page.rejects
    _drop_oversize(diff, cfg.trait_name)
    rt.store.record_page(cfg.id, result.run_id, diff, now)
    result.scanned += len(page.contacts) + len(page.rejects)
    result.rejected += len(diff.rejects)
    for change in diff.changes:
        _count_change(result, change.kind)
    for reject in diff.rejects:
        log.warning("list %s: skipped contact %s: %s", cfg.id, reject.email or "?", reject.reason)
    _keep_lease(rt, cfg)
    if rt.on_progress is not None:
        rt.on_progress("scanned", result.scanned)


def _keep_lease(rt: Runtime, cfg: ListSettings) -> None:
    """Renew the list's lease; if it expired and another worker took it, stop this run."""
    if rt.ledger is None:
        return
    if not rt.ledger.renew(cfg.id, rt.holder, rt.clock(), rt.settings.delivery.lease_ttl):
        raise LeaseLostError(
            f"list {cfg.id}: lost the lease (it expired and another worker took it); stopping"
        )


def _count_change(result: RunResult, kind: Kind) -> None:
    if kind is Kind.SUBSCRIBED:
        result.subscribed += 1
    elif kind is Kind.UNSUBSCRIBED:
        result.unsubscribed += 1
    else:
        result.user_id_changed += 1


def _drop_oversize(diff: PageDiff, trait: str) -> None:
    """A change whose message Segment would refuse becomes a reject; the contact stays seen."""
    kept = []
    for change in diff.changes:
        size = len(change.email) + len(change.user_id or "")
        reason = (
            oversize_reason(change.email, change.user_id, trait)
            if size > _SIZE_CHECK_THRESHOLD
            else None
        )
        if reason is None:
            kept.append(change)
        else:
            diff.rejects.append(Reject(reason=reason, email=change.email))
    diff.changes = kept


def _sweep(rt: Runtime, cfg: ListSettings, result: RunResult, allow_mass_removal: bool) -> None:
    unseen, total = rt.store.count_unseen(cfg.id, result.run_id)
    if not unseen:
        return
    ratio = removal_ratio(unseen, total)
    limit = rt.settings.delivery.max_removal_ratio
    if ratio > limit and not allow_mass_removal:
        result.status = "held"
        result.error = (
            f"list {cfg.id}: the scan would remove {unseen} of {total} subscribers "
            f"({ratio:.0%}, over max_removal_ratio {limit:.0%}); nothing removed. If Listrak "
            f"is right, run: listrak-source sync --list {cfg.id} --allow-mass-removal"
        )
        log.error("%s", result.error)
        return
    result.unsubscribed += rt.store.sweep(cfg.id, result.run_id, rt.clock(), rt.new_id)


def _deliver(rt: Runtime, cfg: ListSettings, result: RunResult) -> None:
    """Send pending rows chunk by chunk; stop early when a whole chunk fails (Segment down)."""
    policy = _policy(rt.settings)
    after = ""
    while True:
        now = rt.clock()
        rows = rt.store.pending(cfg.id, now, after=after, limit=rt.settings.segment.chunk_size)
        if not rows:
            return
        after = rows[-1][0].key
        delivery = rt.emitter.deliver([row for row, _ in rows], cfg.trait_name)
        attempts = {row.message_id: n for row, n in rows}
        _record_delivery(rt, cfg, result, delivery, attempts=attempts, now=now, policy=policy)
        if rt.on_progress is not None:
            rt.on_progress("delivered", result.delivered)
        _keep_lease(rt, cfg)
        if not delivery.accepted:
            log.error(
                "list %s: Segment accepted nothing in a chunk; the rest waits for the next run",
                cfg.id,
            )
            return


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
