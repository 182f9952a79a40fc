"""The sub-commands: each loads what it needs, runs, prints, and returns an exit status."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from . import db
from .checks import run_checks
from .config import ListSettings, Settings, load_settings
from .errors import EXIT_CONFIG, EXIT_FAILED, LeaseHeldError
from .ledger import Ledger
from .logs import SecretFilter, log_context
from .progress import Progress
from .report import next_run, print_results, print_status
from .store import Store
from .sync import RunResult, Runtime, sync_list
from .wiring import open_database, runtime

log = logging.getLogger(__name__)
_SECRETS: list[str] = []


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
    rt: Runtime,
    lists: list[ListSettings],
    kind: str,
    progress: Progress | None = None,
    **options: bool,
) -> list[RunResult]:
    results = []
    for cfg in lists:
        if progress is not None:
            progress.start(f"list {cfg.id}", _expected(rt, cfg.id, kind))
        with log_context(list_id=cfg.id):
            try:
                results.append(sync_list(rt, cfg, kind=kind, **options))
            except LeaseHeldError as exc:
                log.warning("%s", exc)
                results.append(_skipped(rt, cfg, kind, str(exc)))
        if rt.stop.is_set():
            break
    return results


def _expected(rt: Runtime, list_id: int, kind: str) -> dict[str, int]:
    """The list's size at its last full scan: what this scan should read, what backfill sends."""
    if rt.ledger is None:
        return {}
    known = rt.ledger.last_size(list_id)
    return {"scanned": known, "delivered": known} if kind == "backfill" else {"scanned": known}


def _skipped(rt: Runtime, cfg: ListSettings, kind: str, reason: str) -> RunResult:
    now = rt.clock()
    return RunResult(
        list_id=cfg.id, kind=kind, started_at=now, finished_at=now, status="skipped", error=reason
    )


def _exit_status(results: list[RunResult]) -> int:
    """2 when a person must fix something (credentials, a list id), 1 for any other shortfall."""
    if any(r.exit_code == EXIT_CONFIG for r in results):
        return EXIT_CONFIG
    return 0 if results and all(r.status == "ok" for r in results) else EXIT_FAILED


def sync(args: argparse.Namespace) -> int:
    """One pass over the lists; a dry run prints identify calls and keeps nothing."""
    settings = _settings(args)
    lists = _selected(settings, args)
    with runtime(settings, dry_run=args.dry_run) as rt, _progress(rt, "sync") as progress:
        results = _run_lists(
            rt,
            lists,
            "dry-run" if args.dry_run else "sync",
            progress,
            allow_mass_removal=args.allow_mass_removal,
            full=args.full,
        )
    print_results(results, sys.stderr if args.dry_run else sys.stdout)
    return _exit_status(results)


def backfill(args: argparse.Namespace) -> int:
    """Re-send every subscribed contact's current state under fresh message ids."""
    settings = _settings(args)
    with runtime(settings) as rt, _progress(rt, "backfill") as progress:
        results = _run_lists(rt, _selected(settings, args), "backfill", progress)
    print_results(results, sys.stdout)
    return _exit_status(results)


def baseline(args: argparse.Namespace) -> int:
    """Adopt Listrak's current state as already sent, sending nothing."""
    settings = _settings(args)
    with runtime(settings) as rt, _progress(rt, "baseline") as progress:
        results = _run_lists(rt, _selected(settings, args), "baseline", progress)
    print_results(results, sys.stdout)
    return _exit_status(results)


def retry(args: argparse.Namespace) -> int:
    """Dead rows become due again; the next sync delivers them."""
    settings = _settings(args)
    engine = open_database(settings)
    store = Store(engine)
    total = 0
    for cfg in _selected(settings, args):
        count = store.revive_dead(cfg.id)
        total += count
        print(f"list {cfg.id}: {count} dead message(s) re-queued")
    engine.dispose()
    print(f"{total} re-queued; they go out on the next sync")
    return 0


def status(args: argparse.Namespace) -> int:
    """Per list: last run and its counts, pending and dead rows, next scheduled run."""
    settings = _settings(args)
    engine = open_database(settings, migrate=False)
    ledger = Ledger(engine)
    rows = [ledger.status(cfg.id) for cfg in settings.lists]
    engine.dispose()
    for row in rows:
        row["next_run"] = next_run(row["last_run"], settings, row["list_id"])
    if args.json:
        print(json.dumps({"lists": rows}, indent=2, default=str))
    else:
        print_status(rows, settings, sys.stdout)
    return 0


def run(args: argparse.Namespace) -> int:
    """The daemon: every list on its schedule until SIGTERM or SIGINT."""
    from .scheduler import Daemon  # noqa: PLC0415 - APScheduler is only needed by the daemon

    settings = _settings(args)
    engine = open_database(settings)
    try:
        return Daemon(settings, engine).serve_forever()
    finally:
        engine.dispose()


def check(args: argparse.Namespace) -> int:
    """Is it safe to start the daemon? A table of checks and an exit status."""
    settings = _settings(args)
    return 0 if run_checks(settings, sys.stdout) else EXIT_CONFIG


def migrate(args: argparse.Namespace) -> int:
    """Alembic upgrade to head."""
    settings = _settings(args)
    engine = db.make_engine(settings.database.url)
    before = db.check_schema(engine)
    db.upgrade(engine)
    after = db.current_revision(engine)
    engine.dispose()
    print(f"database schema: {before or 'empty'} -> {after}")
    return 0


def demo(args: argparse.Namespace) -> int:
    """The whole pipeline on loopback with no account."""
    from .demo import run_demo  # noqa: PLC0415 - the simulator is only needed here

    return (
        0 if run_demo(contacts=args.contacts, cycles=args.cycles, out=sys.stdout) else EXIT_FAILED
    )


@contextmanager
def _progress(rt: Runtime, label: str) -> Iterator[Progress]:
    """Progress on stderr; a first SIGTERM/SIGINT finishes the page in hand, a second stops now."""
    progress = Progress(label, sys.stderr)
    previous: Callable[[str, int], None] | None = rt.on_progress
    rt.on_progress = progress.update

    def stop(signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        if rt.stop.is_set():
            log.warning("second %s: stopping now", name)
            # Unwinding rolls back the page in hand and still records the run and frees the lease.
            raise KeyboardInterrupt
        log.info("%s: finishing the page in hand and delivering what is pending", name)
        rt.stop.set()

    handlers = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield progress
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        rt.on_progress = previous
        progress.close()
