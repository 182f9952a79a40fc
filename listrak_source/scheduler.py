"""`listrak-source run`: APScheduler fires one sync per list; signals stop it cleanly."""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine

from .config import ListSettings, Settings
from .errors import ConfigError, LeaseHeldError, ListrakSourceError
from .ledger import Ledger, new_holder
from .logs import log_context
from .metrics import Metrics
from .sdnotify import Notifier
from .segment import SegmentEmitter
from .store import Store
from .sync import Runtime, sync_list
from .wiring import listrak_client

log = logging.getLogger(__name__)
# Runs of different lists may overlap; one list never runs twice at once.
_MAX_PARALLEL_LISTS = 4


def trigger_for(cfg: ListSettings, settings: Settings) -> IntervalTrigger | CronTrigger:
    """The list's own schedule, else the global one; a little jitter spreads the load."""
    cron = cfg.cron or (settings.schedule.cron if cfg.interval is None else None)
    if cron:
        try:
            return CronTrigger.from_crontab(cron, timezone=UTC)
        except ValueError as exc:
            raise ConfigError(f"schedule cron {cron!r}: {exc}") from None
    interval = cfg.interval or settings.schedule.interval or timedelta(minutes=15)
    jitter = min(30.0, interval.total_seconds() / 10)
    return IntervalTrigger(seconds=interval.total_seconds(), jitter=jitter, timezone=UTC)


class Daemon:
    """Schedules the lists, serves metrics, speaks sd_notify, and stops on a signal."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        notifier: Notifier | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.notifier = notifier or Notifier()
        self.metrics = metrics or Metrics()
        self.stop = threading.Event()
        self.stopped = threading.Event()
        self._signals = 0
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(_MAX_PARALLEL_LISTS)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )

    def _runtime(self) -> Runtime:
        return Runtime(
            settings=self.settings,
            store=Store(self.engine),
            ledger=Ledger(self.engine),
            listrak=listrak_client(self.settings),
            emitter=SegmentEmitter(self.settings.segment),
            holder=new_holder(),
            stop=self.stop,
        )

    def run_list(self, cfg: ListSettings) -> None:
        """One scheduled run; errors are logged and counted, never allowed to kill the daemon."""
        if self.stop.is_set():
            return
        rt = self._runtime()
        with log_context(list_id=cfg.id):
            try:
                result = sync_list(rt, cfg)
                self.metrics.observe_run(cfg.id, result)
                log.info(
                    "list %s: %s, delivered %d, pending %d",
                    cfg.id,
                    result.status,
                    result.delivered,
                    result.pending,
                )
            except LeaseHeldError as exc:
                log.warning("%s", exc)
            except ListrakSourceError as exc:
                log.error("list %s: run failed: %s", cfg.id, exc)
            except Exception:
                log.exception("list %s: run failed unexpectedly", cfg.id)
            finally:
                rt.listrak.close()  # type: ignore[attr-defined]
        self.notifier.status(f"last run: list {cfg.id} at {datetime.now(UTC):%H:%M:%S}Z")

    def schedule(self) -> None:
        """One job per list, the first run soon after start."""
        for cfg in self.settings.lists:
            self.metrics.init_list(cfg.id)
            first = datetime.now(UTC) + timedelta(seconds=random.uniform(0, 2))
            self.scheduler.add_job(
                self.run_list,
                trigger_for(cfg, self.settings),
                args=[cfg],
                id=f"list-{cfg.id}",
                name=f"sync list {cfg.id}",
                next_run_time=first,
            )

    def handle_signal(self, signum: int, _frame: FrameType | None) -> None:
        """First signal: finish the page in hand, deliver, exit. Second: exit now."""
        self._signals += 1
        if self._signals > 1:
            log.warning(
                "second %s: exiting now; committed pages are safe", signal.Signals(signum).name
            )
            os._exit(1)
        log.info(
            "%s: finishing the page in hand and delivering what is pending",
            signal.Signals(signum).name,
        )
        self.stop.set()

    def serve_forever(self, install_signals: bool = True) -> int:
        """Run until stopped; return the exit status."""
        if install_signals:
            signal.signal(signal.SIGTERM, self.handle_signal)
            signal.signal(signal.SIGINT, self.handle_signal)
        server = self._start_metrics()
        self.schedule()
        self.scheduler.start()
        self.notifier.ready(f"scheduling {len(self.settings.lists)} list(s)")
        watchdog = self._start_watchdog()
        try:
            self.stop.wait()
        finally:
            self.notifier.stopping("finishing runs in progress")
            self.scheduler.shutdown(wait=True)
            self.stopped.set()
            if watchdog is not None:
                watchdog.join(timeout=5)
            if server is not None:
                server.close()
        log.info("stopped cleanly")
        return 0

    def _start_metrics(self) -> Any:
        port = self.settings.metrics.port
        if port is None:
            return None
        server = self.metrics.serve(port, self.settings.metrics.host)
        log.info("metrics on http://%s:%d/metrics", server.host, server.port)
        return server

    def _start_watchdog(self) -> threading.Thread | None:
        interval = self.notifier.ping_interval()
        if interval is None:
            return None
        thread = threading.Thread(
            target=_ping,
            args=(self.notifier.watchdog, interval, self.stopped),
            daemon=True,
            name="watchdog",
        )
        thread.start()
        return thread


def _ping(send: Callable[[], bool], interval: float, stopped: threading.Event) -> None:
    # Pings come from their own thread so a long Listrak page cannot starve them.
    while not stopped.wait(interval):
        send()
