"""`listrak-source run`: APScheduler fires one sync per list; signals stop it cleanly."""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Protocol

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine

from ..activity.run import follow_sync
from ..audiences.push import PushContext, prune_inbox, push_list
from ..config import ListSettings, Settings
from ..delivery.context import RunContext
from ..errors import ConfigError, ListBusyError, RanRecentlyError, describe_error
from ..logs import log_context
from ..records import RunKind, RunResult, RunStatus
from ..state import Database
from ..subscribers.sync import sync_list
from .metrics import Metrics, MetricsServer
from .schedules import crontab_trigger, list_schedule, period
from .sdnotify import Notifier
from .signals import on_stop_signals

# Builds one run's context (with its own Listrak client) and closes it afterwards.
ContextFactory = Callable[..., AbstractContextManager[RunContext]]
# The same for one push of a list's audience values.
PushFactory = Callable[..., AbstractContextManager[PushContext]]


class Receiver(Protocol):
    """The audience receiver's server: start() listens, stop() drains requests in flight."""

    def start(self) -> object: ...

    def stop(self) -> None: ...


log = logging.getLogger(__name__)
_SIGNAL_CHECK_SECONDS = 0.5
# Runs of different lists may overlap; one list never runs twice at once.
_MAX_PARALLEL_LISTS = 4
_MAX_JITTER = 30.0
# Several lists starting together need not hit Listrak in the same second.
_FIRST_RUN_SPREAD = 2.0
# A list whose last run (this daemon's or another's) started within this share of its
# schedule's period is not due; the rest of the period absorbs jitter and clock drift.
_DUE_SHARE = 0.8
# Pushes are short and frequent: they get threads of their own, so long scans never delay them.
_PUSH_THREADS = 2
_PRUNE_EVERY = timedelta(hours=1)


def trigger_for(cfg: ListSettings, settings: Settings) -> IntervalTrigger | CronTrigger:
    """The list's own schedule, else the global one; a little jitter spreads the load."""
    schedule = list_schedule(cfg, settings)
    if isinstance(schedule, str):
        try:
            return crontab_trigger(schedule)
        except ValueError as exc:
            raise ConfigError(f"list {cfg.id}: schedule cron {schedule!r}: {exc}") from None
    seconds = schedule.total_seconds()
    # A tenth of the interval keeps a "1s" test schedule at 0.1 s and caps "15m" at 30 s.
    return IntervalTrigger(seconds=seconds, jitter=min(_MAX_JITTER, seconds / 10), timezone=UTC)


