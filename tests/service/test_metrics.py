"""Metrics as Prometheus scrapes them: over real HTTP, from a registry of their own."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from listrak_source.records import RunKind, RunResult, RunStatus, Waiting
from listrak_source.service.metrics import Metrics, MetricsServer
from listrak_source.tracking.records import ActivityOutcome, EventTally

STARTED = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def fake_run(**changes: Any) -> RunResult:
    """A finished run's outcome, as sync records it."""
    values: dict[str, Any] = {
        "list_id": 1001,
        "kind": RunKind.SYNC,
        "started_at": STARTED,
        "status": RunStatus.OK,
        "scanned": 5000,
        "subscribed": 12,
        "unsubscribed": 3,
        "user_id_changed": 2,
        "delivered": 17,
        "failed": 1,
        "dead": 1,
        "pending": 0,
        "finished_at": STARTED + timedelta(seconds=42),
    }
    return RunResult(**(values | changes))


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def server(metrics: Metrics) -> Iterator[MetricsServer]:
    handle = metrics.serve(0)
    yield handle
    handle.close()


def _scrape(server: MetricsServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(f"http://{server.host}:{server.port}/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return _samples(response.text)


def test_observe_run_over_http(metrics: Metrics, server: MetricsServer) -> None:
    metrics.observe_run(1001, fake_run())
    metrics.observe_run(1001, fake_run(status=RunStatus.FAILED, scanned=10, dead=4, pending=9))
    s = _scrape(server)
    lst = (("list_id", "1001"),)
    assert s[("listrak_source_contacts_scanned_total", lst)] == 5010
    assert s[("listrak_source_changes_total", (("kind", "subscribed"), *lst))] == 24
    assert s[("listrak_source_changes_total", (("kind", "unsubscribed"), *lst))] == 6
    assert s[("listrak_source_changes_total", (("kind", "user_id"), *lst))] == 4
    assert s[("listrak_source_messages_delivered_total", lst)] == 34
    assert s[("listrak_source_messages_failed_total", lst)] == 2
    assert s[("listrak_source_messages_dead", lst)] == 4  # a gauge: the latest value
    assert s[("listrak_source_messages_pending", lst)] == 9
    assert s[("listrak_source_runs_total", (*lst, ("status", "ok")))] == 1
    assert s[("listrak_source_runs_total", (*lst, ("status", "failed")))] == 1
    assert s[("listrak_source_run_duration_seconds_count", lst)] == 2
    assert s[("listrak_source_run_duration_seconds_sum", lst)] == 84
    assert s[("listrak_source_run_duration_seconds_bucket", (("le", "60.0"), *lst))] == 2
    assert s[("listrak_source_run_duration_seconds_bucket", (("le", "30.0"), *lst))] == 0
    # Only the successful run moves the last-success time.
    finished = (STARTED + timedelta(seconds=42)).timestamp()
    assert s[("listrak_source_last_success_timestamp_seconds", lst)] == finished


def test_failed_run_leaves_last_success_unset(metrics: Metrics, server: MetricsServer) -> None:
    metrics.observe_run(7, fake_run(status="failed"))
    s = _scrape(server)
    assert ("listrak_source_last_success_timestamp_seconds", (("list_id", "7"),)) not in s


def test_naive_datetimes_are_utc_and_durations_never_negative(metrics: Metrics) -> None:
    naive = datetime(2025, 1, 2, 3, 4, 5)
    metrics.observe_run(5, fake_run(started_at=naive + timedelta(seconds=1), finished_at=naive))
    s = _samples(_exposition(metrics))
    assert s[("listrak_source_run_duration_seconds_sum", (("list_id", "5"),))] == 0
    assert s[("listrak_source_last_success_timestamp_seconds", (("list_id", "5"),))] == (
        naive.replace(tzinfo=UTC).timestamp()
    )


def test_init_list_exports_zeros_before_the_first_run(metrics: Metrics) -> None:
    metrics.init_list(42)
    s = _samples(_exposition(metrics))
    assert s[("listrak_source_messages_pending", (("list_id", "42"),))] == 0
    assert s[("listrak_source_changes_total", (("kind", "user_id"), ("list_id", "42")))] == 0


def test_custom_success_statuses() -> None:
    metrics = Metrics(success_statuses={"completed"})
    metrics.observe_run(1, fake_run(status="ok"))
    metrics.observe_run(2, fake_run(status="completed"))
    s = _samples(_exposition(metrics))
    assert ("listrak_source_last_success_timestamp_seconds", (("list_id", "1"),)) not in s
    assert ("listrak_source_last_success_timestamp_seconds", (("list_id", "2"),)) in s


def test_partial_counts_as_success_and_missing_finish_means_now(metrics: Metrics) -> None:
    before = datetime.now(UTC).timestamp()
    metrics.observe_run(8, fake_run(status=RunStatus.PARTIAL, finished_at=None))
    s = _samples(_exposition(metrics))
    assert s[("listrak_source_last_success_timestamp_seconds", (("list_id", "8"),))] >= before


def test_pending_rows_by_why_they_wait_and_the_next_attempt(metrics: Metrics) -> None:
    later = STARTED + timedelta(hours=1)
    waiting = [
        Waiting("outage: Segment answered 503 (internal_error): down", 90, None),
        Waiting("rejected: Segment answered 400 (invalid_request): bad", 3, later),
        Waiting("not yet sent", 7, None),
    ]
    metrics.observe_run(1001, fake_run(status=RunStatus.PARTIAL, pending=100, waiting=waiting))
    s = _samples(_exposition(metrics))
    lst = (("list_id", "1001"),)
    by_reason = {
        reason: s[("listrak_source_messages_waiting", (*lst, ("reason", reason)))]
        for reason in ("outage", "rejected", "not_yet_sent", "rate_limited", "stopped")
    }
    assert by_reason == {
        "outage": 90,
        "rejected": 3,
        "not_yet_sent": 7,
        "rate_limited": 0,
        "stopped": 0,
    }
    assert s[("listrak_source_next_attempt_timestamp_seconds", lst)] == later.timestamp()


def test_registries_are_independent() -> None:
    first, second = Metrics(), Metrics()
    first.observe_run(1, fake_run())
    assert 'list_id="1"' in _exposition(first)
    assert 'list_id="1"' not in _exposition(second)


def test_serves_on_ipv6_loopback(metrics: Metrics) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        handle = metrics.serve(0, host="::1")
    except OSError as exc:
        pytest.skip(f"cannot bind ::1: {exc}")
    try:
        metrics.init_list(3)
        response = httpx.get(f"http://[::1]:{handle.port}/metrics", timeout=5)
        assert 'listrak_source_messages_pending{list_id="3"} 0.0' in response.text
    finally:
        handle.close()


def test_close_frees_the_port(metrics: Metrics) -> None:
    handle = metrics.serve(0)
    port = handle.port
    assert port > 0
    handle.close()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
    # The same port can be bound again at once.
    again = metrics.serve(port)
    assert again.port == port
    again.close()


def _exposition(metrics: Metrics) -> str:
    from prometheus_client import generate_latest

    return generate_latest(metrics.registry).decode()


def test_audience_metrics_over_http(metrics: Metrics, server: MetricsServer) -> None:
    from listrak_source.engage.ingest import Ingest
    from listrak_source.engage.records import Backlog, CommitResult, PushResult, PushStatus

    metrics.answered(200)
    metrics.answered(401)
    metrics.ingested(Ingest((), {"unmapped": 2, "bad_timestamp": 1}))
    metrics.committed(CommitResult(received=9, duplicates=3, superseded=1, recorded=4))
    pushed = PushResult(
        1001,
        STARTED,
        status=PushStatus.PARTIAL,
        finished_at=STARTED + timedelta(seconds=2),
        accepted=7,
        rejected=1,
        backlog=Backlog(pending=2, held=5, dead=1),
    )
    metrics.observe_push(1001, pushed)
    metrics.observe_audience_values(1001, {901: {"members": 8, "applied": 6, "mismatched": 1}})
    s = _scrape(server)
    lst = ("list_id", "1001")
    assert s[("listrak_source_audience_requests_total", (("status", "401"),))] == 1
    assert s[("listrak_source_audience_events_total", (("outcome", "unmapped"),))] == 2
    assert s[("listrak_source_audience_events_total", (("outcome", "duplicates"),))] == 3
    assert s[("listrak_source_audience_events_total", (("outcome", "recorded"),))] == 4
    assert s[("listrak_source_audience_values_pushed_total", (lst, ("outcome", "accepted")))] == 7
    assert s[("listrak_source_audience_pushes_total", (lst, ("status", "partial")))] == 1
    assert s[("listrak_source_audience_backlog", (lst, ("state", "held")))] == 5
    assert (
        s[("listrak_source_audience_last_push_timestamp_seconds", (lst,))]
        == (STARTED + timedelta(seconds=2)).timestamp()
    )
    values = (("field_id", "901"), lst, ("state", "applied"))
    assert s[("listrak_source_audience_values", values)] == 6


def test_the_page_beside_the_metrics_is_read_only_and_fails_quietly(metrics: Metrics) -> None:
    def broken() -> str:
        raise RuntimeError("database said: no row for jane@example.com")

    handle = metrics.serve(0, page=broken)
    base = f"http://127.0.0.1:{handle.port}"
    try:
        page = httpx.get(f"{base}/", timeout=5)
        # The database's words can carry addresses and SQL: only a plain line goes out.
        assert page.status_code == 503 and "example.com" not in page.text
        assert httpx.get(f"{base}/metrics", timeout=5).status_code == 200
        assert httpx.get(f"{base}/healthz", timeout=5).text == "ok\n"
        assert httpx.get(f"{base}/other", timeout=5).status_code == 404
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            for path in ("/", "/metrics"):
                answer = httpx.request(method, f"{base}{path}", timeout=5)
                assert answer.status_code == 405 and answer.headers["allow"] == "GET, HEAD"
    finally:
        handle.close()


def test_activity_per_list_and_event_name(metrics: Metrics) -> None:
    outcome = ActivityOutcome(1001, status="partial", open_messages=4, deferred=1)
    tally = {"Email Opened": EventTally(pending=2, sent=40, dead=1)}
    metrics.observe_activity(1001, outcome, tally)
    s = _samples(_exposition(metrics))
    labels = (("event", "Email Opened"), ("list_id", "1001"), ("state", "sent"))
    assert s[("listrak_source_activity_events", labels)] == 40
    open_ = (("list_id", "1001"), ("state", "deferred"))
    assert s[("listrak_source_activity_open_messages", open_)] == 1
    passes = (("list_id", "1001"), ("status", "partial"))
    assert s[("listrak_source_activity_passes_total", passes)] == 1
