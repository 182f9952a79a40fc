"""Scanning: pages from Listrak become recorded changes, one transaction per page."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from .audiences.records import is_selected
from .context import ListRun
from .diff import diff_page
from .errors import LeaseLostError
from .messages import oversize_reason
from .plan import newest_date
from .readahead import Prefetch
from .records import Kind, Page, PageDiff, PageKeys, Reject, RunResult, ScanSpec, Stored

log = logging.getLogger(__name__)

# Only a profile value this long can push a message near Segment's 32 KB.
_SIZE_CHECK_THRESHOLD = 16 * 1024


def keep_lease(run: ListRun) -> None:
    """Renew the list's lease; if it expired and another worker took it, stop this run."""
    ctx, list_id = run.ctx, run.cfg.id
    if not ctx.db.leases.renew(list_id, ctx.holder, ctx.clock(), ctx.settings.delivery.lease_ttl):
        raise LeaseLostError(
            f"list {list_id}: lost the lease (it expired and another worker took it); stopping"
        )


def scan(run: ListRun, specs: tuple[ScanSpec, ...]) -> tuple[bool, datetime | None]:
    """Store every page of every planned pass; (all passes reached their end, newest date)."""
    newest: datetime | None = None
    for spec in specs:
        complete, newest = _scan_one(run, spec, newest)
        if not complete:
            return False, newest
    return True, newest


def _scan_one(
    run: ListRun, spec: ScanSpec, newest: datetime | None
) -> tuple[bool, datetime | None]:
    ctx, cfg = run.ctx, run.cfg
    audience_fields = ctx.settings.audience_fields(cfg.id)
    field_ids = [cfg.user_id_field] if cfg.user_id_field is not None else []
    pages = ctx.listrak.iter_pages(
        cfg.id,
        subscribed=spec.subscribed,
        field_ids=field_ids + audience_fields,
        page_size=ctx.settings.listrak.page_size,
        start_date=spec.start_date,
        use_original_subscribe_date=spec.use_original_subscribe_date,
    )
    with Prefetch(pages, name=f"listrak-list-{cfg.id}") as ahead:
        for page in ahead:
            _store_page(run, page)
            if audience_fields:
                _read_back(run, page, audience_fields)
            newest = newest_date(page.contacts, newest)
            if ctx.stop.is_set():
                log.info("list %s: stopping after this page; the scan is incomplete", cfg.id)
                return False, newest
    return True, newest


def _store_page(run: ListRun, page: Page) -> None:
    ctx, cfg, result = run.ctx, run.cfg, run.result

    def differ(stored: Mapping[str, Stored]) -> PageDiff:
        diff = diff_page(
            page.contacts,
            stored,
            user_id_field=cfg.user_id_field,
            run_id=result.run_id,
            new_id=ctx.new_id,
        )
        diff.rejects[:0] = page.rejects
        _drop_oversize(diff, cfg.trait_name)
        return diff

    diff = ctx.db.members.save_page(
        cfg.id, result.run_id, PageKeys.of(page.contacts), differ, ctx.clock()
    )
    result.scanned += len(page.contacts) + len(page.rejects)
    result.rejected += len(diff.rejects)
    for change in diff.changes:
        _count_change(result, change.kind)
    for reject in diff.rejects:
        log.warning("list %s: skipped contact %s: %s", cfg.id, reject.email or "?", reject.reason)
    keep_lease(run)
    run.progress("scanned", result.scanned)


def _read_back(run: ListRun, page: Page, fields: list[int]) -> None:
    """Judge the audience values kept for these subscribers by what Listrak shows for them."""
    ctx, cfg = run.ctx, run.cfg
    observed = [
        (c.key, {f: is_selected(c.fields.get(f)) for f in fields})
        for c in page.contacts
        if c.subscribed
    ]
    found = ctx.db.audiences.read_back(cfg.id, observed, ctx.clock(), ctx.settings.push.apply_grace)
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
