"""Human-readable summaries of runs and status; JSON output lives with the commands."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, TextIO

from ..config import Settings
from ..engage.records import PushResult
from ..records import RunKind, RunResult
from ..service.schedules import describe, list_schedule


def result_line(result: RunResult) -> str:
    """One line per list run: what changed, what went out, what did not."""
    # A dry run sends nothing: it says what a real run would have sent.
    sent = (
        f"would send {result.delivered}"
        if result.kind == RunKind.DRY_RUN
        else f"delivered {result.delivered}"
    )
    line = (
        f"list {result.list_id}: {result.status} - scanned {result.scanned}, "
        f"+{result.subscribed} subscribed, -{result.unsubscribed} unsubscribed, "
        f"{result.user_id_changed} userId changes, {sent}"
    )
    extras = [
        f"{count} {label}"
        for count, label in (
            (result.failed, "refused by Segment"),
            (result.dead, "dead"),
            (result.rejected, "skipped contacts"),
        )
        if count
    ]
    if extras:
        line += ", " + ", ".join(extras)
    if result.error:
        line += f"\n  {result.error}"
    if result.note:
        line += f"\n  note: {result.note}"
    return line


def push_line(result: PushResult, *, dry_run: bool = False) -> str:
    """One line per list pushed: what Listrak accepted, what waits, and why."""
    verb = "would push" if dry_run else "pushed"
    line = (
        f"list {result.list_id}: {result.status} - {verb} {result.accepted} value(s) for "
        f"{result.contacts} contact(s) in {result.requests} request(s)"
    )
    if result.backlog.held:
        line += f", {result.backlog.held} held until the contact subscribes"
    if result.error:
        line += f"\n  {result.error}"
    return line


def print_results(results: Iterable[RunResult], out: TextIO) -> None:
    """A line per list, then nothing else: scripts can grep it."""
    for result in results:
        print(result_line(result), file=out)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], out: TextIO) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    for row in (headers, *rows):
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip(),
            file=out,
        )


def next_run(last: Mapping[str, Any] | None, settings: Settings, list_id: int) -> str:
    """When the schedule fires next, judged from the last run's start."""
    schedule = list_schedule(settings.list_by_id(list_id), settings)
    if isinstance(schedule, str):
        return describe(schedule)
    if last is None:
        return "on next start"
    return (datetime.fromisoformat(last["started_at"]) + schedule).isoformat(timespec="seconds")


def print_lookup(found: Sequence[Mapping[str, Any]], out: TextIO) -> None:
    """One line per (contact, list), naming the contact by its reference only."""
    for item in found:
        print(f"contact {item['contact']}: list {item['list_id']}: {_state(item)}", file=out)


def _state(item: Mapping[str, Any]) -> str:
    row, skipped = item["row"], item["skipped"]
    parts = []
    if row is None:
        parts.append("not stored")
    else:
        parts.append("subscribed" if row["desired_subscribed"] else "not subscribed")
        if row["dead"]:
            parts.append(f"dead after {row['attempts']} attempt(s): {row['last_error']}")
        elif row["message_id"] is not None:
            parts.append("waiting to be delivered")
        else:
            parts.append("delivered")
    if skipped is not None:
        parts.append(f"skipped: {skipped['reason']} (run {skipped['run_id']})")
    return "; ".join(parts)


def print_status(rows: Sequence[Mapping[str, Any]], settings: Settings, out: TextIO) -> None:
    """A table of lists, then the dead rows and skipped contacts that need a person."""
    headers = ("LIST", "LAST RUN", "RESULT", "SUBSCRIBED", "PENDING", "DEAD", "NEXT RUN")
    table = []
    for row in rows:
        last = row["last_run"]
        table.append(
            (
                str(row["list_id"]),
                last["started_at"][:19] if last else "never",
                last["status"] if last else "-",
                str(row["subscribed"]),
                str(row["pending"]),
                str(row["dead"]),
                next_run(last, settings, row["list_id"]),
            )
        )
    _table(headers, table, out)
    for row in rows:
        for wait in row.get("waiting", []):
            when = wait["next_attempt_at"]
            due = f"next attempt {when[:19]}" if when else "due on the next run"
            print(
                f"list {row['list_id']}: {wait['rows']} pending, {wait['reason']} ({due})",
                file=out,
            )
        for dead in row["dead_rows"]:
            print(
                f"list {row['list_id']}: dead contact {dead['contact']} after "
                f"{dead['attempts']} attempts: {dead['last_error']}",
                file=out,
            )
        for reject in row["rejects"]:
            who = f"contact {reject['contact']}" if reject["contact"] else "a contact"
            print(f"list {row['list_id']}: skipped {who}: {reject['reason']}", file=out)
        last = row["last_run"]
        if last and last.get("error"):
            print(f"list {row['list_id']}: last run: {last['error']}", file=out)
        print_holder(row, out)
        if last and last.get("note"):
            print(f"list {row['list_id']}: note: {last['note']}", file=out)


def print_holder(row: Mapping[str, Any], out: TextIO) -> None:
    """Who is syncing the list now, or that its last run's worker died before finishing."""
    last, holder = row["last_run"], row.get("held_by")
    if holder:
        print(f"list {row['list_id']}: being synced by {holder}", file=out)
    elif last and last["status"] == "running":
        print(
            f"list {row['list_id']}: the worker of its last run died; the next run closes it",
            file=out,
        )
