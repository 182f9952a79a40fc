"""The sub-commands: each loads what it needs, runs, prints, and returns an exit status."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from ..activity.run import follow_sync
from ..config import ListSettings, Settings, load_settings
from ..delivery.context import RunContext
from ..engage.records import PushResult, PushStatus
from ..errors import (
    EXIT_CONFIG,
    EXIT_FAILED,
    ConfigError,
    ListrakSourceError,
    ListSkippedError,
    TraitRenamedError,
    describe_error,
)
from ..logs import SecretFilter, log_context
from ..records import RunKind, RunResult, RunStatus
from ..service.signals import on_stop_signals, restore
from ..state import Database, make_engine
from ..state.engine import check_schema, current_revision, database_shown, upgrade
from ..subscribers.sync import sync_list, trait_mismatch
from ..subscribers.trait_claims import refuse_clash
from . import output
from .progress import Progress
from .report import (
    lookup_contact,
    print_lookup,
    print_results,
    print_status,
    print_verdict,
    push_line,
    result_line,
)
from .wiring import build_daemon, new_database, open_database, push_context, run_context

log = logging.getLogger(__name__)
_SECRETS: list[str] = []
# A first sync that finds more subscribers than this says so, and points at `baseline`.
FIRST_SYNC_NOTICE = 1000


def known_secrets() -> list[str]:
    """Secrets of the loaded config, for redacting error lines."""
    return list(_SECRETS)


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config)
    _SECRETS[:] = [s for s in settings.secrets() if s]
    secret_filter = SecretFilter(_SECRETS)
    for handler in logging.getLogger().handlers:
        handler.addFilter(secret_filter)
    return settings


def _selected(settings: Settings, args: argparse.Namespace) -> list[ListSettings]:
    ids = getattr(args, "lists", None)
    return [settings.list_by_id(i) for i in ids] if ids else list(settings.lists)


def _run_lists(
    settings: Settings,
    lists: list[ListSettings],
    kind: RunKind,
    *,
    dry_run: bool = False,
    **options: bool,
) -> list[RunResult]:
    """Each list in turn, with progress on stderr; a stop signal ends the loop after a list."""
    with _progress(str(kind)) as (progress, stop):
        watch = _Watch(progress)
        with run_context(settings, dry_run=dry_run, stop=stop, on_progress=watch) as ctx:
            return _each_list(ctx, lists, kind, watch, stop, **options)


def _each_list(
    ctx: RunContext,
    lists: list[ListSettings],
    kind: RunKind,
    watch: _Watch,
    stop: threading.Event,
    **options: bool,
) -> list[RunResult]:
    results = []
    for cfg in lists:
        watch.progress.start(f"list {cfg.id}", _expected(ctx, cfg.id, kind))
        first = kind == RunKind.SYNC and not ctx.db.runs.has_rows(cfg.id)
        watch.first_sync = cfg.id if first else None
        results.append(_run_one(ctx, cfg, kind, **options))
        if stop.is_set():
            break
    return results


class _Watch:
    """The progress hook of a run: shows progress, and warns once when a first sync has
    found more than FIRST_SYNC_NOTICE subscribers, all of which go to Segment as new."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.first_sync: int | None = None

    def __call__(self, stage: str, count: int) -> None:
        self.progress.update(stage, count)
        list_id = self.first_sync
        if list_id is None or stage != "scanned" or count <= FIRST_SYNC_NOTICE:
            return
        self.first_sync = None
        log.warning(
            "list %s: first sync: %s subscribers found so far, each sent to Segment as new "
            "(trait true); if these profiles already carry it (moving over from Listrak's "
            "own source), stop now and run `listrak-source baseline --list %s`, which "
            "sends nothing",
            list_id,
            count,
            list_id,
        )


def _run_one(
    ctx: RunContext,
    cfg: ListSettings,
    kind: RunKind,
    *,
    allow_mass_removal: bool = False,
    full: bool = False,
    rename_trait: bool = False,
) -> RunResult:
    with log_context(list_id=cfg.id):
        try:
            result = sync_list(
                ctx,
                cfg,
                kind=kind,
                allow_mass_removal=allow_mass_removal,
                full=full,
                rename_trait=rename_trait,
            )
            follow_sync(ctx, cfg, result)
            return result
        except ListSkippedError as exc:
            log.warning("%s", exc)
            return _skipped(ctx, cfg, kind, str(exc))
        except Exception as exc:
            # Before the run was recorded (taking the list) or after (closing it): still
            # this list's failure only.
            result = _skipped(ctx, cfg, kind, describe_error(exc))
            result.status = RunStatus.FAILED
            result.exit_code = exc.exit_code if isinstance(exc, ListrakSourceError) else EXIT_FAILED
            log.error("list %s: run failed: %s", cfg.id, result.error)
            return result


