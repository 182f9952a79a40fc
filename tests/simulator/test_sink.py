"""The Segment sink over real loopback HTTP: auth, limits, faults, profiles, the real client."""

from __future__ import annotations

import base64
import gzip
import json
import ssl
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from segment.analytics import Client

from listrak_source.simulator import SegmentSink, rebuild_profiles

KEY = "sink-write-key"
_TLS = ssl.create_default_context()  # building one per httpx client costs ~50 ms


@pytest.fixture
def sink() -> Iterator[SegmentSink]:
    with SegmentSink(KEY) as s:
        yield s


@pytest.fixture
def http(sink: SegmentSink) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sink.url, verify=_TLS, timeout=5) as client:
        yield client


def identify(email: str, when: str = "2024-01-01T00:00:00+00:00", **traits: Any) -> dict[str, Any]:
    return {
        "type": "identify",
        "messageId": str(uuid.uuid4()),
        "anonymousId": email,
        "timestamp": when,
        "traits": {"email": email, **traits},
    }


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def send(
    http: httpx.Client,
    batch: list[dict[str, Any]],
    *,
    key: str | None = KEY,
    in_body: bool = False,
    gzipped: bool = False,
    ensure_ascii: bool = True,
) -> httpx.Response:
    body: dict[str, Any] = {"batch": batch, "sentAt": "2024-01-01T00:00:00Z"}
    headers = {"Content-Type": "application/json"}
    if key is not None and in_body:
        body["writeKey"] = key
    elif key is not None:
        headers |= basic(key)
    data = json.dumps(body, ensure_ascii=ensure_ascii).encode()
    if gzipped:
        data = gzip.compress(data)
        headers["Content-Encoding"] = "gzip"
    return http.post("/v1/batch", content=data, headers=headers)


def assert_segment_error(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"]
    assert body["message"]


# --- accepting batches -------------------------------------------------------------------


def test_plain_batch_with_write_key_in_body(sink: SegmentSink, http: httpx.Client) -> None:
    batch = [identify("a@example.com"), identify("b@example.com")]
    response = send(http, batch, in_body=True)
    assert response.status_code == 200
    assert response.json() == {"success": True}
    assert sink.messages == batch
    assert sink.batches == 1


def test_gzip_batch_with_basic_auth(sink: SegmentSink, http: httpx.Client) -> None:
    batch = [identify(f"u{i}@example.com") for i in range(50)]
    assert send(http, batch, gzipped=True).status_code == 200
    assert send(http, batch[:1], gzipped=True).status_code == 200
    assert sink.messages == [*batch, batch[0]]  # arrival order, duplicates kept
    assert sink.batches == 2


def test_wrong_write_key_is_answered_200_but_not_kept(
    sink: SegmentSink, http: httpx.Client
) -> None:
    batch = [identify("a@example.com")]
    assert send(http, batch, key="wrong").status_code == 200
    assert send(http, batch, key="wrong", in_body=True).status_code == 200
    assert sink.messages == []
    assert sink.rejected == batch * 2
    assert sink.batches == 0


def test_missing_write_key(http: httpx.Client) -> None:
    assert_segment_error(send(http, [identify("a@example.com")], key=None), 401)


def test_clear_and_wrong_routes(sink: SegmentSink, http: httpx.Client) -> None:
    send(http, [identify("a@example.com")])
    sink.clear()
    assert (sink.messages, sink.rejected, sink.batches) == ([], [], 0)
    assert_segment_error(http.get("/v1/batch"), 405)
    assert_segment_error(http.post("/v1/track", json={}), 404)


# --- limits ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "headers"),
    [
        (b"{not json", {}),
        (b"[1, 2]", {}),
        (b'{"batch": {}}', {}),
        (b'{"batch": [1]}', {}),
        (b'{"batch": []} trailing', {}),
        (b"\xff\xfe", {}),
        (b"not gzip at all", {"Content-Encoding": "gzip"}),
        (gzip.compress(b'{"batch": [', mtime=0)[:-6], {"Content-Encoding": "gzip"}),
        (b"{}", {"Content-Encoding": "br"}),
    ],
)
def test_invalid_bodies_are_400(
    sink: SegmentSink, http: httpx.Client, content: bytes, headers: dict[str, str]
) -> None:
    response = http.post("/v1/batch", content=content, headers={**basic(KEY), **headers})
    assert_segment_error(response, 400)
    assert sink.messages == []


