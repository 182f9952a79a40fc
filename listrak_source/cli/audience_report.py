"""What `status` and `explain` say about the audience direction, as data and as text."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, TextIO

from ..config import Settings
from ..engage.records import PushStatus
from ..privacy import contact_ref
from ..state import Database
from ..state.audiences import STALE_PUSH, from_event_us
from ..state.locks import PUSH_LOCK

_COLUMNS = ("members", "pending", "held", "dead", "applied", "unverified", "mismatched")
_TOTALS = ("received", "duplicates", "superseded", "recorded", "unmapped", "mismatched")


def audience_status(settings: Settings, db: Database) -> dict[str, Any]:
    """The receiver's totals, each audience's counts, and each list's last push."""
    summaries = {
        list_id: db.audience_reports.summary(list_id)
        for list_id in dict.fromkeys(a.list_id for a in settings.audiences)
    }
    audiences = [
        {
            "key": a.key,
            "space_id": a.space_id,
            "list_id": a.list_id,
            "field_id": a.field_id,
            **_counts(summaries[a.list_id].get(a.field_id, {})),
        }
        for a in settings.audiences
    ]
    # Asked of the lock itself, so a push whose process died is never shown as running.
    pushing = db.locks.holders(PUSH_LOCK)
    pushes = [
        {
            "list_id": i,
            "last_push": _as_left(db.audience_reports.last_push(i), i in pushing),
            "pushed_by": pushing.get(i),
        }
        for i in summaries
    ]
    return {
        "totals": totals(db.audience_reports.counters()),
        "audiences": audiences,
        "pushes": pushes,
    }


def _as_left(push: dict[str, Any] | None, held: bool) -> dict[str, Any] | None:
    """A push recorded running whose lock nobody holds was killed: it failed."""
    if push is not None and push["status"] == PushStatus.RUNNING and not held:
        push = {**push, "status": str(PushStatus.FAILED), "error": f"{STALE_PUSH} (killed?)"}
    return push


def _counts(summary: Mapping[str, int]) -> dict[str, int]:
    return {name: summary.get(name, 0) for name in ("values", *_COLUMNS)}


def totals(counters: Mapping[str, int]) -> dict[str, Any]:
    """Durable counters by name; ignored items by reason, unmapped audiences on their own."""
    ignored = {
        name.removeprefix("ignored:"): n
        for name, n in sorted(counters.items())
        if name.startswith("ignored:") and name != "ignored:unmapped"
    }
    out: dict[str, Any] = {name: counters.get(name, 0) for name in _TOTALS}
    out["unmapped"] = counters.get("ignored:unmapped", 0)
    out["ignored"] = ignored
    return out


def print_audience_status(section: Mapping[str, Any], out: TextIO) -> None:
    """A table of audiences, the receiver's totals, and each list's last push."""
    headers = ("AUDIENCE", "LIST", "FIELD", *(c.upper() for c in _COLUMNS))
    rows = [
        (a["key"], str(a["list_id"]), str(a["field_id"]), *(str(a[c]) for c in _COLUMNS))
        for a in section["audiences"]
    ]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    for row in (headers, *rows):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(), file=out)
    t = section["totals"]
    line = ", ".join(f"{name} {t[name]}" for name in _TOTALS)
    ignored = ", ".join(f"{reason} {n}" for reason, n in t["ignored"].items())
    print(f"audience events: {line}" + (f"; ignored: {ignored}" if ignored else ""), file=out)
    for push in section["pushes"]:
        print(_push_line(push["list_id"], push["last_push"]), file=out)
        if push.get("pushed_by"):
            print(f"list {push['list_id']}: being pushed by {push['pushed_by']}", file=out)


def _push_line(list_id: int, push: Mapping[str, Any] | None) -> str:
    if push is None:
        return f"list {list_id}: never pushed"
    line = (
        f"list {list_id}: last push {str(push['started_at'])[:19]} {push['status']}, "
        f"{push['accepted']} accepted, {push['rejected']} refused, {push['held']} held"
    )
    return line + (f"\n  {push['error']}" if push.get("error") else "")


def explained_contact(email: str, chain: Mapping[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """One address's chain as `explain --json` shows it: by reference, no address in it."""
    hidden = {"email", "email_key"}
    found: dict[str, Any] = {"contact": contact_ref(email), "known": any(chain.values())}
    for part in ("subscriptions", "events", "values"):
        found[part] = [{k: v for k, v in row.items() if k not in hidden} for row in chain[part]]
    return found


def print_explanation(
    contact: str, chain: Mapping[str, list[dict[str, Any]]], settings: Settings, out: TextIO
) -> None:
    """One contact's chain: subscriptions, events, then each value desired, sent, read back."""
    names = {(a.list_id, a.field_id): a.key for a in settings.audiences}
    print(f"contact {contact}", file=out)
    if not any(chain.values()):
        print("  nothing is kept about it", file=out)
        return
    for sub in chain["subscriptions"]:
        state = "a current subscriber" if sub["desired_subscribed"] else "not subscribed"
        print(f"  list {sub['list_id']}: {state}", file=out)
    print(f"  events ({len(chain['events'])}, oldest first):", file=out)
    for event in chain["events"]:
        where = _where(names, event["list_id"], event["field_id"])
        verb = "entered" if event["member"] else "exited"
        print(
            f"    {_instant(event['event_us'])}  {verb:<7}  {where}  {event['message_id']}",
            file=out,
        )
    subscribed = {s["list_id"] for s in chain["subscriptions"] if s["desired_subscribed"]}
    print("  values:", file=out)
    for value in chain["values"]:
        print(f"    {_where(names, value['list_id'], value['field_id'])}", file=out)
        for line in _value_lines(value, value["list_id"] in subscribed):
            print(f"      {line}", file=out)


def _value_lines(value: Mapping[str, Any], subscriber: bool) -> list[str]:
    desired = f"desired  {_box(value['desired'])} from {value['event_id']} at "
    lines = [desired + _instant(value["event_us"])]
    sent = _box(value["sent"]) if value["sent"] is not None else "nothing yet"
    lines.append(f"sent     {sent}" + _at(value["sent_at"]))
    seen = _box(value["readback"]) if value["readback"] is not None else "not yet read back"
    lines.append(f"read     {seen}" + _at(value["readback_at"]))
    state = "dead" if value["dead"] else "pending" if value["pending"] else "settled"
    if value["pending"] and not subscriber:
        state = f"held until the contact subscribes to list {value['list_id']}"
    error = f": {value['last_error']}" if value["last_error"] else ""
    lines.append(
        f"state    {state}" + (", Listrak did not apply it" if value["mismatch"] else "") + error
    )
    return lines


def _where(names: Mapping[tuple[int, int], str], list_id: int, field_id: int) -> str:
    name = names.get((list_id, field_id), "(no longer configured)")
    return f"audience {name} (list {list_id} field {field_id})"


def _box(value: bool) -> str:
    return "checked" if value else "unchecked"


def _instant(micros: int) -> str:
    return from_event_us(micros).isoformat(timespec="milliseconds")


def _at(moment: datetime | None) -> str:
    return f" at {moment.isoformat(timespec='seconds')}" if moment is not None else ""
