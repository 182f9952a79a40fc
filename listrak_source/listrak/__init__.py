"""Listrak's Email API: the client, its auth, retries and pace, contact parsing, dry runs."""

from .client import MAX_FIELD_IDS, MAX_PAGE_SIZE, InvalidSettingError, ListrakClient
from .dry_run import PrintingWriter
from .retry import ClientStats, stoppable_sleep

__all__ = [
    "MAX_FIELD_IDS",
    "MAX_PAGE_SIZE",
    "ClientStats",
    "InvalidSettingError",
    "ListrakClient",
    "PrintingWriter",
    "stoppable_sleep",
]
