"""One run for one list: lease, scan page by page, sweep, deliver, record the run."""

from __future__ import annotations

import logging
from datetime import datetime

from .config import ListSettings
from .confirm import confirm_unseen
from .context import ListRun, RunContext
from .deliver import deliver
from .errors import LeaseHeldError, ListrakError
from .logs import log_context
from .plan import FULL, latest_usable, next_mark, plan_scans
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
) -> RunResult:
    """Run one list; the daemon, sync, backfill, baseline and demo all come through here."""
    run = ListRun(ctx, cfg, RunResult(list_id=cfg.id, kind=kind, started_at=ctx.clock()))
    state = _take_list(run)
    # Backfill, baseline and a confirmed mass removal must see the whole list.
    force = full or allow_mass_removal or kind.sees_whole_list
    specs = plan_scans(
        state,
        run.result.started_at,
        full_scan_every=cfg.full_scan_every,
        overlap=cfg.incremental_overlap,
        force_full=force,
    )
    run.result.full_scan = specs == FULL
    run.result.run_id = ctx.db.runs.start_run(
        cfg.id, kind, run.result.started_at, full_scan=run.result.full_scan
    )
    try:
        with log_context(list_id=cfg.id, run_id=run.result.run_id or None):
            _run(run, specs=specs, state=state, allow_mass_removal=allow_mass_removal)
    except BaseException as exc:
        run.result.status, run.result.error = RunStatus.FAILED, f"{type(exc).__name__}: {exc}"
        raise
    finally:
        _finish(run)
    return run.result


def _take_list(run: ListRun) -> ListState:
    """Take the list's lease, close runs a dead holder left open, and read its progress."""
    ctx, list_id, now = run.ctx, run.cfg.id, run.result.started_at
    holder = ctx.db.leases.acquire(list_id, ctx.holder, now, ctx.settings.delivery.lease_ttl)
    if holder is not None:
        raise LeaseHeldError(f"list {list_id} is being synced by {holder}; skipped")
    ctx.db.runs.fail_stale_runs(list_id, now)
    return ctx.db.runs.list_state(list_id)


def _run(
    run: ListRun, *, specs: tuple[ScanSpec, ...], state: ListState, allow_mass_removal: bool
) -> None:
    result = run.result
    complete, newest = _scan_and_confirm(run, specs, state, allow_mass_removal)
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
    else:
        deliver(run)
    if result.status == RunStatus.RUNNING:
        result.status = RunStatus.PARTIAL if (result.rejected or result.failed) else RunStatus.OK


def _scan_and_confirm(
    run: ListRun, specs: tuple[ScanSpec, ...], state: ListState, allow_mass_removal: bool
) -> tuple[bool, datetime | None]:
    try:
        complete, newest = scan(run, specs)
        if complete and run.result.full_scan:
            # The confirmation and delivery that follow read the whole list; a full scan
            # is when the list's size may have changed enough to matter to the planner.
            run.ctx.db.members.refresh_statistics()
            confirm_unseen(run, state, allow_mass_removal=allow_mass_removal)
    except ListrakError as exc:
        log.error("list %s: scan failed, nothing swept: %s", run.cfg.id, exc)
        run.result.status, run.result.error = RunStatus.FAILED, str(exc)
        run.result.exit_code = exc.exit_code
        return False, None
    return complete, newest


def _advance(run: ListRun, state: ListState, newest: datetime | None) -> None:
    """After a complete scan: move the high-water mark, and note a full scan that swept."""
    result = run.result
    mark = next_mark(state.high_water_mark, newest, latest=latest_usable(result.started_at))
    # A held sweep did not finish the full scan's job, so the next run scans fully again;
    # it still counts as a full scan that missed whom it did not see.
    swept = result.full_scan and result.status != RunStatus.HELD
    last_full = result.started_at if swept else state.last_full_scan_at
    last_run = result.run_id if result.full_scan else state.last_full_run
    run.ctx.db.runs.save_list_state(run.cfg.id, ListState(last_full, mark, last_run))


def _finish(run: ListRun) -> None:
    ctx, result = run.ctx, run.result
    result.finished_at = ctx.clock()
    try:
        ctx.db.runs.finish_run(
            result.run_id,
            result.status,
            result.finished_at,
            result.counts(),
            result.error,
            note=result.note,
        )
        result.pending, result.dead = ctx.db.runs.backlog(run.cfg.id)
    finally:
        ctx.db.leases.release(run.cfg.id, ctx.holder)
