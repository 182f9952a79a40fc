"""One run for one list: lock, scan page by page, sweep, deliver, record the run."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from .config import ListSettings
from .context import ListRun, RunContext
from .courier import Courier
from .deliver import deliver, stop_for_outage
from .diff import removal_ratio
from .errors import ListrakError, RanRecentlyError
from .logs import log_context
from .plan import FULL, plan_scans
from .records import ListState, RunKind, RunResult, RunStatus, ScanSpec
from .scan import scan

log = logging.getLogger(__name__)


def sync_list(
    ctx: RunContext,
    cfg: ListSettings,
    *,
    kind: RunKind = RunKind.SYNC,
    allow_mass_removal: bool = False,
    full: bool = False,
    min_gap: timedelta | None = None,
) -> RunResult:
    """Run one list; the daemon, sync, backfill, baseline and demo all come through here.

    The daemon passes `min_gap`: a run of this list that started less than that long ago
    (most likely another daemon's) means this one is not due, which is how a fleet shares
    the lists.
    """
    with ctx.db.locks.hold(cfg.id, ctx.holder) as lock:
        result = RunResult(list_id=cfg.id, kind=kind, started_at=ctx.clock())
        run = ListRun(ctx, cfg, result, lock)
        _check_due(run, min_gap)
        # Whoever left a run open has died: we hold the list now.
        ctx.db.runs.fail_stale_runs(cfg.id, result.started_at)
        _record(run, allow_mass_removal=allow_mass_removal, full=full)
    return result


def _check_due(run: ListRun, min_gap: timedelta | None) -> None:
    """Skip the run when the list's last run started less than `min_gap` ago."""
    if min_gap is None:
        return
    last = run.ctx.db.runs.last_started(run.cfg.id)
    if last is not None and run.result.started_at - last < min_gap:
        ago = (run.result.started_at - last).total_seconds()
        raise RanRecentlyError(f"list {run.cfg.id}: a run started {ago:.0f}s ago; not due yet")


def _record(run: ListRun, *, allow_mass_removal: bool, full: bool) -> None:
    """Plan the scans, record the run as running, run it, and record how it ended."""
    ctx, cfg, result = run.ctx, run.cfg, run.result
    state = ctx.db.runs.list_state(cfg.id)
    # Backfill, baseline and a confirmed mass removal must see the whole list.
    force = full or allow_mass_removal or result.kind.sees_whole_list
    specs = plan_scans(
        state,
        result.started_at,
        full_scan_every=cfg.full_scan_every,
        overlap=cfg.incremental_overlap,
        force_full=force,
    )
    result.full_scan = specs == FULL
    result.run_id = ctx.db.runs.start_run(
        cfg.id, result.kind, result.started_at, full_scan=result.full_scan
    )
    try:
        with log_context(list_id=cfg.id, run_id=result.run_id or None):
            _run(run, specs=specs, state=state, allow_mass_removal=allow_mass_removal)
    except BaseException as exc:
        result.status, result.error = RunStatus.FAILED, f"{type(exc).__name__}: {exc}"
        raise
    finally:
        _finish(run)


def _run(
    run: ListRun, *, specs: tuple[ScanSpec, ...], state: ListState, allow_mass_removal: bool
) -> None:
    result = run.result
    courier = _courier(run)
    try:
        complete, newest = _scan_and_sweep(run, specs, allow_mass_removal)
    except BaseException:
        if courier is not None:
            courier.abandon()
        raise
    if courier is not None:
        courier.finish()
    if complete:
        _advance(run, state, newest)
    elif result.status == RunStatus.RUNNING:
        # Asked to stop: what was stored still goes out, but the run did not finish.
        result.status = RunStatus.STOPPED
        result.error = "stopped by a signal before the scan finished; nothing was swept"
    if result.kind == RunKind.BACKFILL:
        run.ctx.db.members.requeue_all(run.cfg.id, run.ctx.clock(), run.ctx.new_id)
    if result.kind == RunKind.BASELINE:
        run.ctx.db.outbox.adopt_all(run.cfg.id)
    elif courier is not None and courier.outage is not None:
        # Segment failed during the scan: label what the sweep added, try again next run.
        stop_for_outage(run, courier.outage, run.ctx.clock())
    else:
        deliver(run)


def _courier(run: ListRun) -> Courier | None:
    """A sync delivers each page's changes while it scans the next; other kinds after."""
    if run.result.kind != RunKind.SYNC:
        return None
    courier = Courier(run)
    run.on_stored = courier.page
    return courier


def _scan_and_sweep(
    run: ListRun, specs: tuple[ScanSpec, ...], allow_mass_removal: bool
) -> tuple[bool, datetime | None]:
    try:
        complete, newest = scan(run, specs)
    except ListrakError as exc:
        log.error("list %s: scan failed, nothing swept: %s", run.cfg.id, exc)
        run.result.status, run.result.error = RunStatus.FAILED, str(exc)
        run.result.exit_code = exc.exit_code
        return False, None
    if complete and run.result.full_scan:
        # The sweep and delivery that follow read the whole list; a full scan is when
        # the list's size may have changed enough to matter to the planner.
        run.ctx.db.members.refresh_statistics()
        _sweep(run, allow_mass_removal)
    return complete, newest


def _advance(run: ListRun, state: ListState, newest: datetime | None) -> None:
    """After a complete scan: move the high-water mark, and note a full scan that swept."""
    result = run.result
    mark = max((d for d in (state.high_water_mark, newest) if d is not None), default=None)
    # A held sweep did not finish the full scan's job, so the next run scans fully again.
    swept = result.full_scan and result.status != RunStatus.HELD
    last_full = result.started_at if swept else state.last_full_scan_at
    run.ctx.db.runs.save_list_state(
        run.cfg.id, ListState(last_full_scan_at=last_full, high_water_mark=mark)
    )


def _finish(run: ListRun) -> None:
    ctx, result = run.ctx, run.result
    result.finished_at = ctx.clock()
    result.pending, result.dead = ctx.db.runs.backlog(run.cfg.id)
    result.waiting = ctx.db.runs.waiting(run.cfg.id) if result.pending else []
    _conclude(result)
    ctx.db.runs.finish_run(
        result.run_id, result.status, result.finished_at, result.counts(), result.error
    )


def _conclude(result: RunResult) -> None:
    """`ok` only when the scan finished and everything the list holds reached Segment.

    Anything less is `partial`, with what is left, why, and until when; a run that was
    held, stopped or failed keeps that status and gains the same account.
    """
    shortfall = _shortfall(result)
    if result.status == RunStatus.RUNNING:
        result.status = RunStatus.PARTIAL if shortfall else RunStatus.OK
    if shortfall:
        result.error = "; ".join(filter(None, [result.error, shortfall]))


def _shortfall(result: RunResult) -> str:
    parts = []
    if result.pending:
        waits = ", ".join(w.describe() for w in result.waiting)
        parts.append(f"{result.pending} message(s) not yet accepted by Segment: {waits}")
    if result.dead:
        parts.append(f"{result.dead} dead after max_attempts (see status; `retry` re-queues)")
    if result.rejected:
        parts.append(f"{result.rejected} contact(s) skipped (see status)")
    return "; ".join(parts)


def _sweep(run: ListRun, allow_mass_removal: bool) -> None:
    ctx, cfg, result = run.ctx, run.cfg, run.result
    unseen, total = ctx.db.members.count_unseen(cfg.id, result.run_id)
    if not unseen:
        return
    ratio = removal_ratio(unseen, total)
    limit = ctx.settings.delivery.max_removal_ratio
    if ratio > limit and not allow_mass_removal:
        result.status = RunStatus.HELD
        result.error = (
            f"list {cfg.id}: the scan would remove {unseen} of {total} subscribers "
            f"({ratio:.0%}, over max_removal_ratio {limit:.0%}); nothing removed. If Listrak "
            f"is right, run: listrak-source sync --list {cfg.id} --allow-mass-removal"
        )
        log.error("%s", result.error)
        return
    run.lock.verify()
    result.unsubscribed += ctx.db.members.sweep(cfg.id, result.run_id, ctx.clock(), ctx.new_id)
