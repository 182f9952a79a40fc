"""Which schedule a list runs on, and crontab expressions as APScheduler 3 triggers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from ..config import ListSettings, Settings

if TYPE_CHECKING:
    from apscheduler.triggers.cron import CronTrigger

DEFAULT_INTERVAL = timedelta(minutes=15)
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# Cron users name a moment; a few seconds spread hosts without moving it noticeably.
_CRON_JITTER = 5.0
# Firings looked at to find a cron expression's shortest gap (weekdays, hours, steps).
_PERIOD_SAMPLES = 32


def list_schedule(cfg: ListSettings, settings: Settings) -> str | timedelta:
    """The list's own cron expression or interval, else the global one, else 15 minutes."""
    cron = cfg.cron or (settings.schedule.cron if cfg.interval is None else None)
    if cron:
        return cron
    return cfg.interval or settings.schedule.interval or DEFAULT_INTERVAL


def describe(schedule: str | timedelta) -> str:
    """`cron 0 6 * * * (UTC)` or `every 15m`, as an operator wrote it."""
    if isinstance(schedule, str):
        return f"cron {schedule} (UTC)"
    seconds = schedule.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"every {seconds // size:.0f}{unit}"
    return f"every {seconds:g}s"


def period(schedule: str | timedelta) -> timedelta:
    """How often a schedule fires: its interval, or the shortest gap between cron firings."""
    if isinstance(schedule, timedelta):
        return schedule
    trigger = crontab_trigger(schedule, jitter=None)
    fire = trigger.get_next_fire_time(None, datetime.now(UTC))
    gaps = []
    for _ in range(_PERIOD_SAMPLES):
        after = trigger.get_next_fire_time(fire, fire) if fire is not None else None
        if fire is None or after is None:
            break
        gaps.append(after - fire)
        fire = after
    # An expression that never fires (30 February) never runs, whatever its period.
    return min(gaps, default=timedelta(days=365))


def crontab_trigger(expr: str, *, jitter: float | None = _CRON_JITTER) -> CronTrigger:
    """A five-field crontab expression, evaluated in UTC, with crontab's weekday numbers."""
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"expected 5 fields (minute hour day month weekday), got {len(fields)}")
    minute, hour, day, month, weekday = fields
    from apscheduler.triggers.cron import CronTrigger  # noqa: PLC0415 - slow; only the daemon

    trigger = CronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=crontab_weekdays(weekday),
        timezone=UTC,
        jitter=jitter,
    )
    # "0 0 30 2 *" is valid field by field and names no day at all: the list would never run.
    if trigger.get_next_fire_time(None, datetime.now(UTC)) is None:
        raise ValueError("never fires: no date matches its day and month fields")
    return trigger


def crontab_weekdays(field: str) -> str:
    """crontab counts Sunday as 0 (or 7), APScheduler 3 Monday as 0: spell the days out."""
    if field == "*":
        return "*"
    days: set[int] = set()
    for part in field.lower().split(","):
        days |= _weekday_part(part)
    return "*" if len(days) == 7 else ",".join(_DAYS[d] for d in sorted(days))


def _weekday_part(part: str) -> set[int]:
    span, slash, raw_step = part.partition("/")
    if slash and not (raw_step.isdigit() and int(raw_step) > 0):
        raise ValueError(f"weekday step {raw_step!r} is not a positive number")
    step = int(raw_step) if slash else 1
    if span == "*":
        first, last = 0, 6
    else:
        low, dash, high = span.partition("-")
        first = _weekday(low)
        last = _weekday(high) if dash else (6 if slash else first)
    if last < first:
        raise ValueError(f"weekday range {span!r} runs backwards")
    return {day % 7 for day in range(first, last + 1, step)}


def _weekday(token: str) -> int:
    if token.isdigit() and int(token) <= 7:
        return int(token)
    if token in _DAYS:
        return _DAYS.index(token)
    raise ValueError(f"{token!r} is not a weekday (0-7 or sun-sat)")
