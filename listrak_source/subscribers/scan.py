"""Scanning: pages from Listrak become recorded changes, one transaction per page."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime

from ..delivery.context import ListRun, PageSource
from ..engage.records import is_selected
from ..errors import ListrakError, ListrakProtocolError, StopRequested
from ..messages import MAX_MESSAGE_BYTES, oversize_reason
from ..privacy import contact_ref
from ..records import (
    Change,
    Contact,
    Kind,
    Page,
    PageDiff,
    PageKeys,
    RawPage,
    Reject,
    RunResult,
    ScanSpec,
    Stored,
)
from .diff import diff_page
from .plan import future_dated, latest_usable, newest_date
from .readahead import Prefetch

log = logging.getLogger(__name__)

# On the wire JSON escapes each character beyond ASCII as \uXXXX, and one beyond the
# Basic Multilingual Plane as two of them: 12 bytes at most for one character. Beside the
# values and names, a message holds less than this (keys, stamp, message id, a null for
# each old name). Only values whose characters could reach Segment's limit are measured.
_WIRE_BYTES_PER_CHAR = 12
_FIXED_BYTES = 1024


def scan(run: ListRun, specs: tuple[ScanSpec, ...]) -> tuple[bool, datetime | None]:
    """Store every page of every planned pass; (all passes reached their end, newest date)."""
    newest: datetime | None = None
    latest = latest_usable(run.result.started_at)
    try:
        for spec in specs:
            complete, newest = _scan_one(run, spec, newest, latest)
            if not complete:
                return False, newest
        return True, newest
    finally:
        _note_future_dates(run, latest)


def scan_pass(run: ListRun, spec: ScanSpec) -> bool:
    """One more pass after the planned ones (its dates move no mark); True if it ended."""
    complete, _ = _scan_one(run, spec, None, latest_usable(run.result.started_at))
    return complete


def _scan_one(
    run: ListRun, spec: ScanSpec, newest: datetime | None, latest: datetime
) -> tuple[bool, datetime | None]:
    # A page that wrote nothing checked no lock (see store_page), and what follows a pass
    # writes: the sweep, the delivery of what was due, the run's record; so does what
    # follows a pass that Listrak failed.
    try:
        complete, newest = _read_pass(run, spec, newest, latest)
    except ListrakError:
        run.lock.verify()
        raise
    run.lock.verify()
    return complete, newest


def _read_pass(
    run: ListRun, spec: ScanSpec, newest: datetime | None, latest: datetime
) -> tuple[bool, datetime | None]:
    ctx, cfg = run.ctx, run.cfg
    ctx.db.members.begin_pass(cfg.id, run.result.run_id)
    audience_fields = ctx.settings.audience_fields(cfg.id)
    field_ids = [cfg.user_id_field] if cfg.user_id_field is not None else []
    pages = ctx.listrak.iter_raw_pages(
        cfg.id,
        subscribed=spec.subscribed,
        field_ids=field_ids + audience_fields,
        page_size=ctx.settings.listrak.page_size,
        start_date=spec.start_date,
        use_original_subscribe_date=spec.use_original_subscribe_date,
    )
    # The reader's next request goes out as soon as it has a page's cursor; it prepares a
    # page itself only while the scan is behind, and the scan prepares the rest. The
    # audience read-back judges every subscriber's values, so it recognizes no contact.
    context = None if audience_fields else f"user id field {cfg.user_id_field}"
    recognizing = functools.partial(ctx.db.members.recognizes, cfg.id, run.result.run_id)
    prepare = functools.partial(_prepared, ctx.listrak, context, recognizing)
    name = f"listrak-list-{cfg.id}"
    # A pass over the whole list recognizes contacts from its first page, unless the list
    # has no mark: its first pages are then decoded, and their dates set one.
    if spec.full and not spec.learns_mark:
        ctx.db.members.whole_pass(cfg.id, run.result.run_id)
    with Prefetch[RawPage | Page](pages, name=name, stop=ctx.stop, ripen=prepare) as ahead:
        if spec.full:  # once the first request is on its way
            _read_rows_ahead(run, recognizing=context is not None)
        try:
            for item in map(prepare, ahead):
                page, recognized = _taken(run, item, latest)
                store_page(
                    run,
                    page,
                    on_list=spec.subscribed,
                    recognized=recognized,
                    recognizing=context is not None,
                )
                if audience_fields:
                    run.lock.verify()
                    _read_back(run, page, audience_fields)
                newest = newest_date(page.contacts, newest, latest=latest)
                if spec.learns_mark and newest is None:
                    ctx.db.members.decode_next(cfg.id, run.result.run_id)
                _count_future_dates(run, page.contacts, latest)
                if ctx.stop.is_set():
                    log.info("list %s: stopping after this page; the scan is incomplete", cfg.id)
                    return False, newest
        except StopRequested:
            log.info("list %s: stopped waiting for a page; the scan is incomplete", cfg.id)
            return False, newest
    return True, newest


def _read_rows_ahead(run: ListRun, *, recognizing: bool) -> None:
    """On a pass over the whole list, begin reading the rows its contacts are recognized
    by beside its first request (Members.read_ahead)."""
    cfg = run.cfg
    user_ids = cfg.user_id_field is not None
    members = run.ctx.db.members
    members.read_ahead(cfg.id, run.result.run_id, user_ids=user_ids, digests=recognizing)


def _prepared(
    listrak: PageSource,
    context: str | None,
    recognizing: Callable[[], bool],
    item: RawPage | Page,
) -> RawPage | Page:
    """The page with its contacts checked, each with its digest when the page was split
    into pieces and a `context` names what else its digests stand for; or, while the scan
    recognizes contacts, with only their digests counted. Whichever thread gets to it first
    does this: the reader does while the scan is behind, beside the scan's own time outside
    the GIL."""
    if isinstance(item, Page):
        return item
    if context is None or item.pieces is None:
        return listrak.parse(item)
    listrak.digest(item, context)
    if recognizing():
        return item
    # Nothing to recognize yet (a scan's first pages, a first sync): decoded here.
    page = listrak.parse_unknown(item, [0] * item.size)
    if page is None:
        return listrak.parse(item)
    item.release()
    return page


def _taken(run: ListRun, item: RawPage | Page, latest: datetime) -> tuple[Page, list[int]]:
    """The page's contacts to store, and the key hashes of those recognized unchanged."""
    if isinstance(item, Page):
        return _unstamped_future(item, latest), []
    try:
        page, recognized = _recognized(run, item)
    finally:
        item.release()
    return _unstamped_future(page, latest), recognized


