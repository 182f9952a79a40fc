"""After a complete full scan, only subscribers Listrak confirms are gone lose their trait.

Listrak's cursor semantics are unknown: if a list changes while it is read, its pages may
shift and a subscriber who never left may go unserved. So a subscriber a full scan did not
see is confirmed before it is removed. Up to `delivery.confirm_unseen_max` of them are read
one by one: Listrak's own "no such contact", or an Unsubscribed one, confirms; a Subscribed
one is kept, and a read Listrak refuses says nothing (ListrakClient.get_contact).
When more are unseen, an Unsubscribed scan since the last full scan first removes those it
reports, and the rest are read if few enough remain. Those still unseen (too many to read,
or read without an answer) are removed only once two consecutive full scans have missed
them. The mass-removal guard judges those removed for being gone; an
Unsubscribed contact, read or reported, is a subscriber's own no, and goes out as any does.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, timedelta

from ..delivery.context import ListRun
from ..errors import ListrakError, StopRequested
from ..records import Contact, ListState, Page, Reject, RunStatus, ScanSpec
from .diff import removal_ratio
from .scan import scan_pass, store_page

log = logging.getLogger(__name__)

_ANOTHER_ADDRESS = "Listrak answered a read of this contact with another address"
# An Unsubscribed scan must start before the last full scan in Listrak's own clock, whose
# zone is unconfirmed: no zone is more than 12 hours behind UTC, and an hour covers skew.
_ZONE_BEHIND = timedelta(hours=13)


def confirm_unseen(run: ListRun, state: ListState, *, allow_mass_removal: bool) -> None:
    """Remove the subscribers this full scan missed that Listrak confirms are gone.

    A stop signal ends the confirmation: what was read is stored, nobody is removed for
    being unseen, and the run is `stopped`; what it stored is still delivered. Whoever is
    still unseen then, or when the run is held, is noted as missed by this full scan, as
    those left for the next one are: runs until then say they wait (`still_waiting`).
    """
    try:
        _confirm(run, state, allow_mass_removal=allow_mass_removal)
    except ListrakError:
        # The run fails; whom the complete scan missed still wait for the next full scan.
        run.ctx.db.members.mark_missed(run.cfg.id, run.result.run_id)
        raise
    except StopRequested:
        log.info("list %s: stopped while confirming unseen subscribers", run.cfg.id)
        run.ctx.db.members.mark_missed(run.cfg.id, run.result.run_id)
        run.result.status = RunStatus.STOPPED
        run.result.error = (
            "stopped by a signal while confirming unseen subscribers; nobody was removed "
            "for being unseen"
        )


def _confirm(run: ListRun, state: ListState, *, allow_mass_removal: bool) -> None:
    members, list_id, run_id = run.ctx.db.members, run.cfg.id, run.result.run_id
    limit = run.ctx.settings.delivery.confirm_unseen_max
    unseen, _ = members.count_unseen(list_id, run_id)
    reported = unseen > limit
    if reported:
        _scan_unsubscribes(run, state)
        unseen, _ = members.count_unseen(list_id, run_id)
    if not unseen:
        return
    if unseen <= limit:
        report = None if reported else functools.partial(_scan_unsubscribes, run, state)
        gone = _read_one_by_one(run, limit, report)
        if gone:
            _remove(run, allow_mass_removal, keys=gone)
        if run.result.status == RunStatus.HELD:
            members.mark_missed(list_id, run_id)
            return
        # Those whose reads said nothing are unseen still, as if too many to read.
        unseen, _ = members.count_unseen(list_id, run_id)
        if not unseen:
            return
    if state.last_full_run is not None:
        _remove(run, allow_mass_removal, missed_by=state.last_full_run)
    _defer(run, allow_mass_removal)


def still_waiting(run: ListRun) -> None:
    """Between full scans: the subscribers the last full scan did not see and left for the
    next one (`_defer`, held or not) still wait, so a run that cannot see them is not `ok`
    either. Only counted after a full scan that was not `ok`, the one kind that may have
    left some."""
    last = seen_since_missed(run)
    if last is not None:
        members, list_id, run_id = run.ctx.db.members, run.cfg.id, run.result.run_id
        run.result.unconfirmed, _ = members.count_unseen(list_id, run_id, missed_by=last)


def seen_since_missed(run: ListRun) -> int | None:
    """After a scan that did not complete a full scan's job: whom it saw of those the last
    full scan missed were listed since, so the next full scan's miss is their first. The
    last full run, where it may have left subscribers unseen (see `_left_unseen_by`)."""
    last = _left_unseen_by(run)
    if last is not None:
        run.ctx.db.members.unmark_seen(run.cfg.id, run.result.run_id, missed_by=last)
    return last


def _left_unseen_by(run: ListRun) -> int | None:
    """The list's last full run, where it may have left subscribers unseen: it was not
    `ok` (one that failed after its scan completed is not the state's last full run)."""
    last = run.ctx.db.runs.last_full(run.cfg.id, before=run.result.run_id)
    return None if last is None or last[1] == RunStatus.OK else last[0]


def _scan_unsubscribes(run: ListRun, state: ListState) -> None:
    """Positive facts first: whoever Listrak reports unsubscribed since the last full scan."""
    since = (state.last_full_scan_at or run.result.started_at).astimezone(UTC)
    start = since.replace(tzinfo=None) - _ZONE_BEHIND
    if not scan_pass(run, ScanSpec(subscribed=False, start_date=start)) and run.ctx.stop.is_set():
        raise StopRequested("stopped during the scan of unsubscribes")


def _read_one_by_one(
    run: ListRun, limit: int, report: Callable[[], None] | None = None
) -> list[str]:
    """Ask Listrak for each unseen subscriber; return the keys it has no contact for.

    Subscribed answers are seen now; Unsubscribed ones are removed by the diff, as any
    unsubscribe is. An unreadable answer says nothing of the subscriber, nor does one
    about another address or a read Listrak refused: Listrak's `report` of unsubscribes,
    where it was not read yet, is asked then, and removes whom it names; the others stay
    unseen, skipped, so that two full scans missing them settle them as any unseen
    subscriber is. The report is the newer fact: an answer about someone it removed is
    dropped. What was read before a stop signal is stored too.
    """
    read = Page([], [], None)
    gone: list[str] = []
    try:
        _read_each(run, limit, read, gone)
        if read.rejects and report is not None:
            try:
                report()
            finally:
                _keep_unseen(run, read, limit)
    except StopRequested:
        store_page(run, read, on_list=False)
        raise
    store_page(run, read, on_list=False)
    return gone


def _keep_unseen(run: ListRun, read: Page, limit: int) -> None:
    """Keep the answers about subscribers still unseen (at most `limit` are), and skipped
    answers that name nobody: the report removed the others. Only the answered keys' rows
    are read."""
    asked = [c.key for c in read.contacts] + [r.email.lower() for r in read.rejects if r.email]
    unseen = run.ctx.db.members.unseen(run.cfg.id, run.result.run_id, limit, keys=asked)
    keys = {key for key, _ in unseen}
    read.contacts[:] = [c for c in read.contacts if c.key in keys]
    read.rejects[:] = [r for r in read.rejects if r.email is None or r.email.lower() in keys]


def _read_each(run: ListRun, limit: int, read: Page, gone: list[str]) -> None:
    ctx, cfg = run.ctx, run.cfg
    field_ids = [cfg.user_id_field] if cfg.user_id_field is not None else []
    for key, email in ctx.db.members.unseen(cfg.id, run.result.run_id, limit):
        if ctx.stop.is_set():
            raise StopRequested("stopped while confirming unseen subscribers")
        found = ctx.listrak.get_contact(cfg.id, email, field_ids=field_ids)
        if found is None:
            gone.append(key)
        elif _named(found) not in (None, key):
            read.rejects.append(Reject(reason=_ANOTHER_ADDRESS, email=email))
        elif isinstance(found, Contact):
            read.contacts.append(found)
        else:  # unreadable: about the address asked, where it names none
            read.rejects.append(found if found.email else dataclasses.replace(found, email=email))
        run.lock.verify()


def _named(found: Contact | Reject) -> str | None:
    """The key of the address an answer is about, where it names one."""
    email = found.email
    return None if email is None else email.lower()


def _remove(
    run: ListRun,
    allow_mass_removal: bool,
    *,
    keys: Sequence[str] | None = None,
    missed_by: int | None = None,
) -> None:
    """Remove the confirmed (these keys, or missed by that full scan too), unless too many."""
    ctx, cfg, result = run.ctx, run.cfg, run.result
    members, list_id, run_id = ctx.db.members, cfg.id, result.run_id
    confirmed, total = members.count_unseen(list_id, run_id, keys=keys, missed_by=missed_by)
    if not confirmed:
        return
    ratio = removal_ratio(confirmed, total)
    limit = ctx.settings.delivery.max_removal_ratio
    if ratio > limit and not allow_mass_removal:
        _hold(run, f"the scan would remove {confirmed} of {total} subscribers ({ratio:.0%}, "
              f"over max_removal_ratio {limit:.0%}); nothing removed")  # fmt: skip
        return
    result.unsubscribed += members.remove_unseen(
        list_id, run_id, run.detected(), ctx.new_id, keys=keys, missed_by=missed_by
    )


def _defer(run: ListRun, allow_mass_removal: bool) -> None:
    """Too many to read one by one, or read without an answer: the next full scan decides
    about those still unseen.

    Nothing is removed yet, so the run is not `ok`: it is `partial`, saying how many wait
    and until when; and a scan that no longer sees most of a list is news on first sight:
    it is held, so that someone looks before the next one removes them.
    """
    ctx, cfg, result = run.ctx, run.cfg, run.result
    missed = ctx.db.members.mark_missed(cfg.id, result.run_id)
    if not missed or result.status == RunStatus.HELD:
        return
    _, total = ctx.db.members.count_unseen(cfg.id, result.run_id)
    ratio, limit = removal_ratio(missed, total), ctx.settings.delivery.max_removal_ratio
    if ratio > limit and not allow_mass_removal:
        _hold(run, f"this full scan did not see {missed} of {total} subscribers ({ratio:.0%}, "
              f"over max_removal_ratio {limit:.0%}) and Listrak reported none of them "
              "unsubscribed; nothing removed, and a next full scan that misses them too is "
              "held as well")  # fmt: skip
        return
    result.unconfirmed = missed


def _hold(run: ListRun, why: str) -> None:
    """The run is held: nothing removed, and how to remove them if Listrak is right."""
    run.result.status = RunStatus.HELD
    run.result.error = (
        f"list {run.cfg.id}: {why}. If Listrak is right, run: "
        f"listrak-source sync --list {run.cfg.id} --allow-mass-removal"
    )
    log.error("%s", run.result.error)
