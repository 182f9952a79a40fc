"""One list's activity pass: lock, unsubscribes, open messages newest first, deliver, record.

A sync re-reads every message sent within `[activity] window` while its rows can still
change, within `[activity] max_requests`: what the budget leaves goes first on the next
pass, so latency degrades and correctness never does. A backfill reads every message since
a date and sends its facts with their own times; a baseline records the same facts as sent.
"""

from __future__ import annotations

import logging
from datetime import datetime
from operator import attrgetter

from ..config import ListSettings
from ..delivery.context import ListRun, RunContext
from ..delivery.courier import Courier
from ..delivery.deliver import drain, stop_for_outage
from ..errors import EXIT_FAILED, ListrakError, ListrakSourceError, describe_error
from ..logs import log_context
from ..records import Delivery, RunKind, RunResult, RunStatus
from ..tracking.dates import zone
from ..tracking.ids import key_hash
from ..tracking.messages import track_message
from ..tracking.records import ActivityOutcome, ListPass, TrackEvent
from .read import discover, list_common, read_message, read_unsubscribes
from .source import ActivitySource, BudgetSpent, Mode, Pass

log = logging.getLogger(__name__)


def activity_pass(
    ctx: RunContext, cfg: ListSettings, *, mode: Mode = Mode.SYNC, since: datetime | None = None
) -> ActivityOutcome:
    """Run one list's pass under its lock; the outcome says what was done and what waits."""
    outcome = ActivityOutcome(cfg.id)
    source = ctx.listrak
    if not isinstance(source, ActivitySource):
        raise TypeError("the Listrak adapter cannot read activity")
    with ctx.db.locks.hold(cfg.id, ctx.holder) as lock, log_context(list_id=cfg.id):
        now = ctx.clock()
        run = ListRun(ctx, cfg, RunResult(cfg.id, RunKind.SYNC, now), lock)
        start = since if since is not None else now - ctx.settings.activity.window
        secret = ctx.settings.segment.write_key.get_secret_value()
        p = Pass(
            run, source, mode, start, zone(ctx.settings.listrak.timezone), key_hash(secret), outcome
        )
        _run(p)
    return outcome


def _run(p: Pass) -> None:
    mark = p.ctx.db.activity.list_pass(p.cfg.id).unsub_mark
    p.courier = _courier(p)
    try:
        p.common = list_common(p)
        mark = read_unsubscribes(p, mark)
        _read_messages(p)
    except BudgetSpent:
        # The budget, or a stop, ended the pass: what it did not reach waits for the next,
        # even when that was every message (the list and the unsubscribes took it all).
        _cut_short(p)
    except ListrakError as exc:
        _failed(p, exc)
    except Exception as exc:
        _failed(p, exc)
        raise
    except BaseException:
        _abandon(p)
        raise
    finally:
        try:
            _deliver(p)
        finally:
            _close(p, mark)


def _cut_short(p: Pass) -> None:
    """Partial, saying why when the pass had not yet reached the messages (once it had,
    the line counts the messages left for the next pass)."""
    p.outcome.status = "partial"
    if p.outcome.deferred:
        return
    why = (
        "stopped by a signal"
        if p.ctx.stop.is_set()
        else f"[activity] max_requests ({p.ctx.settings.activity.max_requests}) spent"
    )
    p.outcome.error = f"{why} before the open messages were read; the next pass reads them"


def _read_messages(p: Pass) -> None:
    messages = discover(p)
    if p.mode != Mode.SYNC:
        messages = [m for m in messages if not m.backfilled]
    p.outcome.open_messages = len(messages)
    for n, message in enumerate(messages):
        try:
            read_message(p, message)
        except BudgetSpent:
            p.outcome.deferred = len(messages) - n
            for left in messages[n:]:
                p.ctx.db.activity.message_read(
                    p.cfg.id, left.message_id, read_at=None, clicks_mark=left.clicks_mark
                )
            raise


