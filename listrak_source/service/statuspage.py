"""The read-only status page the daemon serves at `/` of its metrics port, for teams without
Grafana: the verdict, then per list and audience the recent runs as a strip of outcomes,
what waits and why, dead rows and the receiver's counts.

It renders the document `status --json` prints, so the two never disagree. Contacts appear
by reference only, and the page has no form, script or link: nothing on it changes anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from html import escape
from typing import Any

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.4em 0 1em}td,th{border:1px solid #ccc;padding:2px 8px;
text-align:left}th{background:#f3f3f3}.healthy{color:#176f2c}.degraded{color:#9a6700}
.failing{color:#b3261e}.strip span{display:inline-block;width:1.3em;text-align:center;
margin-right:1px;color:#fff;font-weight:bold}.ok{background:#2e7d32}.partial{background:#b7791f}
.held,.failed{background:#b3261e}.stopped,.skipped{background:#6b7280}.running{background:#1d4ed8}
"""
# One letter per outcome in the strip; the word is in each box's title.
_LETTER = {"ok": "O", "partial": "P", "held": "H", "stopped": "S", "failed": "F", "running": "R"}


def render(document: Mapping[str, Any]) -> str:
    """The whole page, from the status document."""
    health = document["health"]
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>listrak-source: {escape(health['verdict'])}</title><style>{_STYLE}</style>",
        "</head><body><h1>listrak-source</h1>",
        _verdict(health, document["generated_at"]),
    ]
    parts += [_list_section(item) for item in document["lists"]]
    parts.append(_unconfigured(document["unconfigured_lists"]))
    if "audiences" in document:
        parts.append(_audiences(document["audiences"]))
    parts.append("</body></html>")
    return "\n".join(parts)


def _verdict(health: Mapping[str, Any], generated_at: str) -> str:
    verdict = escape(health["verdict"])
    reasons = "".join(f"<li>{escape(reason)}</li>" for reason in health["reasons"])
    return (
        f'<p id=verdict class="{verdict}"><strong>{verdict}</strong> '
        f"(as of {escape(generated_at)})</p>"
        + (f"<ul id=reasons>{reasons}</ul>" if reasons else "")
    )


def strip(outcomes: Sequence[str], what: str) -> str:
    """Outcomes oldest to newest, left to right, one box each."""
    boxes = "".join(
        f'<span class="{escape(o)}" title="{what}: {escape(o)}">{_LETTER.get(o, "?")}</span>'
        for o in reversed(outcomes)
    )
    return f"<div class=strip>{boxes or 'no runs yet'}</div>"


def _table(headers: Iterable[str], rows: Iterable[Iterable[object]], cls: str) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f"<table class={cls}><tr>{head}</tr>{body}</table>"


def _when(moment: str | None, default: str = "-") -> str:
    """An instant as the document has it (ISO 8601 with its offset), to the second."""
    return datetime.fromisoformat(moment).isoformat(timespec="seconds") if moment else default


def _list_section(item: Mapping[str, Any]) -> str:
    last, verdict = item["last_run"], item["health"]["verdict"]
    summary = [
        (
            item["schedule"],
            _when(last["started_at"]) if last else "never",
            last["status"] if last else "-",
            _when(item["last_ok"], "never"),
            _when(item["next_run"], "at its first run") + (" OVERDUE" if item["overdue"] else ""),
            item["subscribed"],
            item["pending"],
            item["dead"],
            item["held_by"] or "-",
        )
    ]
    headers = ("schedule", "last run", "result", "last ok", "next run", "subscribed",
               "pending", "dead", "being synced by")  # fmt: skip
    return "".join(
        [
            f'<section id="list-{item["list_id"]}"><h2>list {item["list_id"]} ',
            f'<small class="{escape(verdict)}">{escape(verdict)}</small></h2>',
            strip(item["recent"], "run"),
            _table(headers, summary, "summary"),
            _waiting(item["waiting"]),
            _dead(item["dead_rows"], item["dead"]),
            _skipped(item["rejects"]),
            "</section>",
        ]
    )


def _waiting(waiting: Sequence[Mapping[str, Any]]) -> str:
    if not waiting:
        return "<p>nothing waits for Segment</p>"
    rows = [(w["rows"], w["reason"], _when(w["next_attempt_at"], "the next run")) for w in waiting]
    return "<h3>what waits and why</h3>" + _table(("rows", "why", "due"), rows, "waiting")


def _dead(rows: Sequence[Mapping[str, Any]], total: int) -> str:
    if not total:
        return "<p>no dead rows</p>"
    shown = [(r["contact"], r["attempts"], r["last_error"]) for r in rows]
    return f"<h3>dead rows: {total}</h3>" + _table(
        ("contact", "attempts", "Segment's answer"), shown, "dead"
    )


def _skipped(rejects: Sequence[Mapping[str, Any]]) -> str:
    if not rejects:
        return ""
    rows = [(r["contact"] or "-", r["reason"]) for r in rejects]
    return "<h3>contacts the last run skipped</h3>" + _table(("contact", "why"), rows, "skipped")


def _unconfigured(gone: Sequence[Mapping[str, Any]]) -> str:
    if not gone:
        return ""
    rows = [
        (
            g["list_id"],
            _when(g["last_run"]["started_at"]) if g["last_run"] else "never",
            g["subscribed"],
            g["pending"],
            g["dead"],
        )
        for g in gone
    ]
    headers = ("list", "last run", "subscribed", "pending", "dead")
    return "<h2>lists no longer in the config</h2>" + _table(headers, rows, "unconfigured")


def _audiences(section: Mapping[str, Any]) -> str:
    columns = ("members", "pending", "held", "dead", "applied", "unverified", "mismatched")
    rows = [
        (a["key"], a["list_id"], a["field_id"], *(a[c] for c in columns))
        for a in section["audiences"]
    ]
    totals = section["totals"]
    counts = [(name, value) for name, value in totals.items() if name != "ignored"]
    counts += [(f"ignored: {reason}", n) for reason, n in totals["ignored"].items()]
    pushes = "".join(
        f"<h3>list {p['list_id']}: pushes</h3>" + strip(p.get("recent", []), "push")
        for p in section["pushes"]
    )
    return (
        "<section id=audiences><h2>audiences</h2>"
        + _table(("audience", "list", "field", *columns), rows, "audiences")
        + pushes
        + "<h3>the receiver's counts</h3>"
        + _table(("events", "count"), counts, "receiver")
        + "</section>"
    )
