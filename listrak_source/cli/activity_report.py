"""What `status`, `status --json` and `explain` say of email activity; addresses never appear
in status, and explain shows only the address it was asked about."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from ..config import Settings
from ..state import Database
from ..tracking.records import EVENT_NAMES


def activity_status(settings: Settings, db: Database) -> list[dict[str, Any]]:
    """Per activity list: open messages, the last pass, and events by name and state."""
    since = datetime.now(UTC) - settings.activity.window
    out = []
    for cfg in settings.lists:
        if not cfg.activity:
            continue
        messages = db.activity.messages(cfg.id).values()
        done = db.activity.list_pass(cfg.id)
        tally = db.activity.tally(cfg.id)
        out.append(
            {
                "list_id": cfg.id,
                "open_messages": sum(1 for m in messages if m.sent_at and m.sent_at >= since),
                "deferred_messages": done.deferred,
                "last_pass": _iso(done.last_pass_at),
                "last_pass_status": done.status,
                "last_pass_error": done.error,
                "events": {
                    name: {"pending": t.pending, "sent": t.sent, "dead": t.dead}
                    for name in EVENT_NAMES
                    if (t := tally.get(name)) is not None
                },
            }
        )
    return out


def print_activity_status(rows: Sequence[Mapping[str, Any]], out: TextIO) -> None:
    """A line per activity list, then a row per event name it holds."""
    for row in rows:
        print(
            f"activity list {row['list_id']}: {row['open_messages']} open message(s), last pass "
            f"{(row['last_pass'] or 'never')[:19]} {row['last_pass_status'] or ''}".rstrip(),
            file=out,
        )
        if row["deferred_messages"]:
            print(f"  {row['deferred_messages']} message(s) wait for the next pass", file=out)
        if row["last_pass_error"]:
            print(f"  last pass: {row['last_pass_error']}", file=out)
        for name, counts in row["events"].items():
            print(
                f"  {name}: {counts['pending']} pending, {counts['sent']} sent, "
                f"{counts['dead']} dead",
                file=out,
            )


def print_activity(facts: Sequence[Mapping[str, Any]], out: TextIO) -> None:
    """An address's recent activity facts, newest first."""
    for fact in facts:
        props = fact["properties"]
        about = f"message {props['email_id']}" if "email_id" in props else "the list"
        extra = ", ".join(
            f"{k} {props[k]}" for k in ("link_url", "order_total", "bounce_reason") if k in props
        )
        line = f"activity: list {fact['list_id']}: {fact['event']} at {_iso(fact['at'])} ({about}"
        line += f"; {extra})" if extra else ")"
        state = fact["state"]
        if state != "sent" and fact["last_error"]:
            state += f": {fact['last_error']}"
        print(f"{line}: {state}", file=out)


def activity_json(facts: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """An address's facts for `explain --json`, times in ISO 8601 as everywhere else."""
    return [{**fact, "at": _iso(fact["at"])} for fact in facts]


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment is not None else None