def _expected(ctx: RunContext, list_id: int, kind: RunKind) -> dict[str, int]:
    """The list's size at its last full scan: what this scan should read, what backfill sends."""
    known = ctx.db.runs.last_size(list_id)
    if kind == RunKind.BACKFILL:
        return {"scanned": known, "delivered": known}
    return {"scanned": known}


def _skipped(ctx: RunContext, cfg: ListSettings, kind: RunKind, reason: str) -> RunResult:
    now = ctx.clock()
    return RunResult(
        list_id=cfg.id,
        kind=kind,
        started_at=now,
        finished_at=now,
        status=RunStatus.SKIPPED,
        error=reason,
    )


def _exit_status(results: list[RunResult]) -> int:
    """2 when a person must fix something (credentials, a list id), 1 for any other shortfall."""
    if any(r.exit_code == EXIT_CONFIG for r in results):
        return EXIT_CONFIG
    return 0 if results and all(r.status == RunStatus.OK for r in results) else EXIT_FAILED


def sync(args: argparse.Namespace) -> int:
    """One pass over the lists; a dry run prints identify calls and keeps nothing."""
    settings = _settings(args)
    lists = _selected(settings, args)
    results = _run_lists(
        settings,
        lists,
        RunKind.DRY_RUN if args.dry_run else RunKind.SYNC,
        dry_run=args.dry_run,
        allow_mass_removal=args.allow_mass_removal,
        full=args.full,
    )
    if args.dry_run:
        # stdout carries the identify calls; the summary is for the person on stderr.
        for result in results:
            output.tell(result_line(result))
    else:
        print_results(results, sys.stdout)
    return _exit_status(results)


def backfill(args: argparse.Namespace) -> int:
    """Re-send every subscribed contact's current state under fresh message ids; without
    --confirm, only say how many would go."""
    settings = _settings(args)
    lists = _selected(settings, args)
    if not args.confirm:
        return _backfill_preview(settings, lists, getattr(args, "lists", None))
    results = _run_lists(settings, lists, RunKind.BACKFILL)
    print_results(results, sys.stdout)
    return _exit_status(results)


def _backfill_preview(settings: Settings, lists: list[ListSettings], ids: list[int] | None) -> int:
    """What a backfill would send, per list, from the state; nothing is sent or created."""
    counts: dict[int, int] = {}
    if new_database(settings) is None:
        engine = open_database(settings)
        try:
            db = Database(engine)
            counts = {cfg.id: db.runs.status(cfg.id)["subscribed"] for cfg in lists}
        finally:
            engine.dispose()
    for cfg in lists:
        count = counts.get(cfg.id, 0)
        print(
            f"list {cfg.id}: would re-send its {count} subscribed contact(s) to Segment "
            "under fresh message ids (as of its last scan; what its scan finds changed "
            "goes out too)"
            if count
            else f"list {cfg.id}: nothing stored yet: a backfill sends every subscriber "
            "Listrak holds"
        )
    chosen = "".join(f" --list {i}" for i in ids or [])
    print(f"If that is right, run: listrak-source backfill{chosen} --confirm")
    return EXIT_FAILED


def baseline(args: argparse.Namespace) -> int:
    """Adopt Listrak's current state as already sent, sending nothing."""
    settings = _settings(args)
    results = _run_lists(settings, _selected(settings, args), RunKind.BASELINE)
    print_results(results, sys.stdout)
    return _exit_status(results)


def rename_trait(args: argparse.Namespace) -> int:
    """Move a list to the trait its config now names: the new one true, the old one null."""
    settings = _settings(args)
    cfg = settings.list_by_id(args.list)
    engine = open_database(settings)
    db = Database(engine)
    claims = db.traits.claims()
    subscribers = db.runs.status(cfg.id)["subscribed"]
    engine.dispose()
    refuse_clash(cfg, claims)
    recorded = claims.get(cfg.id, (None, ()))[0]
    if trait_mismatch(cfg, recorded) is None:
        print(f"list {cfg.id}: its trait is {cfg.trait_name} already; nothing to rename")
        return 0
    if not args.confirm:
        print(
            f"list {cfg.id}: would send {subscribers} subscriber(s) {cfg.trait_name} = true "
            f"and {recorded} = null (later messages also remove {recorded} until every one "
            f"is delivered). If that is right, run: listrak-source rename-trait --list "
            f"{cfg.id} --confirm"
        )
        return EXIT_FAILED
    results = _run_lists(settings, [cfg], RunKind.SYNC, rename_trait=True)
    print_results(results, sys.stdout)
    return _exit_status(results)


