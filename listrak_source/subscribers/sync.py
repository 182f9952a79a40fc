"""One run for one list: lock, scan page by page, sweep, deliver, record the run."""

from __future__ import annotations

import functools
import logging
from datetime import datetime, timedelta

from ..config import ListSettings
from ..delivery.context import ListRun, RunContext
from ..delivery.courier import Courier
from ..delivery.deliver import deliver, stop_for_outage
from ..errors import (
    EXIT_FAILED,
    ListrakError,
    ListrakSourceError,
    RanRecentlyError,
    TraitRenamedError,
    describe_error,
)
from ..logs import log_context
from ..records import (
    Change,
    Delivery,
    ListState,
    Pending,
    RunKind,
    RunResult,
    RunStatus,
    ScanSpec,
)
from .confirm import confirm_unseen, seen_since_missed, still_waiting
from .plan import latest_usable, next_mark, plan_scans
from .scan import scan
from .trait_claims import refuse_clash

log = logging.getLogger(__name__)
# Hosts in NTP sync differ by far less; a run recorded further ahead is our clock going back.
_CLOCK_SKEW = timedelta(minutes=1)


def sync_list(
    ctx: RunContext,
    cfg: ListSettings,
    *,
    kind: RunKind = RunKind.SYNC,
    allow_mass_removal: bool = False,
    full: bool = False,
    min_gap: timedelta | None = None,
    rename_trait: bool = False,
) -> RunResult:
    """Run one list; the daemon, sync, backfill, baseline and demo all come through here.

    The daemon passes `min_gap`: a run of this list that started less than that long ago
    (most likely another daemon's) means this one is not due, which is how a fleet shares
    the lists. `rename_trait`: the config names a new trait for the list; send it to every
    subscriber and remove the recorded one (see `listrak-source rename-trait`).
    """
    with ctx.db.locks.hold(cfg.id, ctx.holder) as lock:
        result = RunResult(list_id=cfg.id, kind=kind, started_at=ctx.clock())
        run = ListRun(ctx, cfg, result, lock, floor=ctx.db.runs.latest_moment())
        _check_due(run, min_gap)
        # Whoever left a run open has died: we hold the list now.
        ctx.db.runs.fail_stale_runs(cfg.id, result.started_at)
        _record(run, allow_mass_removal=allow_mass_removal, full=full, rename_trait=rename_trait)
    return result


def _check_due(run: ListRun, min_gap: timedelta | None) -> None:
    """Skip the run when the list's last completed run started less than `min_gap` ago.

    A start further in our future than hosts' clocks drift apart means our clock went
    back: that run says nothing about when the list is due, so it runs, and says so.
    """
    if min_gap is None:
        return
    last = run.ctx.db.runs.last_started(run.cfg.id)
    if last is None:
        return
    ago = run.result.started_at - last
    if ago < -_CLOCK_SKEW:
        log.warning(
            "list %s: its last run is recorded as starting %.0fs in the future "
            "(the clock went back?); running it now",
            run.cfg.id,
            -ago.total_seconds(),
        )
    elif ago < min_gap:
        raise RanRecentlyError(
            f"list {run.cfg.id}: a run started {ago.total_seconds():.0f}s ago; not due yet"
        )


def _record(run: ListRun, *, allow_mass_removal: bool, full: bool, rename_trait: bool) -> None:
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
    result.full_scan = all(spec.full for spec in specs)
    result.run_id = ctx.db.runs.start_run(
        cfg.id, result.kind, result.started_at, full_scan=result.full_scan
    )
    with log_context(list_id=cfg.id, run_id=result.run_id or None):
        try:
            _check_trait(run, rename=rename_trait)
            run.retired = ctx.db.traits.recorded(cfg.id)[1]
            _run(run, specs=specs, state=state, allow_mass_removal=allow_mass_removal)
        except Exception as exc:
            # One list's failure is recorded for it; the caller goes on with the others.
            _failed(run, exc)
        except BaseException as exc:
            _failed(run, exc)
            raise
        finally:
            _finish(run)


def _failed(run: ListRun, exc: BaseException) -> None:
    """The run failed: one line, without SQL or contacts' data, stored and logged."""
    result = run.result
    result.status, result.error = RunStatus.FAILED, describe_error(exc)
    result.exit_code = exc.exit_code if isinstance(exc, ListrakSourceError) else EXIT_FAILED
    log.error("list %s: run failed: %s", run.cfg.id, result.error)


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
    """Record a new list's trait; refuse a renamed one unless the rename was confirmed;
    refuse either where another list carries or still removes the name (trait_claims)."""
    traits, cfg = run.ctx.db.traits, run.cfg
    recorded, _ = traits.recorded(cfg.id)
    check = functools.partial(refuse_clash, cfg)
    if recorded is None:
        traits.adopt(cfg.id, cfg.trait_name, check)
        return
    problem = trait_mismatch(cfg, recorded)
    if problem is None:
        return
    if not rename:
        raise TraitRenamedError(problem)
    count = traits.rename(cfg.id, cfg.trait_name, run.detected(), run.ctx.new_id, check)
    run.result.add_note(f"trait {recorded} renamed {cfg.trait_name}: {count} subscriber(s) re-sent")
    log.info("list %s: %s", cfg.id, run.result.note)


