"""The receiver end to end: real HTTP over loopback into a real uvicorn server."""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from collections.abc import Iterator

import httpx
import orjson
import pytest

from listrak_source.engage.ingest import Ingest

from ._events import identify, track
from .conftest import AUDIENCE, ROTATED, SECRET, SHARED, StartReceiver, raw_exchange


def body_of(*events: object) -> bytes:
    """A batch body as Segment's destination writes it: JSON without whitespace."""
    return orjson.dumps(list(events))


def sign(data: bytes, secret: str = SHARED) -> str:
    return hmac.new(secret.encode(), data, hashlib.sha1).hexdigest()


def test_a_membership_batch_is_committed_before_the_200(start_receiver: StartReceiver) -> None:
    receiver = start_receiver()
    response = receiver.post([track(message_id="m1"), identify(message_id="m2")])
    assert response.status_code == 200
    assert response.json() == {"accepted": 2, "ignored": {}}
    (ingest,) = receiver.commits
    assert [m.membership.message_id for m in ingest.memberships] == ["m1", "m2"]
    assert {m.mapping for m in ingest.memberships} == {AUDIENCE}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {SECRET}"},
        {"Authorization": f"Bearer {SECRET}x"},
        {"Authorization": SECRET},
    ],
)
def test_a_wrong_or_missing_secret_is_refused(
    start_receiver: StartReceiver, headers: dict[str, str]
) -> None:
    receiver = start_receiver()
    response = receiver.post(body_of(track()), secret=None, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert receiver.commits == []


def test_the_rotation_secret_is_accepted(start_receiver: StartReceiver) -> None:
    receiver = start_receiver()
    assert receiver.post([track()], secret=ROTATED).status_code == 200
    assert len(receiver.commits) == 1


def test_a_refused_secret_is_answered_without_reading_the_body(
    start_receiver: StartReceiver,
) -> None:
    receiver = start_receiver()
    # Headers promise a megabyte that never comes: the 401 must not wait for it.
    head = (
        b"POST /events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n"
    )
    status, body = raw_exchange(receiver.server, head)
    assert status == 401
    assert orjson.loads(body) == {"error": "unauthorized"}


def test_a_batch_signed_over_its_first_element_is_accepted(
    start_receiver: StartReceiver,
) -> None:
    receiver = start_receiver(shared_secret=SHARED)
    first = orjson.dumps(track(message_id="m1", email="zo\u00eb@example.com"))
    body = b"[" + first + b"," + orjson.dumps(track(message_id="m2")) + b"]"
    response = receiver.post(body, headers={"X-Signature": sign(first)})
    assert response.status_code == 200
    assert response.json()["accepted"] == 2


def test_a_batch_signed_over_the_whole_body_is_accepted(start_receiver: StartReceiver) -> None:
    receiver = start_receiver(shared_secret=SHARED)
    body = body_of(track(message_id="m1"), track(message_id="m2"))
    assert receiver.post(body, headers={"X-Signature": sign(body)}).status_code == 200


def test_a_single_event_is_signed_over_the_whole_body(start_receiver: StartReceiver) -> None:
    receiver = start_receiver(shared_secret=SHARED)
    body = orjson.dumps(track())
    response = receiver.post(body, headers={"X-Signature": sign(body)})
    assert response.status_code == 200
    assert response.json() == {"accepted": 1, "ignored": {}}


@pytest.mark.parametrize(
    "signature",
    [None, "", "0" * 40, "not hex", sign(orjson.dumps(track(message_id="m2")))],
)
def test_a_missing_or_bad_signature_is_refused(
    start_receiver: StartReceiver, signature: str | None
) -> None:
    receiver = start_receiver(shared_secret=SHARED)
    body = body_of(track(message_id="m1"), track(message_id="m2"))
    headers = {} if signature is None else {"X-Signature": signature}
    response = receiver.post(body, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"error": "bad signature"}
    assert receiver.commits == []


def test_either_of_two_shared_secrets_signs_during_a_rotation(
    start_receiver: StartReceiver,
) -> None:
    rotated = "segment shared secret, the next one"
    receiver = start_receiver(shared_secrets=[SHARED, rotated])
    first = orjson.dumps(track(message_id="m1"))
    body = b"[" + first + b"," + orjson.dumps(track(message_id="m2")) + b"]"
    for secret in (SHARED, rotated):
        assert receiver.post(body, headers={"X-Signature": sign(first, secret)}).status_code == 200
    stranger = sign(first, "a third shared secret, never set")
    assert receiver.post(body, headers={"X-Signature": stranger}).status_code == 401


def test_an_item_nested_too_deep_loses_only_itself_even_when_it_is_signed(
    start_receiver: StartReceiver,
) -> None:
    receiver = start_receiver(shared_secret=SHARED)
    deep = b'{"a":' * 1024 + b"{}" + b"}" * 1024
    body = b"[" + deep + b"," + body_of(track(message_id="m1"), track(message_id="m2"))[1:]
    response = receiver.post(body, headers={"X-Signature": sign(deep)})
    assert response.status_code == 200
    assert response.json() == {"accepted": 2, "ignored": {"undecodable": 1}}


def test_without_a_shared_secret_no_signature_is_needed(start_receiver: StartReceiver) -> None:
    receiver = start_receiver()
    assert receiver.post([track()], headers={"X-Signature": "junk"}).status_code == 200


def test_junk_items_are_acknowledged_and_counted(start_receiver: StartReceiver) -> None:
    receiver = start_receiver()
    batch = [
        track(message_id="m1"),
        track(key="not_configured", message_id="m2"),
        track(member="true", message_id="m3"),
        track(email=None, message_id="m4"),
        {"type": "page", "name": "Home"},
        "a string",
        17,
        None,
        [track()],
    ]
    response = receiver.post(batch)
    assert response.status_code == 200
    assert response.json() == {
        "accepted": 1,
        "ignored": {
            "missing_email": 1,
            "not_a_membership_event": 1,
            "not_an_object": 4,
            "unmapped": 1,
            "value_not_boolean": 1,
        },
    }
    assert receiver.tally.accepted == 1
    assert receiver.tally.ignored["not_an_object"] == 4


@pytest.mark.parametrize("document", [42, "text", None, [], {}, True])
def test_a_document_of_any_json_type_is_acknowledged(
    start_receiver: StartReceiver, document: object
) -> None:
    receiver = start_receiver()
    response = receiver.post(orjson.dumps(document))
    assert response.status_code == 200
    assert response.json()["accepted"] == 0


@pytest.mark.parametrize("body", [b"", b"not json", b"[{", b"\xff\xfe{}"])
def test_a_body_that_is_not_json_is_a_400(start_receiver: StartReceiver, body: bytes) -> None:
    receiver = start_receiver()
    response = receiver.post(body)
    assert response.status_code == 400
    assert response.json() == {"error": "body is not JSON"}
    assert receiver.commits == []


def padded_batch(size: int) -> bytes:
    """A JSON batch of exactly `size` bytes."""
    shell = body_of(track(), {"pad": ""})
    return body_of(track(), {"pad": "x" * (size - len(shell))})


def test_a_body_at_the_cap_is_taken(start_receiver: StartReceiver) -> None:
    receiver = start_receiver(max_body_bytes=4096)
    body = padded_batch(4096)
    assert len(body) == 4096
    assert receiver.post(body).status_code == 200


def test_an_oversized_body_with_content_length_is_a_413(start_receiver: StartReceiver) -> None:
    receiver = start_receiver(max_body_bytes=4096)
    response = receiver.post(padded_batch(4097))
    assert response.status_code == 413
    assert response.json() == {"error": "body too large", "max_bytes": 4096}
    assert receiver.commits == []
    # The connection stays usable: the rest of the body was read and thrown away.
    assert receiver.post([track()]).status_code == 200


def test_a_declared_length_over_the_cap_is_refused_before_any_body(
    start_receiver: StartReceiver,
) -> None:
    receiver = start_receiver(max_body_bytes=4096)
    head = (
        f"POST /events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SECRET}\r\n"
        "Content-Length: 10000000000\r\n\r\n"
    ).encode()
    assert raw_exchange(receiver.server, head)[0] == 413


def chunks(total: int, size: int = 1024) -> Iterator[bytes]:
    """A body sent chunked (no Content-Length), so only counting can find its size."""
    body = padded_batch(total)
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_an_oversized_chunked_body_is_a_413(start_receiver: StartReceiver) -> None:
    receiver = start_receiver(max_body_bytes=4096)
    response = receiver.post(chunks(64 * 1024))
    assert response.status_code == 413
    assert receiver.commits == []
    assert receiver.post(chunks(4096)).status_code == 200


def test_a_chunked_body_is_refused_once_past_the_cap_without_waiting_for_its_end(
    start_receiver: StartReceiver,
) -> None:
    receiver = start_receiver(max_body_bytes=4096)
    head = (
        f"POST /events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SECRET}\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    # 5,000 bytes of a body whose end never comes.
    chunk = b"[" + b" " * 4999
    assert raw_exchange(receiver.server, head + b"1388\r\n" + chunk + b"\r\n")[0] == 413


class StoreDown(Exception):
    """Stands in for a driver error whose text quotes SQL and parameters."""


def failing_commit(ingest: Ingest) -> None:
    raise StoreDown(
        "INSERT INTO audience_inbox (email) VALUES ('jane@example.com')\n[parameters: ...]"
    )


def test_a_failed_commit_is_a_503_logged_in_one_safe_line(
    start_receiver: StartReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver = start_receiver(commit=failing_commit)
    with caplog.at_level(logging.INFO, logger="listrak_source"):
        response = receiver.post([track(email="jane@example.com")])
    assert response.status_code == 503
    assert response.json() == {"error": "not stored, retry later"}
    (record,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert record.getMessage() == "audience events not stored, answered 503: StoreDown"
    assert record.exc_info is None
    assert receiver.tally.statuses[503] == 1
    assert receiver.tally.accepted == 0


def test_the_event_loop_keeps_answering_while_a_commit_runs(
    start_receiver: StartReceiver,
) -> None:
    entered, release = threading.Event(), threading.Event()

    def slow_commit(ingest: Ingest) -> None:
        entered.set()
        assert release.wait(20)

    receiver = start_receiver(commit=slow_commit)
    answers: list[int] = []
    poster = threading.Thread(target=lambda: answers.append(receiver.post([track()]).status_code))
    poster.start()
    assert entered.wait(20)
    assert httpx.get(f"{receiver.server.url}/healthz", timeout=20).json() == {"status": "ok"}
    release.set()
    poster.join(20)
    assert answers == [200]


def test_a_thousand_event_batch_round_trip(start_receiver: StartReceiver) -> None:
    receiver = start_receiver()
    batch = [
        track(
            member=i % 3 != 0,
            email=f"Person{i}@Example.com",
            message_id=f"personas_{i:06}",
            timestamp=f"2024-05-06T09:{i // 60 % 60:02}:{i % 60:02}.{i:03}Z",
        )
        for i in range(1000)
    ]
    response = receiver.post(batch)
    assert response.status_code == 200
    assert response.json() == {"accepted": 1000, "ignored": {}}
    (ingest,) = receiver.commits
    assert [m.membership.email_key for m in ingest.memberships] == [
        f"person{i}@example.com" for i in range(1000)
    ]
    assert sum(m.membership.member for m in ingest.memberships) == 666


def test_healthz_and_other_routes(start_receiver: StartReceiver) -> None:
    receiver = start_receiver()
    assert receiver.client.get("/healthz").status_code == 200
    assert receiver.client.get("/events").status_code == 405
    assert receiver.client.post("/other").status_code == 404
    assert receiver.tally.statuses == {}
