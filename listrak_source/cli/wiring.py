"""Builds real adapters from settings: the only module that knows every concrete class.

Every run context is built here, for `sync`, `backfill`, `baseline`, the demo and the
daemon alike; the daemon is handed `context_over` and asks it for one per run.
"""

from __future__ import annotations

import functools
import logging
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from sqlalchemy import Engine

from ..config import Settings
from ..delivery.context import Emitter, RunContext
from ..errors import ConfigError
from ..state import (
    Database,
    SchemaError,
    describe_db_error,
    make_engine,
    new_holder,
    sqlite_copy,
    upgrade,
)
from ..state.engine import check_schema, head_revision, sqlite_path
from .output import stdout_closed

# The adapters each command needs are imported when it builds them: `status` never loads
# the Segment library, Starlette or uvicorn, a sync loads the Segment library only to post,
# and every cron start is shorter for it.
if TYPE_CHECKING:
    from ..audiences.push import PushContext
    from ..audiences.server import ReceiverServer
    from ..listrak import ListrakClient
    from ..service.daemon import Daemon
    from ..service.metrics import Metrics

ProgressHook = Callable[[str, int], None]
log = logging.getLogger(__name__)


def listrak_client(settings: Settings, stop: threading.Event | None = None) -> ListrakClient:
    """A Listrak client configured from [listrak]; `stop` ends its retry and pacing waits."""
    from ..listrak import ListrakClient, stoppable_sleep  # noqa: PLC0415 - when a run starts

    s = settings.listrak
    return ListrakClient(
        client_id=s.client_id,
        client_secret=s.client_secret.get_secret_value(),
        base_url=s.base_url,
        auth_url=s.auth_url,
        timeout=s.timeout,
        max_attempts=s.max_attempts,
        requests_per_second=s.requests_per_second,
        sleep=time.sleep if stop is None else stoppable_sleep(stop),
        max_pages=s.max_pages,
        max_empty_pages=s.max_empty_pages,
    )


def new_database(settings: Settings) -> Path | None:
    """The SQLite file the config names, when it does not exist yet (in a folder that does:
    a missing folder is an error of its own)."""
    path = sqlite_path(settings.database.url)
    missing = path is not None and not path.exists() and path.parent.is_dir()
    return path if missing else None


def probe_segment(settings: Settings, *, timeout: float, retries: int) -> str | None:
    """Post an empty batch to segment.host: None when Segment took it, else why not."""
    from ..segment import SegmentEmitter  # noqa: PLC0415 - only `check` probes

    patient_less = settings.segment.model_copy(update={"timeout": timeout, "max_retries": retries})
    return SegmentEmitter(patient_less).probe()


def open_database(settings: Settings, *, migrate: bool = True) -> Engine:
    """The engine, with the schema brought to head (or only checked).

    A command that only reads never creates an SQLite file; one that writes says when it
    does, since a new database means every subscriber is new to it.
    """
    new = new_database(settings)
    if new is not None and not migrate:
        raise ConfigError(
            f"there is no database at {new} yet: `listrak-source sync` (or `migrate`) makes it"
        )
    if new is not None:
        log.info("creating a new database at %s: there was none", new)
    engine = make_engine(settings.database.url)
    try:
        if migrate:
            upgrade(engine)
        elif check_schema(engine) != head_revision():
            raise SchemaError(
                "the database schema is not current: run `listrak-source migrate` first"
            )
    except BaseException:
        engine.dispose()  # its pooled connections would otherwise outlive the error
        raise
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
    fresh = dry_run and new_database(settings) is not None
    with (
        _scratch_database() if fresh else _opened(settings) as engine,
        context_over(
            settings, engine, dry_run=dry_run, out=out, stop=stop, on_progress=on_progress
        ) as ctx,
    ):
        yield ctx