def _run(
    run: ListRun, *, specs: tuple[ScanSpec, ...], state: ListState, allow_mass_removal: bool
) -> None:
    result = run.result
    courier = _courier(run)
    try:
        complete, newest = _scan_and_confirm(run, specs, state, allow_mass_removal)
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
        run.ctx.db.members.requeue_all(run.cfg.id, run.detected(), run.ctx.new_id)
    if result.kind == RunKind.BASELINE:
        # Adopts only what Segment never heard of from us; every other change goes out.
        run.ctx.db.outbox.adopt_all(run.cfg.id)
    if courier is not None and courier.outage is not None:
        # Segment failed during the scan: label what the sweep added, try again next run.
        stop_for_outage(run, courier.outage, run.ctx.clock())
    else:
        deliver(run)
        run.ctx.db.members.vacuum_after_growth(run.cfg.id, run.result.run_id)
    run.ctx.db.traits.retire_done(run.cfg.id)


def _courier(run: ListRun) -> Courier[Pending] | None:
    """A sync delivers each page's changes while it scans the next; other kinds after."""
    if run.result.kind != RunKind.SYNC:
        return None
    ctx, cfg = run.ctx, run.cfg

    def send(rows: list[Pending]) -> Delivery:
        # Old traits a rename still removes go with every message, as in deliver().
        return ctx.emitter.deliver(rows, cfg.trait_name, run.retired)

    courier = Courier(run, send, ctx.db.outbox, records_answers=ctx.db.writes_in_parallel)

    def stored(changes: list[Change], detected_at: datetime) -> None:
        courier.page(_pending(cfg.id, changes, detected_at))

    run.on_stored, run.posting, run.handed = stored, courier.taking, courier.handed
    return courier


def _pending(list_id: int, changes: list[Change], detected_at: datetime) -> list[Pending]:
    """A committed page's changes that carry a message, as the outbox's due rows."""
    return [
        Pending(list_id, c.key, c.email, c.subscribed, c.user_id, c.message_id, detected_at)
        for c in changes
        if c.message_id is not None
    ]


def _scan_and_confirm(
    run: ListRun, specs: tuple[ScanSpec, ...], state: ListState, allow_mass_removal: bool
) -> tuple[bool, datetime | None]:
    members = run.ctx.db.members
    try:
        complete, newest = scan(run, specs)
        # Recognizing contacts by digest served the planned passes; what follows needs only
        # the keys the scan saw, so the table goes before they run.
        members.forget_digests(run.cfg.id)
        if complete and run.result.full_scan:
            # The confirmation and delivery that follow read the whole list; a full scan
            # is when the list's size may have changed enough to matter to the planner.
            first = state.last_full_run is None
            members.refresh_statistics_after_scan(run.cfg.id, run.result.run_id, first=first)
            confirm_unseen(run, state, allow_mass_removal=allow_mass_removal)
        elif complete:
            still_waiting(run)
        else:
            seen_since_missed(run)
    except ListrakError as exc:
        log.error("list %s: scan failed, nothing swept: %s", run.cfg.id, exc)
        seen_since_missed(run)
        run.result.status, run.result.error = RunStatus.FAILED, str(exc)
        run.result.exit_code = exc.exit_code
        return False, None
    return complete, newest


def _advance(run: ListRun, state: ListState, newest: datetime | None) -> None:
    """After a complete scan: move the high-water mark, and note a full scan that swept."""
    result = run.result
    mark = next_mark(state.high_water_mark, newest, latest=latest_usable(result.started_at))
    if run.held_by_rename:
        mark = state.high_water_mark  # the next poll reads the held contact again
    # A held or stopped sweep did not finish the full scan's job, so the next run scans
    # fully again; it still counts as a full scan that missed whom it did not see.
    swept = result.full_scan and result.status not in (RunStatus.HELD, RunStatus.STOPPED)
    last_full = result.started_at if swept else state.last_full_scan_at
    last_run = result.run_id if result.full_scan else state.last_full_run
    run.ctx.db.runs.save_list_state(run.cfg.id, ListState(last_full, mark, last_run))


def _finish(run: ListRun) -> None:
    result = run.result
    # The keys the scan saw served its sweep; a sync of many lists holds one set at a time.
    run.ctx.db.members.end_scan(run.cfg.id)
    finished = result.finished_at = run.ctx.clock()
    try:
        _close(run, finished)
    except Exception:
        if result.status != RunStatus.FAILED:
            raise
        # Closing a failed run can fail the same way (a full disk): the first error stands.
        log.debug("list %s: the failed run could not be closed", run.cfg.id)


def _close(run: ListRun, finished: datetime) -> None:
    """Record the run's outcome, with what it left waiting."""
    ctx, result = run.ctx, run.result
    result.pending, result.dead = ctx.db.runs.backlog(run.cfg.id)
    result.waiting = ctx.db.runs.waiting(run.cfg.id) if result.pending else []
    _conclude(result)
    ctx.db.runs.finish_run(
        result.run_id,
        result.status,
        finished,
        result.counts(),
        result.error,
        note=result.note,
        last_stamp=run.last_stamp,
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
    if result.unconfirmed:
        scan = "this full scan" if result.full_scan else "the last full scan"
        parts.append(
            f"{result.unconfirmed} subscriber(s) not seen by {scan} and not reported "
            "unsubscribed: removed if the next full scan misses them too"
        )
    return "; ".join(parts)