class Daemon:
    """Schedules the lists, serves metrics, speaks sd_notify, and stops on a signal."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        contexts: ContextFactory,
        pushes: PushFactory | None = None,
        receiver: Receiver | None = None,
        notifier: Notifier | None = None,
        metrics: Metrics | None = None,
        page: Callable[[], str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.contexts = contexts
        self.pushes = pushes
        self.receiver = receiver
        self.db = Database(engine)
        self.notifier = notifier or Notifier()
        self.metrics = metrics or Metrics()
        # The read-only status page served beside /metrics.
        self.page = page
        self.clock = clock
        self.stop = threading.Event()
        self.stopped = threading.Event()
        self._signals = 0
        self._lock = threading.Lock()
        # list id -> clock of its last progress, for runs in progress.
        self._active: dict[int, float] = {}
        self.scheduler = BackgroundScheduler(
            executors={
                "default": ThreadPoolExecutor(_MAX_PARALLEL_LISTS),
                "pushes": ThreadPoolExecutor(_PUSH_THREADS),
            },
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )

    def _progress_hook(self, list_id: int) -> Callable[[str, int], None]:
        return lambda _stage, _count: self._mark(list_id)

    def _mark(self, list_id: int) -> None:
        with self._lock:
            self._active[list_id] = self.clock()

    def run_list(self, cfg: ListSettings) -> None:
        """One scheduled run; errors are logged and counted, never allowed to kill the daemon."""
        if self.stop.is_set():
            return
        started = datetime.now(UTC)
        # Each page and delivery chunk is a sign of life for the watchdog.
        progress = self._progress_hook(cfg.id)
        with (
            log_context(list_id=cfg.id),
            self.contexts(stop=self.stop, on_progress=progress) as ctx,
        ):
            self._mark(cfg.id)
            try:
                result = sync_list(ctx, cfg, min_gap=self._min_gap(cfg))
                activity = follow_sync(ctx, cfg, result)
                if activity is not None:
                    self.metrics.observe_activity(cfg.id, activity, self.db.activity.tally(cfg.id))
                self._observe(cfg, result)
            except RanRecentlyError as exc:
                log.debug("%s", exc)  # another daemon of the fleet ran it: nothing to do
                return
            except ListBusyError as exc:
                log.info("%s", exc)
                return
            except Exception as exc:
                # One line: a traceback of a database error would carry its SQL and parameters.
                log.error("list %s: run failed: %s", cfg.id, describe_error(exc))
                self._observe_failure(cfg, started, exc)
            finally:
                with self._lock:
                    self._active.pop(cfg.id, None)
        self.notifier.status(f"last run: list {cfg.id} at {datetime.now(UTC):%H:%M:%S}Z")

    def _min_gap(self, cfg: ListSettings) -> timedelta:
        """How long after the list's last run, by any daemon, it is due again."""
        return period(list_schedule(cfg, self.settings)) * _DUE_SHARE

    def _observe_failure(self, cfg: ListSettings, started: datetime, exc: Exception) -> None:
        # sync_list recorded the run as failed; the metrics must count it too.
        error = describe_error(exc)
        failed = RunResult(cfg.id, RunKind.SYNC, started, status=RunStatus.FAILED, error=error)
        self.metrics.observe_run(cfg.id, failed)

    def _observe(self, cfg: ListSettings, result: RunResult) -> None:
        self.metrics.observe_run(cfg.id, result)
        if self.settings.audience_fields(cfg.id):
            # The scan has just read the fields back: a good moment for the per-field counts.
            summary = self.db.audience_reports.summary(cfg.id)
            self.metrics.observe_audience_values(cfg.id, summary)
        with log_context(run_id=result.run_id or None):
            log.info(
                "list %s: %s, scanned %d, delivered %d, pending %d",
                cfg.id,
                result.status,
                result.scanned,
                result.delivered,
                result.pending,
            )

    def push_list(self, list_id: int) -> None:
        """One scheduled push of a list's audience values; errors are logged, never fatal."""
        if self.stop.is_set() or self.pushes is None:
            return
        with log_context(list_id=list_id), self.pushes(stop=self.stop) as ctx:
            try:
                result = push_list(ctx, list_id)
            except Exception as exc:
                # One line: a traceback of a database error would carry its SQL and parameters.
                log.error("list %s: push failed: %s", list_id, describe_error(exc))
                return
        self.metrics.observe_push(list_id, result)
        if result.accepted or result.rejected or result.status != "ok":
            log.info(
                "list %s: push %s, %d accepted, %d refused, %d pending, %d held",
                list_id,
                result.status,
                result.accepted,
                result.rejected,
                result.backlog.pending,
                result.backlog.held,
            )

    def prune(self) -> None:
        """Forget old messageIds; run hourly."""
        if self.pushes is None:
            return
        try:
            with self.pushes(stop=self.stop) as ctx:
                prune_inbox(ctx)
        except Exception as exc:
            log.warning("audience inbox not pruned: %s", type(exc).__name__)

    def schedule_pushes(self) -> None:
        """One push job per list an audience writes, on push.interval, plus the inbox pruning."""
        lists = list(dict.fromkeys(a.list_id for a in self.settings.audiences))
        if self.pushes is None or not lists:
            return
        seconds = self.settings.push.interval.total_seconds()
        for list_id in lists:
            self.scheduler.add_job(
                self.push_list,
                IntervalTrigger(seconds=seconds, jitter=min(_MAX_JITTER, seconds / 10)),
                args=[list_id],
                id=f"push-{list_id}",
                name=f"push audiences of list {list_id}",
                executor="pushes",
                # The first push comes one interval after start, like every later one: a
                # backfill arriving at start is then taken in before it is pushed.
            )
        self.scheduler.add_job(
            self.prune, IntervalTrigger(seconds=_PRUNE_EVERY.total_seconds()), id="prune-inbox"
        )

    def schedule(self, triggers: dict[int, IntervalTrigger | CronTrigger]) -> None:
        """One job per list: on an interval the first run comes soon after start, on cron
        at the first time the expression names (an operator chose those times on purpose)."""
        for cfg in self.settings.lists:
            self._restore_metrics(cfg.id)
            # Alerts judge a list overdue against its own schedule.
            seconds = period(list_schedule(cfg, self.settings)).total_seconds()
            self.metrics.schedule_period.labels(list_id=str(cfg.id)).set(seconds)
            trigger = triggers[cfg.id]
            first: dict[str, datetime] = {}
            if isinstance(trigger, IntervalTrigger):
                spread = random.uniform(0, min(_FIRST_RUN_SPREAD, trigger.jitter or 0))
                first["next_run_time"] = datetime.now(UTC) + timedelta(seconds=spread)
            self.scheduler.add_job(
                self.run_list,
                trigger,
                args=[cfg],
                id=f"list-{cfg.id}",
                name=f"sync list {cfg.id}",
                **first,
            )

    def _restore_metrics(self, list_id: int) -> None:
        """Gauges start from the database, so a restart does not reset alerts on staleness."""
        self.metrics.init_list(list_id)
        pending, dead = self.db.runs.backlog(list_id)
        self.metrics.pending.labels(list_id=str(list_id)).set(pending)
        self.metrics.dead.labels(list_id=str(list_id)).set(dead)
        last = self.db.runs.last_success(list_id)
        if last is not None:
            stamp = last if last.tzinfo else last.replace(tzinfo=UTC)
            self.metrics.last_success.labels(list_id=str(list_id)).set(stamp.timestamp())

    def handle_signal(self, signum: int, _frame: FrameType | None) -> None:
        """First signal: stop scanning, deliver what is stored, exit. Second: exit now."""
        name = signal.Signals(signum).name
        self._signals += 1
        if self._signals > 1:
            # The kernel or the database server frees the lists' locks as the process ends;
            # runs left open are closed by the next run of each list.
            log.warning("second %s: exiting now; committed pages are safe", name)
            logging.shutdown()
            os._exit(128 + signum)
        log.info("%s: finishing the page in hand and delivering what is pending", name)
        self.stop.set()

    def healthy(self) -> bool:
        """The scheduler runs, and no run has gone without progress for `stall_timeout`."""
        # While stopping, the scheduler is shut down on purpose; TimeoutStopSec bounds that.
        if not (self.scheduler.running or self.stop.is_set()):
            return False
        limit = self.settings.schedule.stall_timeout.total_seconds()
        now = self.clock()
        with self._lock:
            return all(now - seen <= limit for seen in self._active.values())

    def serve_forever(self, install_signals: bool = True) -> int:
        """Run until stopped; return the exit status."""
        triggers = {cfg.id: trigger_for(cfg, self.settings) for cfg in self.settings.lists}
        if install_signals:
            on_stop_signals(self.handle_signal)
        self.schedule(triggers)
        self.schedule_pushes()
        if self.receiver is not None:
            self.receiver.start()
        server = self._start_metrics()
        self.scheduler.start()
        self.notifier.ready(f"scheduling {len(self.settings.lists)} list(s)")
        watchdog = self._start_watchdog()
        try:
            # Python runs signal handlers on the main thread, and only when it runs Python
            # code: if the kernel hands SIGTERM to another thread (a page reader blocked
            # on a socket), an untimed wait here would never notice it.
            while not self.stop.wait(_SIGNAL_CHECK_SECONDS):
                pass
        finally:
            self.notifier.stopping("finishing runs in progress")
            if self.receiver is not None:
                # Stop accepting, and answer what is in flight only once it is committed.
                self.receiver.stop()
            self.scheduler.shutdown(wait=True)
            self.stopped.set()
            if watchdog is not None:
                watchdog.join(timeout=5)
            if server is not None:
                server.close()
            self.notifier.close()
        log.info("stopped cleanly")
        return 0

    def _start_metrics(self) -> MetricsServer | None:
        port = self.settings.metrics.port
        if port is None:
            return None
        try:
            server = self.metrics.serve(port, self.settings.metrics.host, page=self.page)
        except OSError as exc:
            raise ConfigError(f"metrics.port: cannot serve on {port}: {exc.strerror}") from None
        log.info("metrics on http://%s:%d/metrics, status page on /", server.host, server.port)
        return server

    def _start_watchdog(self) -> threading.Thread | None:
        interval = self.notifier.ping_interval()
        if interval is None:
            return None
        thread = threading.Thread(
            target=_ping,
            args=(self.notifier.watchdog, self.healthy, interval, self.stopped),
            daemon=True,
            name="watchdog",
        )
        thread.start()
        return thread


def _ping(
    send: Callable[[], bool],
    healthy: Callable[[], bool],
    interval: float,
    stopped: threading.Event,
) -> None:
    # Pings come from their own thread so a long Listrak page cannot starve them; a stalled
    # run stops them, so systemd's watchdog restarts the worker.
    warned = False
    while not stopped.wait(interval):
        if healthy():
            send()
            warned = False
        elif not warned:
            log.error(
                "unhealthy: a run has made no progress for stall_timeout; watchdog pings stop"
            )
            warned = True
