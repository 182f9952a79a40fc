"""The ledger's cheap counts agree with the full status, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine

from listrak_source.privacy import contact_ref
from listrak_source.state import Database
from listrak_source.state.schema import members

LIST = 1001
NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


def _row(key: str, *, message: str | None = None, dead: bool = False, **extra: object) -> dict:
    return {
        "list_id": LIST,
        "email_key": key,
        "email": key,
        "desired_subscribed": True,
        "desired_user_id": None,
        "message_id": message,
        "detected_at": NOW,
        "attempts": 5 if dead else 0,
        "last_error": "HTTP 400" if dead else None,
        "dead": dead,
        "last_seen_run": 1,
        **extra,
    }


def test_backlog_counts_pending_and_dead_rows_only(engine: Engine) -> None:
    rows = [
        _row("sent@example.com"),
        _row("gone@example.com", desired_subscribed=False),
        _row("due@example.com", message="m-1"),
        _row("due2@example.com", message="m-2"),
        _row("dead@example.com", message="m-3", dead=True),
    ]
    other_list = {**_row("x@example.com", message="m-4"), "list_id": LIST + 1}
    with engine.begin() as conn:
        conn.execute(members.insert(), [*rows, other_list])
    ledger = Database(engine)
    assert ledger.runs.backlog(LIST) == (2, 1)
    assert ledger.runs.backlog(LIST + 1) == (1, 0)
    status = ledger.runs.status(LIST)
    assert (status["subscribed"], status["pending"], status["dead"]) == (4, 2, 1)
    assert status["dead_rows"] == [
        {"contact": contact_ref("dead@example.com"), "attempts": 5, "last_error": "HTTP 400"}
    ]


def test_last_size_is_the_last_complete_full_scan(engine: Engine) -> None:
    ledger = Database(engine)
    assert ledger.runs.last_size(LIST) == 0
    counts = {"scanned": 500}
    full = ledger.runs.start_run(LIST, "sync", NOW, full_scan=True)
    ledger.runs.finish_run(full, "ok", NOW, counts)
    incremental = ledger.runs.start_run(LIST, "sync", NOW, full_scan=False)
    ledger.runs.finish_run(incremental, "ok", NOW, {"scanned": 3})
    broken = ledger.runs.start_run(LIST, "sync", NOW, full_scan=True)
    ledger.runs.finish_run(broken, "failed", NOW, {"scanned": 40}, "HTTP 500")
    assert ledger.runs.last_size(LIST) == 500
    assert ledger.runs.last_size(LIST + 1) == 0