def _refuse_renamed_traits(settings: Settings, db: Database) -> None:
    """The daemon must not start while a list's trait differs from the one it carries."""
    for cfg in settings.lists:
        problem = trait_mismatch(cfg, db.traits.recorded(cfg.id)[0])
        if problem is not None:
            raise TraitRenamedError(problem)


def retry(args: argparse.Namespace) -> int:
    """Dead rows and dead audience values become due again; the next sync or push sends them."""
    settings = _settings(args)
    engine = open_database(settings)
    db = Database(engine)
    total = 0
    for cfg in _selected(settings, args):
        count = db.outbox.revive_dead(cfg.id)
        values = db.audiences.revive_dead(cfg.id) if settings.audience_fields(cfg.id) else 0
        events = db.activity.revive_dead(cfg.id) if cfg.activity else 0
        total += count + values + events
        print(f"list {cfg.id}: {count} dead message(s) re-queued")
        if values:
            print(f"list {cfg.id}: {values} dead or waiting audience value(s) re-queued")
        if events:
            print(f"list {cfg.id}: {events} dead activity event(s) re-queued")
    engine.dispose()
    print(f"{total} re-queued; they go out on the next sync")
    return 0


def lookup(args: argparse.Namespace) -> int:
    """Find contacts by the addresses the operator gives; print their references and state.
    0 when every address is stored for some list, else 1 (as `explain`)."""
    settings = _settings(args)
    engine = open_database(settings, migrate=False)
    runs = Database(engine).runs
    found = [[runs.contact(cfg.id, email) for cfg in settings.lists] for email in args.emails]
    engine.dispose()
    contacts = [lookup_contact(rows) for rows in found]
    if args.json:
        print(json.dumps({"contacts": contacts}, indent=2, default=str))
    else:
        print_lookup([row for rows in found for row in rows], sys.stdout)
    return 0 if all(c["known"] for c in contacts) else EXIT_FAILED


def push(args: argparse.Namespace) -> int:
    """Pending audience values to Listrak once; 0 only when Listrak accepted all of them."""
    from ..audiences.push import prune_inbox, push_list  # noqa: PLC0415 - only pushes

    settings = _settings(args)
    list_ids = _audience_lists(settings, getattr(args, "lists", None))
    engine = open_database(settings)
    try:
        with (
            _progress("push") as (progress, stop),
            push_context(
                settings, engine, dry_run=args.dry_run, stop=stop, on_progress=progress.update
            ) as ctx,
        ):
            prune_inbox(ctx)
            results = []
            for list_id in list_ids:
                progress.start(f"list {list_id}")
                with log_context(list_id=list_id):
                    results.append(push_list(ctx, list_id, allow_mass_flip=args.allow_mass_flip))
                if stop.is_set():
                    break
    finally:
        engine.dispose()
    for result in results:
        line = push_line(result, dry_run=args.dry_run)
        output.tell(line) if args.dry_run else print(line)
    return _push_exit_status(results)


def _audience_lists(settings: Settings, ids: list[int] | None) -> list[int]:
    """The lists asked for (default: every list an audience writes), each with an audience."""
    with_audiences = list(dict.fromkeys(a.list_id for a in settings.audiences))
    if not with_audiences:
        raise ConfigError("no [[audiences]] are configured: there is nothing to push")
    for list_id in ids or []:
        if list_id not in with_audiences:
            raise ConfigError(f"list {list_id} has no [[audiences]] entry: nothing to push")
    return ids or with_audiences


def _push_exit_status(results: list[PushResult]) -> int:
    if any(r.exit_code == EXIT_CONFIG for r in results):
        return EXIT_CONFIG
    return 0 if results and all(r.status == PushStatus.OK for r in results) else EXIT_FAILED


