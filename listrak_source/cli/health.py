"""Is it healthy? What `status` and the status page say: per list its recent runs, last ok,
next run and whether it is overdue, the lists the state keeps that the config no longer
names, and one verdict (healthy, degraded, failing) with its reasons."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import httpx

from ..config import ListSettings, Settings
from ..service.schedules import crontab_trigger, describe, list_schedule, period
from ..state import Database
from .activity_report import activity_status
from .audience_report import audience_status

HEALTHY, DEGRADED, FAILING = "healthy", "degraded", "failing"
# `status` exits as monitoring plugins do (0 OK, 1 WARNING, 2 CRITICAL); a configuration
# or database error is 2 as well: the monitor cannot tell, and a person must look.
EXIT_STATUS = {HEALTHY: 0, DEGRADED: 1, FAILING: 2}
_RANK = {HEALTHY: 0, DEGRADED: 1, FAILING: 2}
# One Listrak outage is weather and heals on the next run; this many failed runs in a row
# need a person.
FAILED_IN_A_ROW = 3
# Outcomes kept per list for the verdict and the status page's strip.
RECENT = 20
# How late a next run may be before the list is overdue: its period (a whole firing
# missed), at most an hour, so a daily cron is not left a day late unnoticed.
MAX_GRACE = timedelta(hours=1)
# A daemon answers its own metrics port at once; a busy one still within a second.
_PROBE_SECONDS = 1.0


def gather(
    settings: Settings, db: Database, *, now: datetime, runs: int = 0, daemon: bool = False
) -> dict[str, Any]:
    """The whole status document: `status --json` prints it, the page and the text show it."""
    # Asked of the lock itself, so a holder that died is never shown as holding a list.
    holders = db.locks.holders()
    lists = [
        _list_doc(settings, db, cfg, holders=holders, now=now, runs=runs, daemon=daemon)
        for cfg in settings.lists
    ]
    configured = {cfg.id for cfg in settings.lists}
    gone = [_gone_doc(db, i) for i in db.runs.known_lists() if i not in configured]
    audiences = audience_status(settings, db) if settings.audiences else None
    for push in audiences["pushes"] if audiences else []:
        push["recent"] = db.audience_reports.recent_pushes(push["list_id"], RECENT)
    activity = activity_status(settings, db)
    document: dict[str, Any] = {
        "generated_at": now.isoformat(timespec="seconds"),
        "health": judge(lists, audiences, activity),
        "daemon": {"known": daemon},
        "lists": lists,
        "unconfigured_lists": gone,
    }
    if audiences is not None:
        document["audiences"] = audiences
    if activity:
        document["activity"] = activity
    return document


def _list_doc(
    settings: Settings,
    db: Database,
    cfg: ListSettings,
    *,
    holders: Mapping[int, str],
    now: datetime,
    runs: int,
    daemon: bool,
) -> dict[str, Any]:
    row = db.runs.status(cfg.id)
    history = db.runs.history(cfg.id, max(runs, RECENT))
    schedule = list_schedule(cfg, settings)
    last = row["last_run"]
    due = next_run(schedule, datetime.fromisoformat(last["started_at"]) if last else None)
    holder = holders.get(cfg.id)
    last_ok = db.runs.last_ok(cfg.id)
    row.update(
        held_by=holder,
        schedule=describe(schedule),
        next_run=due.isoformat(timespec="seconds") if due else None,
        # Only a daemon runs the schedule; a cron or timer install runs on its own clock.
        next_run_if_daemon_runs=not daemon,
        overdue=_overdue(due, schedule, holder, now),
        last_ok=last_ok.isoformat(timespec="seconds") if last_ok else None,
        recent=[run["status"] for run in history],
    )
    if runs:
        row["runs"] = history[:runs]
    row["health"] = list_health(row)
    return row


def _gone_doc(db: Database, list_id: int) -> dict[str, Any]:
    row = db.runs.status(list_id)
    last = row["last_run"]
    return {
        "list_id": list_id,
        "last_run": {"started_at": last["started_at"], "status": last["status"]} if last else None,
        "subscribed": row["subscribed"],
        "pending": row["pending"],
        "dead": row["dead"],
    }


def next_run(schedule: str | timedelta, last_started: datetime | None) -> datetime | None:
    """When the schedule fires after the last run's start; None before a list's first run."""
    if last_started is None:
        return None
    if isinstance(schedule, timedelta):
        return last_started + schedule
    # A run starts a few seconds after its firing; the next firing is the one after that.
    fire = crontab_trigger(schedule, jitter=None).get_next_fire_time(
        None, last_started + timedelta(seconds=1)
    )
    return fire if isinstance(fire, datetime) else None


def _overdue(
    due: datetime | None, schedule: str | timedelta, holder: str | None, now: datetime
) -> bool:
    """A whole firing (at most an hour) has passed since the run was due, and none runs now."""
    if due is None or holder:
        return False
    return now > due + min(period(schedule), MAX_GRACE)


def list_health(row: Mapping[str, Any]) -> dict[str, Any]:
    """One list's verdict and the reasons for it, worst first."""
    found = [*_run_findings(row), *_backlog_findings(row)]
    found.sort(key=lambda item: -_RANK[item[0]])
    verdict = found[0][0] if found else HEALTHY
    return {"verdict": verdict, "reasons": [reason for _, reason in found]}


