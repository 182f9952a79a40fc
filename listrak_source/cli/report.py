"""Human-readable summaries of runs and status; JSON output lives with the commands."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, TextIO

from ..engage.records import PushResult
from ..records import RunKind, RunResult


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


def print_lookup(found: Sequence[Mapping[str, Any]], out: TextIO) -> None:
    """One line per (contact, list), naming the contact by its reference only."""
    for item in found:
        print(f"contact {item['contact']}: list {item['list_id']}: {_state(item)}", file=out)


def lookup_contact(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One address's state per list, as `lookup --json` shows it (by reference only)."""
    lists = [
        {
            "list_id": item["list_id"],
            "stored": item["row"] is not None,
            "subscribed": bool(item["row"] and item["row"]["desired_subscribed"]),
            "state": _delivery(item["row"]),
            "attempts": item["row"]["attempts"] if item["row"] else 0,
            "last_error": item["row"]["last_error"] if item["row"] else None,
            "skipped": item["skipped"],
        }
        for item in rows
    ]
    known = any(entry["stored"] or entry["skipped"] for entry in lists)
    return {"contact": rows[0]["contact"] if rows else None, "known": known, "lists": lists}


def _delivery(row: Mapping[str, Any] | None) -> str | None:
    if row is None:
        return None
    if row["dead"]:
        return "dead"
    return "waiting" if row["message_id"] is not None else "delivered"


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
            parts.append(_waiting(row))
        else:
            parts.append("delivered")
    if skipped is not None:
        parts.append(f"skipped: {skipped['reason']} (run {skipped['run_id']})")
    return "; ".join(parts)


def _waiting(row: Mapping[str, Any]) -> str:
    """A pending row, with what Segment last answered for it and when it goes again."""
    text = "waiting to be delivered"
    if row["attempts"]:
        text += f" after {row['attempts']} refusal(s)"
    why = [row["last_error"]] if row["last_error"] else []
    if row["next_attempt_at"]:
        why.append(f"next attempt {row['next_attempt_at'][:19]}")
    return text + (f" ({'; '.join(why)})" if why else "")


def when(moment: str | None) -> str:
    """An instant as ISO 8601 with its offset, to the second; `-` for none."""
    if not moment:
        return "-"
    return datetime.fromisoformat(moment).isoformat(timespec="seconds")


def _next_run(row: Mapping[str, Any]) -> str:
    due = row["next_run"]
    if due is None:
        text = "at its first run" if row["last_run"] is None else "-"
    else:
        text = when(due) + ("*" if row["next_run_if_daemon_runs"] else "")
    return text + (" OVERDUE" if row["overdue"] else "")


def print_status(document: Mapping[str, Any], out: TextIO) -> None:
    """A table of lists, what needs a person, the lists no longer configured, and the
    verdict last, where `status | tail -1` finds it."""
    rows = document["lists"]
    headers = ("LIST", "LAST RUN", "RESULT", "LAST OK", "SUBSCRIBED", "PENDING", "DEAD", "NEXT RUN")
    table = [
        (
            str(row["list_id"]),
            when(row["last_run"]["started_at"]) if row["last_run"] else "never",
            row["last_run"]["status"] if row["last_run"] else "-",
            when(row["last_ok"]) if row["last_ok"] else "never",
            str(row["subscribed"]),
            str(row["pending"]),
            str(row["dead"]),
            _next_run(row),
        )
        for row in rows
    ]
    _table(headers, table, out)
    if any(row["next_run_if_daemon_runs"] and row["next_run"] for row in rows):
        print(
            "* if a daemon runs (`listrak-source run`); none answered on metrics.port",
            file=out,
        )
    for row in rows:
        _print_details(row, out)
        if "runs" in row:
            print_runs(row["list_id"], row["runs"], out)
    for gone in document["unconfigured_lists"]:
        print(_gone_line(gone), file=out)


def print_verdict(health: Mapping[str, Any], out: TextIO) -> None:
    """`health: degraded`, then each reason on its own line."""
    for reason in health["reasons"]:
        print(f"  {reason}", file=out)
    print(f"health: {health['verdict']}", file=out)


def _gone_line(gone: Mapping[str, Any]) -> str:
    last = gone["last_run"]
    ran = f"last run {when(last['started_at'])} {last['status']}" if last else "never run"
    return (
        f"list {gone['list_id']}: no longer in the config ({ran}; {gone['subscribed']} "
        f"subscribed, {gone['pending']} pending, {gone['dead']} dead rows kept)"
    )


def print_runs(list_id: int, history: Sequence[Mapping[str, Any]], out: TextIO) -> None:
    """The list's newest runs, newest first, one row each."""
    print(f"list {list_id}: last {len(history)} run(s)", file=out)
    if not history:
        return
    headers = ("  RUN", "KIND", "STARTED", "SECONDS", "RESULT", "SCANNED", "+SUB", "-UNSUB",
               "DELIVERED", "ERROR OR NOTE")  # fmt: skip
    _table(headers, [_run_row(run) for run in history], out)


def _run_row(run: Mapping[str, Any]) -> tuple[str, ...]:
    started, finished = run["started_at"], run["finished_at"]
    took = datetime.fromisoformat(finished) - datetime.fromisoformat(started) if finished else None
    seconds = f"{took.total_seconds():.0f}" if took is not None else "-"
    return (
        f"  {run['id']}",
        str(run["kind"]),
        when(started),
        seconds,
        str(run["status"]),
        str(run["scanned"]),
        str(run["subscribed"]),
        str(run["unsubscribed"]),
        str(run["delivered"]),
        (run["error"] or run["note"] or "")[:80],
    )


def _print_details(row: Mapping[str, Any], out: TextIO) -> None:
    for wait in row.get("waiting", []):
        due = (
            f"next attempt {when(wait['next_attempt_at'])}"
            if wait["next_attempt_at"]
            else ("due on the next run")
        )
        print(f"list {row['list_id']}: {wait['rows']} pending, {wait['reason']} ({due})", file=out)
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