def status(args: argparse.Namespace) -> int:
    """Per list: recent runs, last ok, pending and dead rows, next run and overdue marks;
    each audience's values and pushes; then the verdict, which is also the exit status."""
    from .health import daemon_answers, gather  # noqa: PLC0415 - reports load per command

    settings = _settings(args)
    daemon = daemon_answers(settings)
    engine = open_database(settings, migrate=False)
    try:
        db = Database(engine)
        document = gather(settings, db, now=datetime.now(UTC), runs=args.runs, daemon=daemon)
    finally:
        engine.dispose()
    document["database"] = database_shown(settings.database.url)
    if args.json:
        print(json.dumps(document, indent=2, default=str))
    else:
        _print_status(document)
    return int(document["health"]["exit_status"])


def _print_status(document: dict[str, Any]) -> None:
    from .activity_report import print_activity_status  # noqa: PLC0415
    from .audience_report import print_audience_status  # noqa: PLC0415

    print_status(document, sys.stdout)
    if "audiences" in document:
        print_audience_status(document["audiences"], sys.stdout)
    print_activity_status(document.get("activity", []), sys.stdout)
    print(f"database: {document['database']}")
    print_verdict(document["health"], sys.stdout)


def explain(args: argparse.Namespace) -> int:
    """Each address's audience chain: the events kept, then desired, sent and read back.
    0 when something is kept about every address, else 1 (as `lookup`)."""
    from .activity_report import activity_json, print_activity  # noqa: PLC0415
    from .audience_report import explained_contact, print_explanation  # noqa: PLC0415

    settings = _settings(args)
    engine = open_database(settings, migrate=False)
    db = Database(engine)
    chains = [(email, db.audience_reports.explain(email.strip().lower())) for email in args.emails]
    facts = [db.activity.recent(email.strip().lower()) for email in args.emails]
    engine.dispose()
    contacts = [explained_contact(email, chain) for email, chain in chains]
    for contact, found in zip(contacts, facts, strict=True):
        if found:
            contact["activity"] = activity_json(found)
            contact["known"] = True
    if args.json:
        print(json.dumps({"contacts": contacts}, indent=2, default=str))
    else:
        for contact, (_, chain), found in zip(contacts, chains, facts, strict=True):
            print_explanation(str(contact["contact"]), chain, settings, sys.stdout)
            print_activity(found, sys.stdout)
    return 0 if all(c["known"] for c in contacts) else EXIT_FAILED


def run(args: argparse.Namespace) -> int:
    """The daemon: every list on its schedule until SIGTERM or SIGINT."""
    settings = _settings(args)
    engine = open_database(settings)
    try:
        _refuse_renamed_traits(settings, Database(engine))
        return build_daemon(settings, engine).serve_forever()
    finally:
        engine.dispose()


def check(args: argparse.Namespace) -> int:
    """Is it safe to start the daemon? A table of checks and an exit status."""
    from .check import run_checks  # noqa: PLC0415 - only `check` runs them

    settings = _settings(args)
    return 0 if run_checks(settings, sys.stdout) else EXIT_CONFIG


def migrate(args: argparse.Namespace) -> int:
    """Alembic upgrade to head."""
    settings = _settings(args)
    new = new_database(settings)
    engine = make_engine(settings.database.url)
    before = check_schema(engine)
    upgrade(engine)
    after = current_revision(engine)
    engine.dispose()
    if new is not None:
        print(f"created a new database at {new}")
    print(f"database schema: {before or 'empty'} -> {after}")
    return 0


def demo(args: argparse.Namespace) -> int:
    """The whole pipeline on loopback with no account."""
    from .demo import run_demo  # noqa: PLC0415 - the simulator is only needed here

    # A first Ctrl-C stops the running sync at its next page, as it stops `sync`.
    with _progress("demo") as (_, stop):
        ok = run_demo(contacts=args.contacts, cycles=args.cycles, out=sys.stdout, stop=stop)
    return 0 if ok else EXIT_FAILED


@contextmanager
def _progress(label: str) -> Iterator[tuple[Progress, threading.Event]]:
    """Progress on stderr; a first stop signal ends the scan, a second stops now.

    The first abandons any wait for a page that has not arrived, stores nothing more, and
    lets what is stored be delivered.
    """
    progress = output.progress(label)
    stopping = threading.Event()

    def stop(signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        if stopping.is_set():
            log.warning("second %s: stopping now", name)
            # Unwinding rolls back the page in hand and still records the run and frees the list.
            raise KeyboardInterrupt
        log.info("%s: finishing the page in hand and delivering what is pending", name)
        stopping.set()

    previous = on_stop_signals(stop)
    try:
        yield progress, stopping
    finally:
        restore(previous)
        progress.close()