def _recognized(run: ListRun, item: RawPage) -> tuple[Page, list[int]]:
    cfg, members, run_id = run.cfg, run.ctx.db.members, run.result.run_id
    assert item.digests is not None  # counted by _prepared
    user_ids = cfg.user_id_field is not None
    known = members.recognize(cfg.id, run_id, item.digests, user_ids=user_ids)
    codes_of = functools.partial(members.codes_of, cfg.id, run_id)
    take = functools.partial(members.take, cfg.id, run_id)
    return recognized_page(run.ctx.listrak, item, known, codes_of, take)


def recognized_page(
    listrak: PageSource,
    item: RawPage,
    known: Sequence[int],
    codes_of: Callable[[Sequence[str]], Sequence[int]],
    take: Callable[[Sequence[int]], Sequence[bool]],
) -> tuple[Page, list[int]]:
    """The page's contacts not `known` (by their digests: see Members.recognize), decoded
    and checked, and the key hashes of the known ones, which count as seen, unchanged.

    A known contact whose key the page also holds in other bytes is decoded after all, so
    the diff refuses the second of the two as it would have; `codes_of` hashes keys as
    `known` holds them. So is one whose key the scan saw before, which `take` (counting
    the others as seen) finds.
    """
    page = listrak.parse_unknown(item, known)
    if page is None or not any(known):
        return (listrak.parse(item), []) if page is None else (page, [])
    keys = [c.key for c in page.contacts] + [r.email.lower() for r in page.rejects if r.email]
    clash = set(known) & set(codes_of(keys))
    if clash:
        known = [0 if code in clash else code for code in known]
    recognized = [code for code in known if code]
    new = take(recognized)
    if clash or not all(new):
        seen_before = {code for code, fresh in zip(recognized, new, strict=True) if not fresh}
        known = [0 if code in seen_before else code for code in known]
        recognized = [code for code in known if code]
        page = listrak.parse_unknown(item, known)
        if page is None:
            # A piece recognized by its digest decoded whole when the digest was stored: only
            # two contacts sharing a 64-bit digest get here, and their keys count as seen.
            raise ListrakProtocolError("a page's contacts no longer decode as they did")
    return page, recognized


def _unstamped_future(page: Page, latest: datetime) -> Page:
    """Contacts with dates yet to come keep no digest: they are decoded at every scan, so
    their dates are reported for as long as they are wrong."""
    future = {id(c) for c in future_dated(page.contacts, latest)}
    if not future:
        return page
    contacts = [c._replace(digest=None) if id(c) in future else c for c in page.contacts]
    return Page(contacts, page.rejects, page.next_cursor)


def _count_future_dates(run: ListRun, contacts: Sequence[Contact], latest: datetime) -> None:
    future = future_dated(contacts, latest)
    if future and run.first_future is None:
        run.first_future = future[0]
    run.result.future_dated += len(future)


