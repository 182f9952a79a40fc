"""The Segment sink's switchable failures over loopback: poison, oversize, shares, outage."""

from __future__ import annotations

import base64
import json
import ssl
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from listrak_source.simulator import SegmentSink

KEY = "sink-write-key"
_TLS = ssl.create_default_context()


@pytest.fixture
def sink() -> Iterator[SegmentSink]:
    with SegmentSink(KEY) as s:
        yield s


@pytest.fixture
def http(sink: SegmentSink) -> Iterator[httpx.Client]:
    auth = base64.b64encode(f"{KEY}:".encode()).decode()
    headers = {"Authorization": f"Basic {auth}"}
    with httpx.Client(base_url=sink.url, verify=_TLS, timeout=5, headers=headers) as client:
        yield client


def identify(email: str, pad: str = "", **extra: Any) -> dict[str, Any]:
    message = {"type": "identify", "messageId": str(uuid.uuid4()), "anonymousId": email}
    return message | {"traits": {"email": email, "pad": pad}} | extra


def send(http: httpx.Client, batch: list[dict[str, Any]]) -> httpx.Response:
    return http.post("/v1/batch", content=json.dumps({"batch": batch}).encode())


def assert_segment_error(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert set(response.json()) == {"code", "message"}


def test_poison_refuses_the_whole_batch_without_naming_the_email(
    sink: SegmentSink, http: httpx.Client
) -> None:
    sink.faults.poison = {"Bad@Example.com"}
    good = identify("good@example.com")
    response = send(http, [good, identify("bad@example.com")])
    assert_segment_error(response, 400)
    assert "bad@" not in response.text.lower()
    by_anonymous_id = {"type": "identify", "anonymousId": "BAD@example.com", "traits": {}}
    assert_segment_error(send(http, [by_anonymous_id]), 400)
    assert send(http, [good]).status_code == 200
    assert sink.messages == [good]
    sink.faults.reset()
    assert send(http, [identify("bad@example.com")]).status_code == 200


def test_oversize_status_is_switchable(sink: SegmentSink, http: httpx.Client) -> None:
    assert_segment_error(send(http, [identify("a@example.com", pad="p" * 33_000)]), 400)
    sink.faults.oversize_status = 413
    assert_segment_error(send(http, [identify("a@example.com", pad="p" * 33_000)]), 413)
    big = [identify(f"u{i}@example.com", pad="p" * 26_000) for i in range(20)]
    assert_segment_error(send(http, big), 413)
    assert_segment_error(http.post("/v1/batch", content=b"{not json"), 400)  # others stay 400
    assert sink.messages == []


def test_fail_share_is_seeded(sink: SegmentSink, http: httpx.Client) -> None:
    def statuses() -> list[int]:
        return [send(http, [identify(f"u{i}@example.com")]).status_code for i in range(40)]

    sink.faults.fail_share(0.5, seed=3)
    first = statuses()
    assert set(first) == {200, 503}
    assert sink.message_count == first.count(200)
    sink.faults.reset()
    sink.faults.fail_share(0.5, seed=3)
    assert statuses() == first


def test_lost_acks_keep_the_batch(sink: SegmentSink, http: httpx.Client) -> None:
    sink.faults.lose_ack_next(1, status=504)
    batch = [identify("a@example.com")]
    assert_segment_error(send(http, batch), 504)
    sink.faults.lose_ack_next(1)
    with pytest.raises(httpx.RemoteProtocolError):
        send(http, batch)
    assert sink.messages == batch * 2
    assert len(sink.profiles()) == 1  # the shared messageId is deduplicated
    sink.faults.lose_ack_share(1.0, status=500)
    assert_segment_error(send(http, batch), 500)
    assert sink.message_count == 3


def test_outage_until_switched_off(sink: SegmentSink, http: httpx.Client) -> None:
    sink.faults.outage = True
    for _ in range(3):
        assert_segment_error(send(http, [identify("a@example.com")]), 503)
    sink.faults.outage = False
    assert send(http, [identify("a@example.com")]).status_code == 200
    assert sink.message_count == 1


def test_share_must_be_a_fraction(sink: SegmentSink) -> None:
    with pytest.raises(ValueError, match="share"):
        sink.faults.fail_share(1.5)
