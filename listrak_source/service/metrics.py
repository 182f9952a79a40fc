"""Prometheus metrics per list, on a registry of their own so tests can build several."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app

from ..engage.ingest import Ingest
from ..engage.records import CommitResult, PushResult, PushStatus
from ..records import SUCCESS_STATUSES, RunResult, Waiting
from ..tracking.records import ActivityOutcome, EventTally

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)
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
    """A running /metrics endpoint (and status page); close() stops it and frees the port."""

    host: str
    port: int
    _server: WSGIServer
    _thread: threading.Thread

    def close(self) -> None:
        """Stop serving and wait for the serving thread to end."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve(
    registry: CollectorRegistry,
    port: int,
    host: str = "127.0.0.1",
    *,
    page: Callable[[], str] | None = None,
    idle_timeout: float = 10.0,
) -> MetricsServer:
    """Serve a registry at /metrics, `page` at / and a liveness answer at /healthz, on a
    daemon thread; port 0 picks a free port.

    Threaded, IPv4 or IPv6 by the address, and silent per request. Loopback by default: the
    numbers reveal list ids and volumes, so exposing them beyond the host is a deliberate
    choice. Nothing served here changes anything: every other method is refused. A
    connection waits at most `idle_timeout` for the next bytes of a request: each holds a
    thread and a descriptor, and one left open would otherwise hold them for ever.
    """
    handler = type("Handler", (_QuietHandler,), {"timeout": idle_timeout})
    server = make_server(
        host,
        port,
        routes(registry, page),
        server_class=_server_class(host),
        handler_class=handler,
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True, name="metrics-http")
    thread.start()
    return MetricsServer(
        host=host, port=int(server.server_address[1]), _server=server, _thread=thread
    )


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    """A scrape every 15 s must not write a log line each."""

    def log_message(self, format: str, *args: Any) -> None:
        return


def _server_class(host: str) -> type[WSGIServer]:
    """The IPv6 family for an IPv6 address, else IPv4."""
    family = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][0]

    class Server(_ThreadingServer):
        address_family = family

    return Server


# What the status page's answers carry: it is read-only HTML with no script, form or link
# out, so the browser is told to load nothing and to cache nothing.
_PAGE_HEADERS = [
    ("Content-Type", "text/html; charset=utf-8"),
    ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Cache-Control", "no-store"),
]


