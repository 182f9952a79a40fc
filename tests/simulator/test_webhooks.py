"""The Webhooks (Actions) sender against a loopback receiver, and the Engage event factories."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from listrak_source.simulator._http import HttpServer, Request, Response
from listrak_source.simulator.webhooks import (
    Outcome,
    WebhookSender,
    audience_identify,
    audience_track,
    stringify,
)

T0 = datetime(2024, 5, 6, 9, 30, 22, 829000, tzinfo=UTC)
SECRET = "shh-secret"
HANG = -1  # an answer that never comes in time


class Receiver:
    """Records raw requests and answers them from a script (0: drop the connection)."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.answers: deque[int] = deque()
        self._lock = threading.Lock()
        self.server = HttpServer(self._app, "127.0.0.1", 0)

    @property
    def url(self) -> str:
        return f"{self.server.origin}/segment"

    def _app(self, req: Request) -> Response:
        with self._lock:
            self.requests.append(req)
            answer = self.answers.popleft() if self.answers else 200
        if answer == HANG:
            self.server.stopping.wait(1)
            return Response(0, drop=True)
        return Response(0, drop=True) if answer == 0 else Response(answer, b"{}")

    def bodies(self) -> list[Any]:
        return [json.loads(r.body) for r in self.requests]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.server.start()
    yield r
    r.server.stop()


