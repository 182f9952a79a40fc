"""The receiver as `run` wires it: real uvicorn on loopback, committing to the real database."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import Engine, func, select

from listrak_source.audiences.server import ReceiverServer
from listrak_source.cli.wiring import build_receiver
from listrak_source.config import Settings
from listrak_source.service.metrics import Metrics
from listrak_source.simulator import ListrakSimulator, SegmentSink
from listrak_source.simulator.webhooks import stringify
from listrak_source.state import Database
from listrak_source.state.schema import audience_counters, audience_inbox

from ..audiences.world import event, make_settings

SECRET, NEXT, SHARED = "bearer-secret-one", "bearer-secret-two", "signing-secret-shared"


@pytest.fixture
def settings(sim: ListrakSimulator, sink: SegmentSink, db_url: str) -> Settings:
    receiver = {
        "port": 0,
        "secrets": [SECRET, NEXT],
        "shared_secret": SHARED,
        "max_body_bytes": 64 * 1024,
    }
    return make_settings(sim, sink, db_url, receiver=receiver)


@pytest.fixture
def receiver(settings: Settings, engine: Engine) -> Iterator[tuple[ReceiverServer, Metrics]]:
    metrics = Metrics()
    with build_receiver(settings, Database(engine), metrics) as server:
        yield server, metrics


def post(
    server: ReceiverServer, body: Any, *, secret: str = SECRET, sign: str | None = "first"
) -> httpx.Response:
    raw = body if isinstance(body, bytes) else stringify(body)
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    if sign is not None:
        signed = raw if sign == "whole" else stringify(body[0]) if isinstance(body, list) else raw
        headers["X-Signature"] = hmac.new(SHARED.encode(), signed, hashlib.sha1).hexdigest()
    return httpx.post(f"{server.url}/events", content=raw, headers=headers, timeout=10)


def inbox(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(audience_inbox)).scalar_one())


def test_a_batch_is_committed_before_its_200(
    receiver: tuple[ReceiverServer, Metrics], engine: Engine
) -> None:
    server, metrics = receiver
    batch = [event("a@example.com", True, 1), event("b@example.com", False, 2, key="lapsed")]
    response = post(server, batch)
    assert response.status_code == 200
    assert orjson.loads(response.content) == {"accepted": 2, "ignored": {}}
    assert inbox(engine) == 2
    assert post(server, batch, secret=NEXT, sign="whole").status_code == 200, "rotation"
    assert Database(engine).audience_reports.counters()["duplicates"] == 2
    sample = metrics.registry.get_sample_value
    assert sample("listrak_source_audience_events_total", {"outcome": "duplicates"}) == 2
    assert sample("listrak_source_audience_requests_total", {"status": "200"}) == 2


def test_refusals_are_for_requests_never_for_content(
    receiver: tuple[ReceiverServer, Metrics], engine: Engine
) -> None:
    server, _ = receiver
    good = [event("a@example.com", True, 1)]
    assert post(server, good, secret="wrong").status_code == 401
    assert post(server, good, sign=None).status_code == 401
    tampered = stringify(good).replace(b"a@example.com", b"z@example.com")
    assert post(server, tampered, sign=None).status_code == 401
    junk = [
        {"type": "page"},
        "not an object",
        event("a@example.com", True, 1, key="unknown_audience"),
        {**event("x@example.com", True, 1), "timestamp": "yesterday"},
        event("ok@example.com", True, 1),
    ]
    response = post(server, junk)
    assert response.status_code == 200
    assert orjson.loads(response.content)["ignored"] == {
        "bad_timestamp": 1,
        "not_a_membership_event": 1,
        "not_an_object": 1,
        "unmapped": 1,
    }
    oversized = [event(f"u{i}@example.com", True, i) for i in range(400)]
    assert post(server, oversized).status_code == 413
    assert inbox(engine) == 1
    totals = Database(engine).audience_reports.counters()
    assert (totals["ignored:unmapped"], totals["received"]) == (1, 5)


def test_a_commit_that_fails_is_a_503_and_the_retry_lands(
    receiver: tuple[ReceiverServer, Metrics], engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    server, _ = receiver
    batch = [event("secret.person@example.com", True, 1)]
    audience_counters.drop(engine)
    response = post(server, batch)
    assert response.status_code == 503
    assert inbox(engine) == 0
    assert "secret.person" not in caplog.text and SECRET not in caplog.text
    audience_counters.create(engine)
    assert post(server, batch).status_code == 200
    assert inbox(engine) == 1


@pytest.mark.parametrize("length", [130, 200])
def test_an_email_too_long_once_lower_cased_is_content_not_a_failed_batch(
    receiver: tuple[ReceiverServer, Metrics], engine: Engine, length: int
) -> None:
    # "İ" lower-cases to two characters: 200 of them make a 412-character key, past the
    # store's 320 on PostgreSQL (every retry of the batch would fail), and 130 make 272,
    # past the 254 Listrak takes.
    server, _ = receiver
    long_one = "\u0130" * length + "@example.com"
    assert len(long_one) <= 254 < len(long_one.lower())
    batch = [event(long_one, True, 1), event("ok@example.com", True, 2)]
    response = post(server, batch)
    assert response.status_code == 200
    assert orjson.loads(response.content) == {"accepted": 1, "ignored": {"invalid_email": 1}}
    assert inbox(engine) == 1