def _run_findings(row: Mapping[str, Any]) -> list[tuple[str, str]]:
    last, recent = row["last_run"], row["recent"]
    if last is None:
        return [(DEGRADED, "never run")]
    found: list[tuple[str, str]] = []
    if row["overdue"]:
        found.append((FAILING, f"overdue: its next run was due at {row['next_run']}"))
    finished = [status for status in recent if status != "running"]
    if finished[:FAILED_IN_A_ROW] == ["failed"] * FAILED_IN_A_ROW:
        found.append((FAILING, f"its last {FAILED_IN_A_ROW} runs failed"))
    elif finished and finished[0] in ("failed", "stopped", "partial"):
        found.append((DEGRADED, f"its last run ended {finished[0]}"))
    if finished and finished[0] == "held":
        found.append((FAILING, "removals held: run `sync --allow-mass-removal` if they are right"))
    if last["status"] == "running" and not row.get("held_by"):
        found.append((DEGRADED, "the worker of its last run died; the next run closes it"))
    return found


def _backlog_findings(row: Mapping[str, Any]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if row["dead"]:
        found.append((DEGRADED, f"{row['dead']} dead row(s): `retry` re-queues them"))
    return found


def judge(
    lists: Sequence[Mapping[str, Any]],
    audiences: Mapping[str, Any] | None,
    activity: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The worst of the lists', the audience pushes' and the activity passes' verdicts, with
    every reason."""
    found = [
        (item["health"]["verdict"], f"list {item['list_id']}: {reason}")
        for item in lists
        for reason in item["health"]["reasons"]
    ]
    found += _audience_findings(audiences) if audiences is not None else []
    found += _activity_findings(activity)
    worst = max((verdict for verdict, _ in found), key=_RANK.__getitem__, default=HEALTHY)
    ordered = sorted(found, key=lambda item: -_RANK[item[0]])
    return {
        "verdict": worst,
        "exit_status": EXIT_STATUS[worst],
        "reasons": [reason for verdict, reason in ordered if verdict != HEALTHY],
    }


def _audience_findings(section: Mapping[str, Any]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for push in section["pushes"]:
        last = push["last_push"]
        status = last["status"] if last else None
        where = f"list {push['list_id']}: last push"
        if status == "held":
            found.append((FAILING, f"{where} held: `push --allow-mass-flip` if it is right"))
        elif status in ("failed", "partial", "stopped"):
            found.append((DEGRADED, f"{where} ended {status}"))
    for audience in section["audiences"]:
        if audience["dead"]:
            found.append(
                (
                    DEGRADED,
                    f"audience {audience['key']}: {audience['dead']} dead value(s): "
                    "`retry` re-queues them",
                )
            )
    return found


def _activity_findings(rows: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """A pass that did not end ok (Listrak refused it, Segment holds events back) and events
    Segment refused for good: the subscriber run beside it may be ok while these are not."""
    found: list[tuple[str, str]] = []
    for row in rows:
        where = f"list {row['list_id']}: activity"
        status = row["last_pass_status"]
        if status in ("failed", "partial", "stopped"):
            found.append((DEGRADED, f"{where}: its last pass ended {status}"))
        dead = sum(counts["dead"] for counts in row["events"].values())
        if dead:
            found.append((DEGRADED, f"{where}: {dead} dead event(s): `retry` re-queues them"))
    return found


def daemon_answers(settings: Settings) -> bool:
    """Whether a daemon answers on the configured metrics port: only then is a next run known."""
    port = settings.metrics.port
    if not port:
        return False
    host = settings.metrics.host
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    url = f"http://[{host}]:{port}/healthz" if ":" in host else f"http://{host}:{port}/healthz"
    try:
        return httpx.get(url, timeout=_PROBE_SECONDS).status_code == 200
    except httpx.HTTPError:
        return False