def _note_future_dates(run: ListRun, latest: datetime) -> None:
    """Dates yet to come would blind incremental polling; say so, naming no address."""
    example, count = run.first_future, run.result.future_dated
    if example is None:
        return
    when = newest_date([example], None, latest=datetime.max)
    note = (
        f"{count} contact(s) carry dates after Listrak's now ({latest:%Y-%m-%dT%H:%M:%S} "
        "US Eastern), such as "
        f"{when:%Y-%m-%dT%H:%M:%S} (contact {contact_ref(example.email)}): "
        "synced, but those dates do not move the high-water mark; correct them in Listrak"
    )
    run.result.add_note(note)
    log.warning("list %s: %s", run.cfg.id, note)


def store_page(
    run: ListRun,
    page: Page,
    *,
    on_list: bool,
    recognized: Sequence[int] = (),
    recognizing: bool = False,
) -> None:
    """Store one page; `on_list`: a Subscribed scan returned it, so all of it is on the list;
    `recognized`: the key hashes of its contacts known unchanged without being decoded (the
    scan counted them as seen when it took them), by a scan that is `recognizing` contacts
    by their digests."""
    ctx, cfg, result = run.ctx, run.cfg, run.result

    def differ(stored: Mapping[str, Stored], same: Collection[str]) -> PageDiff:
        contacts = [c for c in page.contacts if c.key not in same] if same else page.contacts
        diff = diff_page(
            contacts,
            stored,
            user_id_field=cfg.user_id_field,
            run_id=result.run_id,
            new_id=ctx.new_id,
        )
        diff.rejects[:0] = page.rejects
        if _drop_oversize(diff, cfg.trait_name, run.retired):
            run.held_by_rename = True
        return diff

    # A run whose lock has gone writes nothing more: another worker may hold the list now.
    # The page's writes are made only while the lock is held (on PostgreSQL checked in
    # their own statement, which saves a round trip a page). A page that writes nothing
    # (most of a re-sync's) needs no check, unless the courier holds earlier pages'
    # messages (it would post them, and record Segment's answers, while the scan went on)
    # or the lock's session is due a word (HeldLock.due).
    detected_at = run.detected()
    keys = PageKeys.of(
        page.contacts, page.rejects if on_list else (), user_id_field=cfg.user_id_field
    )
    diff = ctx.db.members.save_page(
        cfg.id,
        result.run_id,
        keys,
        differ,
        detected_at,
        posting=run.posting(),
        recognizing=recognizing,
        lock=run.lock,
        verify_unwritten=run.handed(),
    )
    if run.on_stored is not None:
        run.on_stored(diff.changes, detected_at)
    result.scanned += len(page.contacts) + len(page.rejects) + len(recognized)
    result.rejected += len(diff.rejects)
    for change in diff.changes:
        _count_change(result, change.kind)
    for reject in diff.rejects:
        who = contact_ref(reject.email) if reject.email else "without a usable address"
        log.warning("list %s: skipped contact %s: %s", cfg.id, who, reject.reason)
    run.progress("scanned", result.scanned)


def _read_back(run: ListRun, page: Page, fields: list[int]) -> None:
    """Judge the audience values kept for these subscribers by what Listrak shows for them."""
    ctx, cfg = run.ctx, run.cfg
    observed = [
        (c.key, {f: is_selected(c.fields.get(f)) for f in fields})
        for c in page.contacts
        if c.subscribed
    ]
    push = ctx.settings.push
    found = ctx.db.audiences.read_back(
        cfg.id, observed, ctx.clock(), push.apply_grace, push.max_mismatches
    )
    if found:
        log.warning(
            "list %s: %d audience value(s) not applied by Listrak; pending again", cfg.id, found
        )


def _count_change(result: RunResult, kind: Kind) -> None:
    if kind is Kind.SUBSCRIBED:
        result.subscribed += 1
    elif kind is Kind.UNSUBSCRIBED:
        result.unsubscribed += 1
    else:
        result.user_id_changed += 1


def _drop_oversize(diff: PageDiff, trait: str, retired: Sequence[str]) -> bool:
    """A new `true` whose message Segment would refuse becomes a reject; the contact stays
    seen. A removal always goes to delivery: it is no larger than the `true` Segment took
    (its userId is the one sent then), and delivery measures it exactly. True when one was
    refused only for the nulls of a rename's old names: it fits once they are forgotten."""
    kept, held = [], False
    for change in diff.changes:
        reason = None if not change.subscribed else _oversize(change, trait, retired)
        if reason is None:
            kept.append(change)
            continue
        diff.rejects.append(Reject(reason=reason, email=change.email))
        held = held or _oversize(change, trait, ()) is None
    diff.changes = kept
    return held


def _oversize(change: Change, trait: str, retired: Sequence[str]) -> str | None:
    # The address goes out twice: as anonymousId and as traits.email.
    names = len(trait) + sum(map(len, retired))
    chars = 2 * len(change.email) + len(change.user_id or "") + names
    if chars * _WIRE_BYTES_PER_CHAR + _FIXED_BYTES <= MAX_MESSAGE_BYTES:
        return None
    return oversize_reason(change.email, change.user_id, trait, retired)
