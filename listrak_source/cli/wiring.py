"""Builds real adapters from settings: the only module that knows every concrete class.

Every run context is built here, for `sync`, `backfill`, `baseline`, the demo and the
daemon alike; the daemon is handed `context_over` and asks it for one per run.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO

from sqlalchemy import Engine

from ..config import Settings
from ..context import Emitter, RunContext
from ..listrak import ListrakClient
from ..segment import PrintingEmitter, SegmentEmitter
from ..state import Database, SchemaError, make_engine, new_holder, upgrade
from ..state.engine import check_schema, head_revision

if TYPE_CHECKING:
    from ..service.daemon import Daemon

ProgressHook = Callable[[str, int], None]


def listrak_client(settings: Settings) -> ListrakClient:
    """A Listrak client configured from [listrak]."""
    s = settings.listrak
    return ListrakClient(
        client_id=s.client_id,
        client_secret=s.client_secret.get_secret_value(),
        base_url=s.base_url,
        auth_url=s.auth_url,
        timeout=s.timeout,
        max_attempts=s.max_attempts,
        requests_per_second=s.requests_per_second,
        max_pages=s.max_pages,
        max_empty_pages=s.max_empty_pages,
    )


def open_database(settings: Settings, *, migrate: bool = True) -> Engine:
    """The engine, with the schema brought to head (or only checked)."""
    engine = make_engine(settings.database.url)
    if migrate:
        upgrade(engine)
    elif check_schema(engine) != head_revision():
        raise SchemaError("the database schema is not current: run `listrak-source migrate` first")
    return engine


@contextmanager
def run_context(
    settings: Settings,
    *,
    dry_run: bool = False,
    out: TextIO | None = None,
    stop: threading.Event | None = None,
    on_progress: ProgressHook | None = None,
) -> Iterator[RunContext]:
    """A run context with real adapters on a freshly opened (and migrated) database."""
    engine = open_database(settings)
    try:
        with context_over(
            settings, engine, dry_run=dry_run, out=out, stop=stop, on_progress=on_progress
        ) as ctx:
            yield ctx
    finally:
        engine.dispose()


@contextmanager
def context_over(
    settings: Settings,
    engine: Engine,
    *,
    dry_run: bool = False,
    out: TextIO | None = None,
    stop: threading.Event | None = None,
    on_progress: ProgressHook | None = None,
) -> Iterator[RunContext]:
    """A run context over an open engine, with its own Listrak client (closed at the end).

    The client is not thread-safe, so each of the daemon's concurrent runs gets its own.
    A dry run's database is one connection whose transaction is rolled back at the end.
    """
    stop = stop or threading.Event()

    def make(db: Database, emitter: Emitter) -> RunContext:
        return RunContext(
            settings, db, client, emitter, new_holder(), stop=stop, on_progress=on_progress
        )

    with listrak_client(settings) as client:
        if not dry_run:
            yield make(Database(engine), SegmentEmitter(settings.segment))
            return
        with engine.connect() as conn:
            transaction = conn.begin()
            try:
                yield make(Database(engine, connection=conn), PrintingEmitter(out))
            finally:
                transaction.rollback()


def build_daemon(settings: Settings, engine: Engine, **options: Any) -> Daemon:
    """The daemon, handed this module's context factory so each run is wired here too."""
    from ..service.daemon import Daemon  # noqa: PLC0415 - APScheduler is only needed here

    contexts = functools.partial(context_over, settings, engine)
    return Daemon(settings, engine, contexts=contexts, **options)