@contextmanager
def _opened(settings: Settings) -> Iterator[Engine]:
    engine = open_database(settings)
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def _scratch_database() -> Iterator[Engine]:
    """An empty database in a temporary folder: a dry run before the first sync changes
    nothing, so it does not create the configured one either."""
    with tempfile.TemporaryDirectory(prefix="listrak-source-dry-run-") as folder:
        engine = make_engine(f"sqlite:///{Path(folder) / 'empty.db'}")
        try:
            upgrade(engine)
            yield engine
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

    The client is not thread-safe, so each of the daemon's concurrent runs gets its own;
    `stop` cuts short its waits to retry. A dry run prints instead of sending, and its
    database keeps nothing (see `_state`).
    """
    from ..segment import PrintingEmitter, SegmentEmitter  # noqa: PLC0415 - when a run starts

    stop = stop or threading.Event()
    emitter: Emitter = (
        PrintingEmitter(out, on_closed=_reader_gone(stop))
        if dry_run
        else SegmentEmitter(settings.segment, stop=stop)
    )
    with listrak_client(settings, stop) as client, _state(engine, dry_run=dry_run) as db:
        yield RunContext(
            settings,
            db,
            client,
            emitter,
            new_holder(),
            stop=stop,
            on_progress=on_progress,
            dry_run=dry_run,
        )


def _reader_gone(stop: threading.Event) -> Callable[[], None]:
    """A dry run whose reader went away (`| head`) stops, as if by a signal, and quietly."""

    def closed() -> None:
        stdout_closed()
        stop.set()

    return closed


@contextmanager
def _state(engine: Engine, *, dry_run: bool) -> Iterator[Database]:
    """The database a run writes; a dry run's writes are thrown away without holding others up.

    On SQLite a dry run works on a copy taken through the backup API (a reader of the real
    file, which WAL lets writers pass), so no write transaction spans its pages. On
    PostgreSQL it writes in one transaction that is rolled back: row locks there touch only
    its own list, which the list's advisory lock keeps every real run away from meanwhile.
    """
    if not dry_run:
        yield Database(engine)
    elif engine.dialect.name == "sqlite":
        with sqlite_copy(engine) as copy:
            yield Database(copy)
    else:
        with engine.connect() as conn:
            transaction = conn.begin()
            try:
                yield Database(engine, connection=conn)
            finally:
                transaction.rollback()


@contextmanager
def push_context(
    settings: Settings,
    engine: Engine,
    *,
    dry_run: bool = False,
    out: TextIO | None = None,
    stop: threading.Event | None = None,
    on_progress: ProgressHook | None = None,
) -> Iterator[PushContext]:
    """A push context with its own Listrak client; a dry run prints requests and keeps nothing."""
    from ..audiences.push import PushContext  # noqa: PLC0415 - only pushes need it
    from ..listrak import PrintingWriter  # noqa: PLC0415

    stop = stop or threading.Event()
    with listrak_client(settings, stop) as client, _state(engine, dry_run=dry_run) as db:
        writer = PrintingWriter(out, on_closed=_reader_gone(stop)) if dry_run else client
        yield PushContext(settings, db, writer, stop=stop, on_progress=on_progress)


def build_daemon(settings: Settings, engine: Engine, **options: Any) -> Daemon:
    """The daemon, handed this module's factories so each run and push is wired here too,
    and the audience receiver when [receiver] is set."""
    from ..service.daemon import Daemon  # noqa: PLC0415 - APScheduler is only needed here

    contexts = functools.partial(context_over, settings, engine)
    pushes = functools.partial(push_context, settings, engine)
    page = functools.partial(status_page, settings, Database(engine))
    daemon = Daemon(settings, engine, contexts=contexts, pushes=pushes, page=page, **options)
    if settings.receiver is not None:
        daemon.receiver = build_receiver(settings, Database(engine), daemon.metrics)
    return daemon


def status_page(settings: Settings, db: Database) -> str:
    """The page the daemon serves at / of its metrics port: what `status --json` says."""
    from ..service.statuspage import render  # noqa: PLC0415 - only the daemon serves it
    from .health import gather  # noqa: PLC0415

    return render(gather(settings, db, now=datetime.now(UTC), daemon=True))


def build_receiver(settings: Settings, db: Database, metrics: Metrics) -> ReceiverServer:
    """The audience receiver, committing each request to the state before it answers."""
    # Starlette and uvicorn load only for the daemon's receiver.
    from ..audiences.receiver import make_app  # noqa: PLC0415
    from ..audiences.server import ReceiverServer  # noqa: PLC0415
    from ..engage.ingest import Ingest  # noqa: PLC0415
    from ..engage.settings import build_mappings  # noqa: PLC0415

    if settings.receiver is None:
        raise ValueError("the receiver needs a [receiver] section")

    def commit(ingest: Ingest) -> None:
        metrics.committed(db.audiences.commit(ingest, datetime.now(UTC)))

    mappings = build_mappings(settings.audiences)
    app = make_app(
        settings.receiver, mappings, commit, counters=metrics, describe_error=describe_db_error
    )
    return ReceiverServer(app, settings.receiver)