def _courier(p: Pass) -> Courier[TrackEvent] | None:
    """Each page's new events go to Segment while the pass reads on; a baseline sends none."""
    if p.mode == Mode.BASELINE:
        return None
    emitter = p.ctx.emitter

    def send(events: list[TrackEvent]) -> Delivery:
        return emitter.send((e.message_id, track_message(e)) for e in events)

    return Courier(p.run, send, p.ctx.db.activity)


def _abandon(p: Pass) -> None:
    """The process is going down: posts in hand are not waited for; the ledger keeps the rest."""
    if p.courier is not None:
        p.courier.abandon()
        p.courier = None


def _deliver(p: Pass) -> None:
    """What the courier was handed, then every event still due (earlier passes' too)."""
    courier, p.courier = p.courier, None
    if courier is None:
        return
    courier.finish()
    ledger = p.ctx.db.activity
    if courier.outage is not None:
        # Segment failed during the read: what was recorded after is labelled too.
        stop_for_outage(p.run, courier.outage, p.ctx.clock(), ledger)
        return
    drain(p.run, ledger, courier.send, attrgetter("message_id"))


def _failed(p: Pass, exc: BaseException) -> None:
    outcome = p.outcome
    outcome.status, outcome.error = "failed", describe_error(exc)
    outcome.exit_code = exc.exit_code if isinstance(exc, ListrakSourceError) else EXIT_FAILED
    log.error("list %s: activity pass failed: %s", p.cfg.id, outcome.error)


def _close(p: Pass, mark: str | None) -> None:
    """Count what waits, decide the status, and record the pass."""
    outcome, result = p.outcome, p.run.result
    outcome.delivered, outcome.failed, outcome.outage = (
        result.delivered,
        result.failed,
        result.outage,
    )
    outcome.pending, outcome.dead = p.ctx.db.activity.backlog(p.cfg.id)
    if outcome.status == "running":
        short = outcome.pending or outcome.dead or outcome.deferred
        outcome.status = "partial" if short else "ok"
    if outcome.status == "partial" and outcome.exit_code == 0:
        outcome.exit_code = EXIT_FAILED
    done = ListPass(
        p.cfg.id,
        p.ctx.clock(),
        outcome.status,
        outcome.error or outcome.outage,
        outcome.open_messages,
        outcome.deferred,
        mark,
    )
    p.ctx.db.activity.save_pass(done)
    log.info("list %s: %s", p.cfg.id, outcome.describe(dry_run=p.ctx.dry_run))


def follow_sync(ctx: RunContext, cfg: ListSettings, result: RunResult) -> ActivityOutcome | None:
    """After a list's subscriber run: its activity pass, when the list asks for one.

    The pass's outcome joins the run's: anything short of `ok` makes the run not `ok`, and
    a missing Reporting area is a configuration error (exit status 2). A failing pass never
    touches the subscriber sync, of this list or any other.
    """
    if not cfg.activity or result.kind not in (RunKind.SYNC, RunKind.DRY_RUN):
        return None
    if result.status == RunStatus.SKIPPED:
        return None
    try:
        outcome = activity_pass(ctx, cfg)
    except Exception as exc:
        outcome = ActivityOutcome(cfg.id, status="failed", error=describe_error(exc))
        outcome.exit_code = exc.exit_code if isinstance(exc, ListrakSourceError) else EXIT_FAILED
        log.error("list %s: activity pass failed: %s", cfg.id, outcome.error)
    join(result, outcome)
    return outcome


def join(result: RunResult, outcome: ActivityOutcome) -> None:
    """The activity pass's outcome, told in the run's note and counted in its status."""
    if outcome.status != "failed":
        result.add_note(outcome.describe(dry_run=result.kind == RunKind.DRY_RUN))
    if outcome.status == "ok":
        return
    if result.status == RunStatus.OK:
        result.status = RunStatus.PARTIAL
    if outcome.status == "failed":
        result.error = "; ".join(filter(None, [result.error, f"activity: {outcome.error}"]))
    result.exit_code = max(result.exit_code, outcome.exit_code)
