"""One run for one list: lease, scan page by page, sweep, deliver, record the run."""

from __future__ import annotations

import logging
from datetime import datetime

from .config import ListSettings
from .delivery import deliver
from .diff import removal_ratio
from .errors import LeaseHeldError, ListrakError
from .logs import log_context
from .parallel import ParallelDelivery
from .polling import FULL, ListState, ScanSpec, plan_scans
from .runtime import COUNT_FIELDS, PageSource, RunResult, Runtime
from .scanning import scan

__all__ = ["COUNT_FIELDS", "PageSource", "RunResult", "Runtime", "sync_list"]

log = logging.getLogger(__name__)


def sync_list(
    rt: Runtime,
    cfg: ListSettings,
    *,
    kind: str = "sync",
    allow_mass_removal: bool = False,
    full: bool = False,
) -> RunResult:
    """Run one list; the daemon, sync, backfill, baseline and demo all come through here."""
    result = RunResult(list_id=cfg.id, kind=kind, started_at=rt.clock())
    ttl = rt.settings.delivery.lease_ttl
    state = ListState()
    if rt.ledger is not None:
        holder = rt.ledger.acquire(cfg.id, rt.holder, result.started_at, ttl)
        if holder is not None:
            raise LeaseHeldError(f"list {cfg.id} is being synced by {holder}; skipped")
        rt.ledger.fail_stale_runs(cfg.id, result.started_at)
        state = rt.ledger.list_state(cfg.id)
    # Backfill, baseline and a confirmed mass removal must see the whole list.
    force = full or allow_mass_removal or kind in ("backfill", "baseline")
    specs = plan_scans(
        state,
        result.started_at,
        full_scan_every=cfg.full_scan_every,
        overlap=cfg.incremental_overlap,
        force_full=force,
    )
    result.full_scan = specs == FULL
    if rt.ledger is not None:
        result.run_id = rt.ledger.start_run(
            cfg.id, kind, result.started_at, full_scan=result.full_scan
        )
    try:
        with log_context(list_id=cfg.id, run_id=result.run_id or None):
            _run(rt, cfg, result, specs=specs, state=state, allow_mass_removal=allow_mass_removal)
    except BaseException as exc:
        result.status, result.error = "failed", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        _finish(rt, cfg, result)
    return result


def _run(
    rt: Runtime,
    cfg: ListSettings,
    result: RunResult,
    *,
    specs: tuple[ScanSpec, ...],
    state: ListState,
    allow_mass_removal: bool,
) -> None:
    parallel = _parallel(rt, cfg, result)
    try:
        complete, newest = _scan_and_sweep(rt, cfg, result, specs, allow_mass_removal)
    finally:
        if parallel is not None:
            rt.after_page = None
            parallel.finish(result)
    if complete:
        _advance(rt, cfg, result, state, newest)
    elif result.status == "running":
        # Asked to stop: what was stored still goes out, but the run did not finish.
        result.status = "stopped"
        result.error = "stopped by a signal before the scan finished; nothing was swept"
    if result.kind == "backfill":
        rt.store.requeue_all(cfg.id, rt.clock(), rt.new_id)
    if result.kind == "baseline":
        rt.store.adopt_all(cfg.id)
    else:
        deliver(rt, cfg, result)
    if result.status == "running":
        result.status = "partial" if (result.rejected or result.failed) else "ok"


def _parallel(rt: Runtime, cfg: ListSettings, result: RunResult) -> ParallelDelivery | None:
    """A delivery helper for real runs that send; it starts itself once the backlog is big."""
    if rt.ledger is None or result.kind == "baseline" or not rt.settings.segment.parallel_after:
        return None
    parallel = ParallelDelivery(rt, cfg)
    rt.after_page = parallel.after_page
    return parallel


def _scan_and_sweep(
    rt: Runtime,
    cfg: ListSettings,
    result: RunResult,
    specs: tuple[ScanSpec, ...],
    allow_mass_removal: bool,
) -> tuple[bool, datetime | None]:
    try:
        complete, newest = scan(rt, cfg, result, specs)
    except ListrakError as exc:
        log.error("list %s: scan failed, nothing swept: %s", cfg.id, exc)
        result.status, result.error = "failed", str(exc)
        result.exit_code = exc.exit_code
        return False, None
    if complete and result.full_scan:
        # The sweep and delivery that follow read the whole list; a full scan is when
        # the list's size may have changed enough to matter to the planner.
        rt.store.refresh_statistics()
        _sweep(rt, cfg, result, allow_mass_removal)
    return complete, newest


def _advance(
    rt: Runtime, cfg: ListSettings, result: RunResult, state: ListState, newest: datetime | None
) -> None:
    """After a complete scan: move the high-water mark, and note a full scan that swept."""
    if rt.ledger is None:
        return
    mark = max((d for d in (state.high_water_mark, newest) if d is not None), default=None)
    # A held sweep did not finish the full scan's job, so the next run scans fully again.
    swept = result.full_scan and result.status != "held"
    last_full = result.started_at if swept else state.last_full_scan_at
    rt.ledger.save_list_state(cfg.id, ListState(last_full_scan_at=last_full, high_water_mark=mark))


def _finish(rt: Runtime, cfg: ListSettings, result: RunResult) -> None:
    result.finished_at = rt.clock()
    if rt.ledger is None:
        return
    try:
        rt.ledger.finish_run(
            result.run_id, result.status, result.finished_at, result.counts(), result.error
        )
        result.pending, result.dead = rt.ledger.backlog(cfg.id)
    finally:
        rt.ledger.release(cfg.id, rt.holder)


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
