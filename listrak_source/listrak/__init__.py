"""Listrak's Email API: the client, its auth, retries and pace, and contact parsing."""

from .client import MAX_FIELD_IDS, MAX_PAGE_SIZE, InvalidSettingError, ListrakClient
from .retry import ClientStats, stoppable_sleep

__all__ = [
    "MAX_FIELD_IDS",
    "MAX_PAGE_SIZE",
    "ClientStats",
    "InvalidSettingError",
    "ListrakClient",
    "stoppable_sleep",
]
