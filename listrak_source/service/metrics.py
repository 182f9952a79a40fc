"""Prometheus metrics per list, on a registry of their own so tests can build several."""

from __future__ import annotations

import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from ..records import SUCCESS_STATUSES, RunResult, Waiting

PREFIX = "listrak_source"
CHANGE_KINDS = ("subscribed", "unsubscribed", "user_id")
# A run of a small list takes seconds; a first scan of a million contacts can take an hour.
DURATION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0)
# The statuses a run whose scan completed ends with; Runs.last_success agrees.
DEFAULT_SUCCESS_STATUSES: frozenset[str] = frozenset(SUCCESS_STATUSES)


# Why pending rows wait, as the metric's `reason` label: the first word of a Waiting reason.
WAIT_REASONS = {
    "not yet sent": "not_yet_sent",
    "outage": "outage",
    "rate limited": "rate_limited",
    "stopped": "stopped",
    "rejected": "rejected",
}


def wait_reason(reason: str) -> str:
    """The label for a Waiting reason (`outage: Segment answered 503 …` is `outage`)."""
    for prefix, label in WAIT_REASONS.items():
        if reason.startswith(prefix):
            return label
    return "other"


@dataclass
class MetricsServer:
    """A running /metrics endpoint; close() stops it and frees the port."""

    host: str
    port: int
    _server: WSGIServer
    _thread: threading.Thread

    def close(self) -> None:
        """Stop serving and wait for the serving thread to end."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve(registry: CollectorRegistry, port: int, host: str = "127.0.0.1") -> MetricsServer:
    """Serve a registry over HTTP on a daemon thread; port 0 picks a free port.

    prometheus_client's own server: threaded, IPv4 or IPv6 by the address, and silent per
    scrape. Loopback by default: the numbers reveal list ids and volumes, so exposing them
    beyond the host is a deliberate choice.
    """
    server, thread = start_http_server(port, addr=host, registry=registry)
    return MetricsServer(
        host=host, port=int(server.server_address[1]), _server=server, _thread=thread
    )


def _timestamp(moment: datetime) -> float:
    # A naive datetime from the store is UTC by the project's convention.
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


class Metrics:
    """Every metric the worker exports, labelled by list_id."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        success_statuses: Collection[str] = DEFAULT_SUCCESS_STATUSES,
    ) -> None:
        self.registry = CollectorRegistry() if registry is None else registry
        self._success = frozenset(success_statuses)
        self._build_counters()
        self._build_gauges()

    def _build_counters(self) -> None:
        reg, lbl = self.registry, ["list_id"]
        self.contacts_scanned = Counter(
            f"{PREFIX}_contacts_scanned_total", "Contacts read from Listrak.", lbl, registry=reg
        )
        self.changes = Counter(
            f"{PREFIX}_changes_total",
            "Changes detected, by kind: subscribed, unsubscribed, user_id.",
            [*lbl, "kind"],
            registry=reg,
        )
        self.delivered = Counter(
            f"{PREFIX}_messages_delivered_total",
            "Identify calls Segment accepted.",
            lbl,
            registry=reg,
        )
        self.failed = Counter(
            f"{PREFIX}_messages_failed_total", "Delivery attempts that failed.", lbl, registry=reg
        )
        self.runs = Counter(
            f"{PREFIX}_runs_total", "Finished runs, by status.", [*lbl, "status"], registry=reg
        )

    def _build_gauges(self) -> None:
        reg, lbl = self.registry, ["list_id"]
        self.dead = Gauge(
            f"{PREFIX}_messages_dead", "Messages that ran out of attempts.", lbl, registry=reg
        )
        self.pending = Gauge(
            f"{PREFIX}_messages_pending", "Changes not yet accepted by Segment.", lbl, registry=reg
        )
        self.waiting = Gauge(
            f"{PREFIX}_messages_waiting",
            "Pending messages by why they wait: not_yet_sent, outage, rate_limited, stopped, "
            "rejected.",
            [*lbl, "reason"],
            registry=reg,
        )
        self.next_attempt = Gauge(
            f"{PREFIX}_next_attempt_timestamp_seconds",
            "Unix time the earliest refused message is tried again (0: none waits).",
            lbl,
            registry=reg,
        )
        self.run_duration = Histogram(
            f"{PREFIX}_run_duration_seconds",
            "Wall time of one run of one list.",
            lbl,
            buckets=DURATION_BUCKETS,
            registry=reg,
        )
        self.last_success = Gauge(
            f"{PREFIX}_last_success_timestamp_seconds",
            "Unix time the last successful run finished.",
            lbl,
            registry=reg,
        )

    def init_list(self, list_id: int) -> None:
        """Create a list's series at zero, so alerts see it before its first run ends."""
        key = str(list_id)
        for metric in (self.contacts_scanned, self.delivered, self.failed, self.dead, self.pending):
            metric.labels(list_id=key)
        for kind in CHANGE_KINDS:
            self.changes.labels(list_id=key, kind=kind)

    def observe_run(self, list_id: int, result: RunResult) -> None:
        """Fold one finished run into the metrics."""
        key = str(list_id)
        self.contacts_scanned.labels(list_id=key).inc(result.scanned)
        counts = (result.subscribed, result.unsubscribed, result.user_id_changed)
        for kind, count in zip(CHANGE_KINDS, counts, strict=True):
            self.changes.labels(list_id=key, kind=kind).inc(count)
        self.delivered.labels(list_id=key).inc(result.delivered)
        self.failed.labels(list_id=key).inc(result.failed)
        self.dead.labels(list_id=key).set(result.dead)
        self.pending.labels(list_id=key).set(result.pending)
        self._observe_waiting(key, result.waiting)
        # A result observed before sync stamped it finished ends now.
        finished = _timestamp(result.finished_at or datetime.now(UTC))
        duration = finished - _timestamp(result.started_at)
        self.run_duration.labels(list_id=key).observe(max(duration, 0.0))
        self.runs.labels(list_id=key, status=result.status).inc()
        if result.status in self._success:
            self.last_success.labels(list_id=key).set(finished)

    def _observe_waiting(self, key: str, waiting: Sequence[Waiting]) -> None:
        """Pending rows by why they wait, and when the earliest that backs off is due."""
        rows = dict.fromkeys(set(WAIT_REASONS.values()) | {"other"}, 0)
        for wait in waiting:
            rows[wait_reason(wait.reason)] += wait.rows
        for reason, count in rows.items():
            self.waiting.labels(list_id=key, reason=reason).set(count)
        due = [w.next_attempt_at for w in waiting if w.next_attempt_at is not None]
        self.next_attempt.labels(list_id=key).set(_timestamp(min(due)) if due else 0)

    def serve(self, port: int, host: str = "127.0.0.1") -> MetricsServer:
        """Serve these metrics over HTTP; see serve()."""
        return serve(self.registry, port, host)
