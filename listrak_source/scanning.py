"""Scanning: pages from Listrak become recorded changes, one transaction per page."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from ._prefetch import Prefetch
from .config import ListSettings
from .diff import Kind, PageDiff, Stored, diff_page
from .errors import LeaseLostError
from .messages import oversize_reason
from .models import Page, Reject
from .polling import ScanSpec, newest_date
from .runtime import RunResult, Runtime
from .store import PageKeys

log = logging.getLogger(__name__)

# Only a profile value this long can push a message near Segment's 32 KB.
_SIZE_CHECK_THRESHOLD = 16 * 1024


def keep_lease(rt: Runtime, cfg: ListSettings) -> None:
    """Renew the list's lease; if it expired and another worker took it, stop this run."""
    if rt.ledger is None:
        return
    if not rt.ledger.renew(cfg.id, rt.holder, rt.clock(), rt.settings.delivery.lease_ttl):
        raise LeaseLostError(
            f"list {cfg.id}: lost the lease (it expired and another worker took it); stopping"
        )


def scan(
    rt: Runtime, cfg: ListSettings, result: RunResult, specs: tuple[ScanSpec, ...]
) -> tuple[bool, datetime | None]:
    """Store every page of every planned pass; (all passes reached their end, newest date)."""
    newest: datetime | None = None
    for spec in specs:
        complete, newest = _scan_one(rt, cfg, result, spec, newest)
        if not complete:
            return False, newest
    return True, newest


def _scan_one(
    rt: Runtime, cfg: ListSettings, result: RunResult, spec: ScanSpec, newest: datetime | None
) -> tuple[bool, datetime | None]:
    field_ids = [cfg.user_id_field] if cfg.user_id_field is not None else []
    pages = rt.listrak.iter_pages(
        cfg.id,
        subscribed=spec.subscribed,
        field_ids=field_ids,
        page_size=rt.settings.listrak.page_size,
        start_date=spec.start_date,
        use_original_subscribe_date=spec.use_original_subscribe_date,
    )
    with Prefetch(pages, name=f"listrak-list-{cfg.id}") as ahead:
        for page in ahead:
            _store_page(rt, cfg, result, page)
            newest = newest_date(page.contacts, newest)
            if rt.stop.is_set():
                log.info("list %s: stopping after this page; the scan is incomplete", cfg.id)
                return False, newest
    return True, newest


def _store_page(rt: Runtime, cfg: ListSettings, result: RunResult, page: Page) -> None:
    def differ(stored: Mapping[str, Stored]) -> PageDiff:
        diff = diff_page(
            page.contacts,
            stored,
            user_id_field=cfg.user_id_field,
            run_id=result.run_id,
            new_id=rt.new_id,
        )
        diff.rejects[:0] = page.rejects
        _drop_oversize(diff, cfg.trait_name)
        return diff

    diff = rt.store.save_page(cfg.id, result.run_id, PageKeys.of(page.contacts), differ, rt.clock())
    result.scanned += len(page.contacts) + len(page.rejects)
    result.rejected += len(diff.rejects)
    for change in diff.changes:
        _count_change(result, change.kind)
    for reject in diff.rejects:
        log.warning("list %s: skipped contact %s: %s", cfg.id, reject.email or "?", reject.reason)
    keep_lease(rt, cfg)
    if rt.on_progress is not None:
        rt.on_progress("scanned", result.scanned)
    if rt.after_page is not None:
        rt.after_page(result)


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
