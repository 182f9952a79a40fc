"""One run for one list: lease, scan page by page, sweep, deliver, record the run."""

from __future__ import annotations

import logging
from datetime import datetime

from .config import ListSettings
from .confirm import confirm_unseen
from .context import ListRun, RunContext
from .deliver import deliver
from .errors import (
    EXIT_FAILED,
    LeaseHeldError,
    ListrakError,
    ListrakSourceError,
    TraitRenamedError,
    describe_error,
)
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
    rename_trait: bool = False,
) -> RunResult:
    """Run one list; the daemon, sync, backfill, baseline and demo all come through here.

    `rename_trait`: the config names a new trait for the list; send it to every
    subscriber and remove the recorded one (see `listrak-source rename-trait`).
    """
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
    with log_context(list_id=cfg.id, run_id=run.result.run_id or None):
        try:
            _check_trait(run, rename=rename_trait)
            _run(run, specs=specs, state=state, allow_mass_removal=allow_mass_removal)
        except Exception as exc:
            # One list's failure is recorded for it; the caller goes on with the others.
            _failed(run, exc)
        except BaseException as exc:
            _failed(run, exc)
            raise
        finally:
            _finish(run)
    return run.result


def _failed(run: ListRun, exc: BaseException) -> None:
    """The run failed: one line, without SQL or contacts' data, stored and logged."""
    result = run.result
    result.status, result.error = RunStatus.FAILED, describe_error(exc)
    result.exit_code = exc.exit_code if isinstance(exc, ListrakSourceError) else EXIT_FAILED
    log.error("list %s: run failed: %s", run.cfg.id, result.error)


def _take_list(run: ListRun) -> ListState:
    """Take the list's lease, close runs a dead holder left open, and read its progress."""
    ctx, list_id, now = run.ctx, run.cfg.id, run.result.started_at
    holder = ctx.db.leases.acquire(list_id, ctx.holder, now, ctx.settings.delivery.lease_ttl)
    if holder is not None:
        raise LeaseHeldError(f"list {list_id} is being synced by {holder}; skipped")
    ctx.db.runs.fail_stale_runs(list_id, now)
    return ctx.db.runs.list_state(list_id)


def trait_mismatch(cfg: ListSettings, recorded: str | None) -> str | None:
    """Why the list must not run with this config's trait, with what to do; None if it may."""
    if recorded is None or recorded == cfg.trait_name:
        return None
    return (
        f"list {cfg.id}: its messages carry the trait {recorded} but the config names "
        f"{cfg.trait_name}; to send {cfg.trait_name} to every subscriber and remove "
        f"{recorded}, run: listrak-source rename-trait --list {cfg.id} --confirm "
        f"(or set the list's trait back so that it gives {recorded})"
    )


def _check_trait(run: ListRun, *, rename: bool) -> None:
    """Record a new list's trait; refuse a renamed one unless the rename was confirmed."""
    traits, cfg = run.ctx.db.traits, run.cfg
    recorded, _ = traits.recorded(cfg.id)
    if recorded is None:
        traits.adopt(cfg.id, cfg.trait_name)
        return
    problem = trait_mismatch(cfg, recorded)
    if problem is None:
        return
    if not rename:
        raise TraitRenamedError(problem)
    count = traits.rename(cfg.id, cfg.trait_name, run.ctx.clock(), run.ctx.new_id)
    run.result.add_note(f"trait {recorded} renamed {cfg.trait_name}: {count} subscriber(s) re-sent")
    log.info("list %s: %s", cfg.id, run.result.note)


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
    run.ctx.db.traits.retire_done(run.cfg.id)
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
    result = run.result
    finished = result.finished_at = run.ctx.clock()
    try:
        _close(run, finished)
    except Exception:
        if result.status != RunStatus.FAILED:
            raise
        # Closing a failed run can fail the same way (a full disk): the first error stands.
        log.debug("list %s: the failed run could not be closed", run.cfg.id)


def _close(run: ListRun, finished: datetime) -> None:
    """Record the run's outcome and backlog, and give the list's lease back."""
    ctx, result = run.ctx, run.result
    try:
        ctx.db.runs.finish_run(
            result.run_id,
            result.status,
            finished,
            result.counts(),
            result.error,
            note=result.note,
        )
        result.pending, result.dead = ctx.db.runs.backlog(run.cfg.id)
    finally:
        ctx.db.leases.release(run.cfg.id, ctx.holder)
