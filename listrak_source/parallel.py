"""A second process that delivers pending rows while the first one goes on scanning.

segment-analytics-python spends about 100 µs of Python per message, and a scan about as
much per contact, so on one interpreter a first sync pays for both in turn. A spawned
process with its own Client and its own database connection takes delivery onto another
core. Nothing about correctness changes: rows are marked sent only where they still carry
the message id that was accepted, so a row the scan changes meanwhile simply stays pending.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from typing import Any

from .config import ListSettings, Settings
from .delivery import deliver
from .runtime import RunResult, Runtime
from .scanning import keep_lease

log = logging.getLogger(__name__)

_IDLE_WAIT = 0.2  # seconds the helper waits for the scan to record more rows
_PARENT_CHECK = 0.5


class ParallelDelivery:
    """Starts the helper once a run has enough changes; `finish` waits and adds its counts."""

    def __init__(self, rt: Runtime, cfg: ListSettings, log_format: str = "json") -> None:
        self.rt = rt
        self.cfg = cfg
        self.threshold = rt.settings.segment.parallel_after
        self.log_format = log_format
        self._ctx = multiprocessing.get_context("spawn")
        self._done = self._ctx.Event()
        self._process: Any = None
        self._reader: Connection | None = None

    def after_page(self, result: RunResult) -> None:
        """Called after each page: start the helper when the backlog is worth a process."""
        changes = result.subscribed + result.unsubscribed + result.user_id_changed
        if self._process is None and self.threshold and changes >= self.threshold:
            self._start()

    def _start(self) -> None:
        reader, writer = self._ctx.Pipe(duplex=False)
        values = self.rt.settings.model_dump()
        self._process = self._ctx.Process(
            target=_helper_main,
            args=(values, self.cfg.id, self._done, writer),
            kwargs={"parent": os.getpid(), "log_format": self.log_format},
            name=f"listrak-source delivery {self.cfg.id}",
            daemon=True,
        )
        self._process.start()
        writer.close()
        self._reader = reader
        log.info("list %s: delivering in a second process while the scan goes on", self.cfg.id)

    def finish(self, result: RunResult) -> None:
        """Tell the helper the scan is over, wait for it (keeping the lease), add its counts."""
        if self._process is None:
            return
        self._done.set()
        renew = self.rt.settings.delivery.lease_ttl.total_seconds() / 4
        while self._process.is_alive():
            self._process.join(timeout=renew)
            keep_lease(self.rt, self.cfg)
        counts = self._reader.recv() if self._reader and self._reader.poll() else {}
        result.delivered += int(counts.get("delivered", 0))
        result.failed += int(counts.get("failed", 0))
        if self._process.exitcode:
            log.error(
                "list %s: the delivery process exited with %s; the main process "
                "delivers what is left",
                self.cfg.id,
                self._process.exitcode,
            )


def _helper_main(
    values: dict[str, Any],
    list_id: int,
    done: Event,
    out: Connection,
    *,
    parent: int,
    log_format: str,
) -> None:
    """Entry point of the spawned process."""
    # Stopping is the parent's decision: it finishes its page and then sets `done`.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    from .logs import configure_logging  # noqa: PLC0415 - the child's own setup

    settings = Settings.from_values(**values)
    configure_logging("json" if log_format == "json" else "text", secrets=settings.secrets())
    out.send(_deliver_until_done(settings, settings.list_by_id(list_id), done))
    out.close()


def _deliver_until_done(settings: Settings, cfg: ListSettings, done: Event) -> dict[str, int]:
    from .db import make_engine  # noqa: PLC0415 - heavy imports stay out of the parent's path
    from .segment import SegmentEmitter  # noqa: PLC0415
    from .store import Store  # noqa: PLC0415

    engine = make_engine(settings.database.url)
    rt = Runtime(
        settings=settings,
        store=Store(engine),
        ledger=None,
        listrak=_NoListrak(),
        emitter=SegmentEmitter(settings.segment),
        holder="delivery",
    )
    result = RunResult(list_id=cfg.id, kind="delivery", started_at=rt.clock())
    try:
        while True:
            finished = done.is_set()
            before = result.delivered + result.failed
            if not deliver(rt, cfg, result) or finished:
                break  # Segment is down, or the scan is over and this round took the rest
            if result.delivered + result.failed == before:
                done.wait(_IDLE_WAIT)
    finally:
        engine.dispose()
    return {"delivered": result.delivered, "failed": result.failed}


def _exit_with_parent(parent: int) -> None:
    # An orphan must not go on delivering beside the next run's worker: stopping here is
    # the same as a kill mid-delivery, which loses nothing.
    while os.getppid() == parent:
        time.sleep(_PARENT_CHECK)
    os._exit(1)


class _NoListrak:
    """The helper never scans."""

    def iter_pages(self, *_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("the delivery process does not scan")