def big_batch(size: int, message_bytes: int) -> list[dict[str, Any]]:
    pad = message_bytes - len(json.dumps(identify("x@example.com", pad="")))
    return [identify(f"u{i}@example.com", pad="p" * pad) for i in range(size)]


def test_invalid_json_in_a_big_body_is_400(http: httpx.Client) -> None:
    text = json.dumps({"batch": big_batch(5, 10_000)})
    for broken in (text[:-1], text + ",", text.replace("}, {", "} {", 1), text[:-2] + ",]}"):
        response = http.post("/v1/batch", content=broken.encode(), headers=basic(KEY))
        assert_segment_error(response, 400)


def test_batch_over_500kb_is_400(sink: SegmentSink, http: httpx.Client) -> None:
    batch = big_batch(20, 26_000)  # ~520 KB, every message under 32 KB
    assert_segment_error(send(http, batch), 400)
    assert_segment_error(send(http, batch, gzipped=True), 400)  # measured after gunzip
    assert sink.messages == []
    assert send(http, batch[:18], gzipped=True).status_code == 200  # ~470 KB is fine


def test_more_than_2500_events_is_400(sink: SegmentSink, http: httpx.Client) -> None:
    small = [{"type": "identify", "anonymousId": str(i)} for i in range(2501)]
    assert_segment_error(send(http, small), 400)
    assert send(http, small[:2500]).status_code == 200
    assert len(sink.messages) == 2500


def test_message_over_32kb_is_400(sink: SegmentSink, http: httpx.Client) -> None:
    assert_segment_error(send(http, big_batch(1, 33_000)), 400)
    assert_segment_error(send(http, [*big_batch(3, 1_000), *big_batch(1, 33_000)]), 400)
    assert send(http, big_batch(1, 32_000)).status_code == 200
    assert send(http, big_batch(10, 32_000), gzipped=True).status_code == 200
    assert len(sink.messages) == 11


def test_message_size_counts_utf8_bytes(sink: SegmentSink, http: httpx.Client) -> None:
    wide = [identify("x@example.com", pad="€" * 12_000)]  # 12k characters, 36 KB of UTF-8
    assert_segment_error(send(http, wide, ensure_ascii=False), 400)
    narrow = [identify("x@example.com", pad="€" * 10_000)]  # 30 KB of UTF-8
    assert send(http, narrow, ensure_ascii=False).status_code == 200


# --- faults ------------------------------------------------------------------------------


def test_fail_next(sink: SegmentSink, http: httpx.Client) -> None:
    sink.faults.fail_next(2, status=503)
    batch = [identify("a@example.com")]
    assert_segment_error(send(http, batch), 503)
    assert_segment_error(send(http, batch), 503)
    assert send(http, batch).status_code == 200
    assert sink.messages == batch


def test_rate_limit_next(sink: SegmentSink, http: httpx.Client) -> None:
    sink.faults.rate_limit_next(1, retry_after=7)
    response = send(http, [identify("a@example.com")])
    assert_segment_error(response, 429)
    assert response.headers["Retry-After"] == "7"
    assert sink.messages == []


def test_hang_next_times_the_client_out(sink: SegmentSink, http: httpx.Client) -> None:
    sink.faults.hang_next(1, 0.5)
    with pytest.raises(httpx.ReadTimeout):
        send(http.__class__(base_url=sink.url, verify=_TLS, timeout=0.1), [identify("a@x.com")])
    assert sink.messages == []
    assert send(http, [identify("b@example.com")]).status_code == 200
    assert len(sink.messages) == 1


