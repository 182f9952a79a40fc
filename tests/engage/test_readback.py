"""The read-back's judgement of one stored value against what Listrak shows, as a table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from listrak_source.engage.readback import StoredValue, Verdict, judge
from listrak_source.engage.records import is_selected

NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)
GRACE = timedelta(minutes=10)
OLD = NOW - timedelta(hours=1)
RECENT = NOW - timedelta(minutes=1)


def row(
    desired: bool, sent: bool | None, sent_at: datetime | None = OLD, **kw: object
) -> StoredValue:
    values = {"readback": None, "readback_at": None, **kw}
    return StoredValue("a@x.com", 9, desired, sent, sent_at, **values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("stored", "observed", "written"),
    [
        # Listrak shows what it accepted: verified once, then nothing to write.
        (row(True, True), True, (True, False)),
        (row(True, True, readback=True, readback_at=NOW - timedelta(minutes=30)), True, None),
        # Listrak accepted a value it does not show: a mismatch, so pending again.
        (row(True, True), False, (False, True)),
        (row(False, False), True, (True, True)),
        # Too soon after the push: the import may not have applied yet.
        (row(True, True, RECENT), False, None),
        # Never sent: what Listrak holds is learnt, and a match needs no request at all.
        (row(False, None, None), False, (False, False)),
        (row(True, None, None), False, (False, False)),
        # A read-back older than the last send proves nothing about it.
        (
            row(True, True, readback=True, readback_at=OLD - timedelta(days=1)),
            True,
            (True, False),
        ),
    ],
)
def test_judge(stored: StoredValue, observed: bool, written: tuple[bool, bool] | None) -> None:
    expected = None
    if written is not None:
        expected = Verdict("a@x.com", 9, *written, stored.sent, stored.sent_at)
    assert judge(stored, observed, NOW, GRACE) == expected


@pytest.mark.parametrize("value", ["on", "ON", " true ", "1", "Yes", "checked"])
def test_selected_spellings(value: str) -> None:
    assert is_selected(value)


@pytest.mark.parametrize("value", [None, "", "off", "false", "0", "no", "unchecked", "2"])
def test_unselected_spellings(value: str | None) -> None:
    assert not is_selected(value)