def routes(registry: CollectorRegistry, page: Callable[[], str] | None) -> WSGIApplication:
    """/metrics, / (the status page, when there is one) and /healthz; GET and HEAD only."""
    metrics_app = make_wsgi_app(registry)

    def app(environ: WSGIEnvironment, start: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO") or "/", environ["REQUEST_METHOD"]
        if method not in ("GET", "HEAD"):
            return _answer(start, "405 Method Not Allowed", "read only\n", [("Allow", "GET, HEAD")])
        if path == "/metrics":
            return metrics_app(environ, start)  # type: ignore[no-any-return]
        if path == "/healthz":
            return _answer(start, "200 OK", "ok\n")
        if path == "/" and page is not None:
            return _page(start, page)
        return _answer(start, "404 Not Found", "not found: try /metrics\n")

    return app


def _page(start: StartResponse, page: Callable[[], str]) -> Iterable[bytes]:
    try:
        body = page()
    except Exception as exc:
        # The type only: a database error's text can carry SQL parameters (contacts' emails).
        log.warning("status page not rendered: %s", type(exc).__name__)
        return _answer(start, "503 Service Unavailable", "status unavailable; see the log\n")
    data = body.encode()
    start("200 OK", [*_PAGE_HEADERS, ("Content-Length", str(len(data)))])
    return [data]


def _answer(
    start: StartResponse, status: str, text: str, headers: list[tuple[str, str]] | None = None
) -> Iterable[bytes]:
    data = text.encode()
    start(
        status,
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(data)))]
        + (headers or []),
    )
    return [data]


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
        self._build_audience_metrics()

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
        self.schedule_period = Gauge(
            f"{PREFIX}_schedule_period_seconds",
            "How often the list's schedule fires: its interval, or a cron's shortest gap.",
            lbl,
            registry=reg,
        )
        self.last_success = Gauge(
            f"{PREFIX}_last_success_timestamp_seconds",
            "Unix time the last successful run finished.",
            lbl,
            registry=reg,
        )

    def _build_audience_metrics(self) -> None:
        reg = self.registry
        self.audience_requests = Counter(
            f"{PREFIX}_audience_requests_total",
            "Requests to the audience receiver, by the status answered.",
            ["status"],
            registry=reg,
        )
        self.audience_events = Counter(
            f"{PREFIX}_audience_events_total",
            "Audience event items by outcome: accepted, duplicate, superseded, recorded, "
            "unmapped, or the reason they were ignored.",
            ["outcome"],
            registry=reg,
        )
        self.audience_pushed = Counter(
            f"{PREFIX}_audience_values_pushed_total",
            "Profile-field values sent to Listrak, by outcome: accepted or refused.",
            ["list_id", "outcome"],
            registry=reg,
        )
        self.audience_pushes = Counter(
            f"{PREFIX}_audience_pushes_total",
            "Finished pushes of audience values, by status.",
            ["list_id", "status"],
            registry=reg,
        )
        self.audience_backlog = Gauge(
            f"{PREFIX}_audience_backlog",
            "Audience values not yet in Listrak: pending, held (not a subscriber) or dead.",
            ["list_id", "state"],
            registry=reg,
        )
        self.audience_values = Gauge(
            f"{PREFIX}_audience_values",
            "Audience values by state at the list's last sync: members, applied (read back), "
            "unverified, mismatched.",
            ["list_id", "field_id", "state"],
            registry=reg,
        )
        self.audience_last_push = Gauge(
            f"{PREFIX}_audience_last_push_timestamp_seconds",
            "Unix time the list's last push finished.",
            ["list_id"],
            registry=reg,
        )
        self.activity_events = Gauge(
            f"{PREFIX}_activity_events",
            "Track events in the ledger by name and state: pending, sent, dead.",
            ["list_id", "event", "state"],
            registry=reg,
        )
        self.activity_open_messages = Gauge(
            f"{PREFIX}_activity_open_messages",
            "Messages within the activity window at the list's last pass, and those deferred.",
            ["list_id", "state"],
            registry=reg,
        )
        self.activity_passes = Counter(
            f"{PREFIX}_activity_passes",
            "Activity passes by how they ended.",
            ["list_id", "status"],
            registry=reg,
        )
        self.activity_last_pass = Gauge(
            f"{PREFIX}_activity_last_pass_timestamp_seconds",
            "Unix time the list's last activity pass ended.",
            ["list_id"],
            registry=reg,
        )

    def answered(self, status: int) -> None:
        """The receiver answered one request."""
        self.audience_requests.labels(status=str(status)).inc()

    def ingested(self, ingest: Ingest) -> None:
        """A committed request's items, by what parsing made of them."""
        self.audience_events.labels(outcome="accepted").inc(ingest.accepted)
        for reason, count in ingest.ignored.items():
            self.audience_events.labels(outcome=reason).inc(count)

    def committed(self, result: CommitResult) -> None:
        """What the store did with a request's memberships."""
        for outcome in ("duplicates", "superseded", "recorded"):
            self.audience_events.labels(outcome=outcome).inc(getattr(result, outcome))

    def observe_push(self, list_id: int, result: PushResult) -> None:
        """Fold one finished push into the metrics."""
        key = str(list_id)
        self.audience_pushes.labels(list_id=key, status=str(result.status)).inc()
        if result.status == PushStatus.SKIPPED:
            return  # another process pushed the list: its backlog is not known here
        self.audience_pushed.labels(list_id=key, outcome="accepted").inc(result.accepted)
        self.audience_pushed.labels(list_id=key, outcome="refused").inc(result.rejected)
        for state in ("pending", "held", "dead"):
            value = getattr(result.backlog, state)
            self.audience_backlog.labels(list_id=key, state=state).set(value)
        if result.finished_at is not None and result.status != PushStatus.FAILED:
            self.audience_last_push.labels(list_id=key).set(_timestamp(result.finished_at))

    def observe_audience_values(self, list_id: int, summary: dict[int, dict[str, int]]) -> None:
        """Each field's values by state, as the list's last sync left them."""
        for field_id, counts in summary.items():
            for state in ("members", "applied", "unverified", "mismatched", "dead"):
                labels = {"list_id": str(list_id), "field_id": str(field_id), "state": state}
                self.audience_values.labels(**labels).set(counts.get(state, 0))

    def observe_activity(
        self, list_id: int, outcome: ActivityOutcome, tally: Mapping[str, EventTally]
    ) -> None:
        """Fold one activity pass, and the ledger's counts by event name, into the metrics."""
        key = str(list_id)
        self.activity_passes.labels(list_id=key, status=outcome.status).inc()
        self.activity_last_pass.labels(list_id=key).set(_timestamp(datetime.now(UTC)))
        self.activity_open_messages.labels(list_id=key, state="open").set(outcome.open_messages)
        self.activity_open_messages.labels(list_id=key, state="deferred").set(outcome.deferred)
        for event, counts in tally.items():
            for state in ("pending", "sent", "dead"):
                labels = {"list_id": key, "event": event, "state": state}
                self.activity_events.labels(**labels).set(getattr(counts, state))

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

    def serve(
        self,
        port: int,
        host: str = "127.0.0.1",
        *,
        page: Callable[[], str] | None = None,
        idle_timeout: float = 10.0,
    ) -> MetricsServer:
        """Serve these metrics (and the status page) over HTTP; see serve()."""
        return serve(self.registry, port, host, page=page, idle_timeout=idle_timeout)