class Sleeps(list[float]):
    """An injected sleep that only notes how long it was asked to wait."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def events(n: int) -> list[dict[str, Any]]:
    return [audience_track("vip", f"user{i}@example.com", True, timestamp=T0) for i in range(n)]


def sender(receiver: Receiver, sleeps: Sleeps | None = None, **kw: Any) -> WebhookSender:
    return WebhookSender(receiver.url, sleep=sleeps if sleeps is not None else Sleeps(), **kw)


# --- batches, headers, signatures --------------------------------------------------------


def test_batches_of_the_configured_size_with_the_destination_headers(
    receiver: Receiver,
) -> None:
    sent = events(250)
    with sender(receiver, batch_size=100, headers={"Authorization": "Bearer tok"}) as s:
        outcomes = s.send(sent)
    assert [len(b) for b in receiver.bodies()] == [100, 100, 50]
    assert [m for body in receiver.bodies() for m in body] == sent
    headers = receiver.requests[0].headers
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == "Segment (Actions)"
    assert headers["Authorization"] == "Bearer tok"
    assert "X-Signature" not in headers
    assert all(o.delivered and o.status == 200 and o.attempts == 1 for o in outcomes)
    assert sorted(o.position for o in outcomes) == list(range(250))
    with WebhookSender(receiver.url) as default:
        assert default.batch_size == 1000  # the destination's default


def test_one_event_a_request_without_batching(receiver: Receiver) -> None:
    sent = events(3)
    with sender(receiver, batching=False, shared_secret=SECRET) as s:
        s.send(sent)
    assert receiver.bodies() == sent
    for req in receiver.requests:
        expected = hmac.new(SECRET.encode(), req.body, hashlib.sha1).hexdigest()
        assert req.headers["X-Signature"] == expected


def first_element(body: bytes) -> bytes:
    """The raw bytes of element 0 of a JSON array body, as a receiver would cut them."""
    _, end = json.JSONDecoder().raw_decode(body.decode(), 1)
    return body[1 : len(body.decode()[:end].encode())]


def test_signature_covers_the_raw_first_element(receiver: Receiver) -> None:
    odd = audience_track("vip", "zoë@example.com", True, timestamp=T0)
    odd["properties"]["note"] = 'emoji 🎉, line\u2028sep, quote " and <tag> & 1.0'
    odd["properties"]["ratio"] = 2.0
    with sender(receiver, shared_secret=SECRET) as s:
        s.send([odd, *events(2)])
    (req,) = receiver.requests
    raw = req.body
    assert "zoë".encode() in raw and "🎉".encode() in raw  # not ASCII-escaped
    as_js = {**odd, "properties": {**odd["properties"], "ratio": 2}}  # JS has one number type
    compact = json.dumps(as_js, separators=(",", ":"), ensure_ascii=False).encode()
    assert raw.startswith(b"[" + compact + b",")
    expected = hmac.new(SECRET.encode(), first_element(raw), hashlib.sha1).hexdigest()
    assert req.headers["X-Signature"] == expected


def test_whole_body_signature_switch(receiver: Receiver) -> None:
    with sender(receiver, shared_secret=SECRET, sign_whole_body=True) as s:
        s.send(events(3))
    (req,) = receiver.requests
    assert req.headers["X-Signature"] == hmac.new(SECRET.encode(), req.body, "sha1").hexdigest()


def test_stringify_matches_json_stringify() -> None:
    value = {"a": [1, 2.5, 3.0, float("nan")], "b": "é\ud800", "c": None, "d": True}
    assert stringify(value) == '{"a":[1,2.5,3,null],"b":"é\\ud800","c":null,"d":true}'.encode()


# --- retries -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 423, 429, 0])
def test_retried_answers(receiver: Receiver, status: int) -> None:
    receiver.answers.extend([status, status])
    sleeps = Sleeps()
    with sender(receiver, sleeps, backoff=1.0) as s:
        outcomes = s.send(events(2))
    assert len(receiver.requests) == 3
    assert receiver.bodies()[0] == receiver.bodies()[2]
    assert outcomes == [Outcome(0, True, 200, 3), Outcome(1, True, 200, 3)]
    assert len(sleeps) == 2
    assert 0.5 <= sleeps[0] <= 1.5
    assert 1.0 <= sleeps[1] <= 3.0


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422, 501])
def test_other_answers_drop_the_whole_batch(receiver: Receiver, status: int) -> None:
    receiver.answers.append(status)
    sleeps = Sleeps()
    with sender(receiver, sleeps) as s:
        outcomes = s.send(events(3))
    assert outcomes == [Outcome(i, False, status, 1) for i in range(3)]
    assert sleeps == []


def test_attempts_are_bounded(receiver: Receiver) -> None:
    receiver.answers.extend([500] * 10)
    sleeps = Sleeps()
    with sender(receiver, sleeps, max_attempts=4) as s:
        (outcome,) = s.send(events(1))
    assert outcome == Outcome(0, False, 500, 4)
    assert len(receiver.requests) == 4
    assert len(sleeps) == 3


def test_timeouts_are_retried(receiver: Receiver) -> None:
    receiver.answers.append(HANG)
    with httpx.Client(timeout=0.05) as client, sender(receiver, client=client) as s:
        (outcome,) = s.send(events(1))
    assert outcome == Outcome(0, True, 200, 2)


def test_no_listener_is_retried_then_dropped() -> None:
    closed = HttpServer(lambda req: Response(200), "127.0.0.1", 0)
    closed.start()
    url = closed.origin
    closed.stop()
    with WebhookSender(url, sleep=Sleeps(), max_attempts=2) as s:
        assert s.send(events(1)) == [Outcome(0, False, None, 2)]


# --- switches ----------------------------------------------------------------------------


def test_shuffle_is_seeded(receiver: Receiver) -> None:
    sent = events(20)
    for _ in range(2):
        with sender(receiver, shuffle=True, seed=5) as s:
            s.send(sent)
    first, second = receiver.bodies()
    assert first == second != sent
    assert sorted(m["messageId"] for m in first) == sorted(m["messageId"] for m in sent)


def test_duplicates_are_seeded(receiver: Receiver) -> None:
    sent = events(50)
    with sender(receiver, duplicate_share=0.2, seed=1) as s:
        outcomes = s.send(sent)
    (body,) = receiver.bodies()
    ids = [m["messageId"] for m in body]
    assert len(set(ids)) == 50 < len(ids) < 70
    assert len(outcomes) == len(ids)
    assert all(o.delivered for o in outcomes)


def test_batches_are_re_formed_on_retry(receiver: Receiver) -> None:
    sent = events(4)
    receiver.answers.append(503)
    with sender(receiver, batch_size=2, reform_on_retry=True) as s:
        s.send(sent)
    assert receiver.bodies() == [sent[:2], sent[2:], sent[:2]]
    receiver.requests.clear()
    receiver.answers.append(503)
    with sender(receiver, batch_size=3, reform_on_retry=True) as s:
        outcomes = s.send(sent)
    assert receiver.bodies() == [sent[:3], [sent[3], *sent[:2]], [sent[2]]]
    assert {o.position: o.attempts for o in outcomes} == {0: 2, 1: 2, 2: 2, 3: 1}


def test_without_re_forming_the_same_batch_is_retried(receiver: Receiver) -> None:
    sent = events(4)
    receiver.answers.append(503)
    with sender(receiver, batch_size=2) as s:
        s.send(sent)
    assert receiver.bodies() == [sent[:2], sent[:2], sent[2:]]


def test_sizes_must_be_positive(receiver: Receiver) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        WebhookSender(receiver.url, batch_size=0)


# --- Engage events -----------------------------------------------------------------------


def test_track_shape() -> None:
    event = audience_track(
        "first_time_shopper",
        "jane@example.com",
        True,
        timestamp=T0,
        message_id="personas_1",
        space_id="spa_1",
        user_id="u123",
    )
    personas = event["context"]["personas"]
    assert personas.pop("computation_id").startswith("aud_")
    assert event == {
        "type": "track",
        "event": "Audience Entered",
        "userId": "u123",
        "messageId": "personas_1",
        "timestamp": "2024-05-06T09:30:22.829Z",
        "receivedAt": "2024-05-06T09:30:22.829Z",
        "context": {
            "personas": {
                "computation_class": "audience",
                "computation_key": "first_time_shopper",
                "namespace": "spa_1",
                "space_id": "spa_1",
            },
            "traits": {"email": "jane@example.com"},
        },
        "properties": {"audience_key": "first_time_shopper", "first_time_shopper": True},
    }
    left = audience_track("first_time_shopper", "jane@example.com", False, timestamp=T0)
    assert left["event"] == "Audience Exited"
    assert left["properties"]["first_time_shopper"] is False


def test_identify_shape() -> None:
    later = T0 + timedelta(hours=1)
    event = audience_identify("vip", "Jane@Example.com", False, timestamp=later.isoformat())
    assert event["type"] == "identify"
    assert event["traits"] == {"vip": False, "email": "Jane@Example.com"}
    assert event["context"]["personas"]["computation_key"] == "vip"
    assert event["context"]["personas"]["computation_class"] == "audience"
    assert "properties" not in event and "event" not in event
    assert event["timestamp"] == later.isoformat()


def test_default_ids() -> None:
    a = audience_track("vip", "a@example.com", True, timestamp=T0)
    b = audience_track("vip", "a@example.com", True, timestamp=T0)
    assert a["messageId"] != b["messageId"]
    assert a["messageId"].startswith("personas_")
    assert (
        a["userId"] == b["userId"] != audience_track("vip", "b@x.com", True, timestamp=T0)["userId"]
    )
    with pytest.raises(ValueError, match="aware"):
        audience_track("vip", "a@example.com", True, timestamp=datetime(2024, 1, 1))