def test_lose_ack_keeps_the_batch_but_never_answers(sink: SegmentSink, http: httpx.Client) -> None:
    sink.faults.lose_ack_next(1)
    batch = [identify("a@example.com")]
    with pytest.raises(httpx.RemoteProtocolError):
        send(http, batch)
    assert sink.messages == batch
    assert send(http, batch).status_code == 200  # the client's re-send
    assert sink.messages == batch * 2
    assert len(sink.profiles()) == 1  # the shared messageId dedupes the copy


def test_poisoned_email_refuses_its_batches(sink: SegmentSink, http: httpx.Client) -> None:
    sink.faults.poison.update({"bad@example.com"})
    assert_segment_error(send(http, [identify("a@example.com"), identify("bad@example.com")]), 400)
    assert sink.messages == []
    batch = [identify("a@example.com")]
    assert send(http, batch).status_code == 200
    assert sink.messages == batch


def test_reset(sink: SegmentSink, http: httpx.Client) -> None:
    sink.faults.fail_next(3)
    sink.faults.poison.update({"a@example.com"})
    sink.faults.reset()
    assert send(http, [identify("a@example.com")]).status_code == 200


# --- rebuild_profiles --------------------------------------------------------------------


def test_rebuild_profiles() -> None:
    first = identify("Ann@Example.com", "2024-01-01T10:00:00+00:00", Listrak_list_1=True)
    first["userId"] = "u-1"
    later = identify("ann@example.com", "2024-01-01T13:00:00+02:00", Listrak_list_1=None)
    later["userId"] = None
    middle = identify("ann@example.com", "2024-01-01T10:30:00Z", Listrak_list_2=True)
    copy = {**middle, "traits": {"Listrak_list_2": "IGNORED"}}
    track = {"type": "track", "anonymousId": "ann@example.com", "event": "Unsubscribed"}
    profiles = rebuild_profiles([later, first, middle, copy, track])
    assert profiles == {
        "ann@example.com": {
            "traits": {"email": "ann@example.com", "Listrak_list_2": True},
            "user_id": "u-1",
        }
    }


def test_rebuild_profiles_keeps_arrival_order_for_equal_timestamps() -> None:
    on = identify("b@example.com", Listrak_list_1=True)
    off = identify("b@example.com", Listrak_list_1=None)
    assert "Listrak_list_1" not in rebuild_profiles([on, off])["b@example.com"]["traits"]
    assert rebuild_profiles([off, on])["b@example.com"]["traits"]["Listrak_list_1"] is True


# --- the official client -----------------------------------------------------------------


def run_client(sink: SegmentSink, key: str = KEY, count: int = 300) -> list[str]:
    client = Client(
        key, host=sink.url, gzip=True, sync_mode=False, upload_size=100, upload_interval=0.05
    )
    emails = [f"user{i}@example.com" for i in range(count)]
    for i, email in enumerate(emails):
        ok, _ = client.identify(
            user_id=f"cust-{i}" if i % 2 else None,
            anonymous_id=email,
            traits={"email": email, "Listrak_list_1001": True},
        )
        assert ok
    client.flush()
    client.shutdown()
    return emails


def test_segment_client_batches_arrive(sink: SegmentSink) -> None:
    emails = run_client(sink)
    assert [m["anonymousId"] for m in sink.messages] == emails
    assert sink.batches >= 3  # at most upload_size=100 a batch
    assert {m["type"] for m in sink.messages} == {"identify"}
    profiles = sink.profiles()
    assert profiles["user1@example.com"] == {
        "traits": {"email": "user1@example.com", "Listrak_list_1001": True},
        "user_id": "cust-1",
    }
    assert profiles["user0@example.com"]["user_id"] is None


def test_segment_client_resends_after_a_lost_ack(sink: SegmentSink) -> None:
    sink.faults.lose_ack_next(1)
    emails = run_client(sink, count=50)
    ids = [m["messageId"] for m in sink.messages]
    assert len(ids) > len(set(ids)) == 50  # the first batch was kept twice
    assert sorted(sink.profiles()) == sorted(emails)


def test_segment_client_with_a_wrong_key(sink: SegmentSink) -> None:
    run_client(sink, key="not-the-key", count=10)
    assert sink.messages == []
    assert len(sink.rejected) == 10
