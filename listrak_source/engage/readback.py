"""What a subscriber scan's view of a profile field means for the value we keep for it.

Listrak applies a bulk import later, and says nothing about what it applied. The scan
reads every subscriber's audience fields anyway, so each stored value is judged against
what Listrak shows: once the import has had `grace` to apply, what Listrak holds is what
was sent. A value Listrak accepted but does not show is pending again.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import NamedTuple


class StoredValue(NamedTuple):
    """A stored value as the read-back needs it."""

    email_key: str
    field_id: int
    desired: bool
    sent: bool | None
    sent_at: datetime | None
    readback: bool | None
    readback_at: datetime | None


class Verdict(NamedTuple):
    """What to write: Listrak holds `observed`, which is now the sent value.

    It was judged against the row's sent value as read; it applies only while the row still
    holds that, since a push in between makes the judgement stale.
    """

    email_key: str
    field_id: int
    observed: bool
    mismatch: bool
    sent: bool | None
    sent_at: datetime | None


def judge(row: StoredValue, observed: bool, now: datetime, grace: timedelta) -> Verdict | None:
    """The row's new read-back state, or None when there is nothing to write."""
    if row.sent_at is not None and row.sent_at > now - grace:
        return None  # the import may not have applied yet
    if row.sent == observed and _verified(row, observed):
        return None
    # Listrak accepted a value it does not show: its import skipped or lost it.
    mismatch = row.sent is not None and row.sent != observed
    return Verdict(row.email_key, row.field_id, observed, mismatch, row.sent, row.sent_at)


def _verified(row: StoredValue, observed: bool) -> bool:
    """A read-back already confirmed this value, after it was last sent."""
    if row.readback != observed or row.readback_at is None:
        return False
    return row.sent_at is None or row.readback_at >= row.sent_at
