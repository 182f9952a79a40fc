"""activity-backfill and activity-baseline: a list's email activity since a date, sent or adopted.

Both read every message sent since the date (Listrak only read), touch no identify, and
honour `[activity] events`. A backfill is resumable: a message read to its end is not read
again by the next backfill, and what was sent is never sent twice.
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import UTC, date, datetime

from ..activity.run import activity_pass
from ..activity.source import Mode
from ..config import ListSettings, Settings
from ..errors import EXIT_CONFIG, EXIT_FAILED, ConfigError, ListSkippedError
from ..tracking.dates import zone
from ..tracking.records import ActivityOutcome
from .commands import _selected, _settings
from .wiring import run_context

log = logging.getLogger(__name__)


def activity_backfill(args: argparse.Namespace) -> int:
    """Send every activity fact since --since, with its own time."""
    return _activity(args, Mode.BACKFILL)


def activity_baseline(args: argparse.Namespace) -> int:
    """Record every activity fact since --since as already sent; send nothing."""
    return _activity(args, Mode.BASELINE)


def _activity(args: argparse.Namespace, mode: Mode) -> int:
    settings = _settings(args)
    lists = _activity_lists(settings, args)
    since = _start(args.since, settings)
    outcomes = []
    with run_context(settings, dry_run=args.dry_run) as ctx:
        for cfg in lists:
            try:
                outcomes.append(activity_pass(ctx, cfg, mode=mode, since=since))
            except ListSkippedError as exc:
                log.warning("%s", exc)
                outcomes.append(ActivityOutcome(cfg.id, "skipped", str(exc), EXIT_FAILED))
    out = sys.stderr if args.dry_run else sys.stdout
    for outcome in outcomes:
        print(f"list {outcome.list_id}: {outcome.describe(dry_run=args.dry_run)}", file=out)
    return _exit_status(outcomes)


def _activity_lists(settings: Settings, args: argparse.Namespace) -> list[ListSettings]:
    chosen = _selected(settings, args)
    without = [cfg.id for cfg in chosen if not cfg.activity]
    if getattr(args, "lists", None) and without:
        raise ConfigError(f"list {without[0]} does not have activity = true in the config")
    chosen = [cfg for cfg in chosen if cfg.activity]
    if not chosen:
        raise ConfigError("no configured list has activity = true: there is no activity to read")
    return chosen


def _start(day: date, settings: Settings) -> datetime:
    """Midnight of the date in Listrak's zone, as an aware moment."""
    where = zone(settings.listrak.timezone)
    return datetime(day.year, day.month, day.day, tzinfo=where).astimezone(UTC)


def _exit_status(outcomes: list[ActivityOutcome]) -> int:
    if any(o.exit_code == EXIT_CONFIG for o in outcomes):
        return EXIT_CONFIG
    return 0 if outcomes and all(o.status == "ok" for o in outcomes) else EXIT_FAILED
