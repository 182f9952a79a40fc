"""Which answers are the endpoint's fault and which the messages', in reasons fit for a log."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import requests
from segment.analytics.request import APIError

from listrak_source.segment.answers import (
    Accepted,
    Permanent,
    Transient,
    classify_error,
    classify_response,
    one_line,
)

KEY = "wk-secret-123"


def api_error(status: int, message: str = "Simulated", retry_after: str | None = None) -> APIError:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return APIError(status, "code", message, SimpleNamespace(headers=headers))


@pytest.mark.parametrize("status", [400, 413, 422])
def test_other_4xx_blame_the_messages(status: int) -> None:
    answer = classify_error(api_error(status), KEY)
    assert answer == Permanent(status, f"Segment answered {status} (code): Simulated")


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 429, 401, 403, 404, 302])
def test_the_endpoints_own_answers_are_transient(status: int) -> None:
    assert isinstance(classify_error(api_error(status), KEY), Transient)


def test_retry_after_is_read_in_seconds() -> None:
    assert classify_error(api_error(429, retry_after="7"), KEY) == Transient(
        "Segment answered 429 (code): Simulated", 7.0
    )
    for odd in ("soon", "nan", "Wed, 21 Oct 2015 07:28:00 GMT"):
        answer = classify_error(api_error(429, retry_after=odd), KEY)
        assert isinstance(answer, Transient) and answer.retry_after is None
    answer = classify_error(APIError(503, "code", "gone"), KEY)  # no response attached
    assert isinstance(answer, Transient) and answer.retry_after is None


def test_requests_that_got_no_answer_are_transient() -> None:
    timeout = classify_error(requests.ReadTimeout("read timed out"), KEY)
    assert timeout == Transient("Segment did not answer in time")
    lost = classify_error(requests.ConnectionError("http://h/v1/batch: reset"), KEY)
    assert lost == Transient("no answer from Segment (ConnectionError)")


def test_a_programming_error_is_not_an_answer() -> None:
    with pytest.raises(ValueError, match="bug"):
        classify_error(ValueError("bug"), KEY)


def test_a_2xx_counts_only_with_segments_answer() -> None:
    assert classify_response(SimpleNamespace(status_code=200, content=b'{"success":true}')) == (
        Accepted()
    )
    proxy = classify_response(SimpleNamespace(status_code=200, content=b"<html>hi</html>"))
    assert proxy == Transient("Segment's answer could not be read (HTTP 200)")


@pytest.mark.parametrize(
    ("status", "body"),
    [(200, b"{}"), (200, b'{"ok":true}'), (200, b'{"success":false}'), (200, b'{"success":1}'),
     (201, b'{"success":true}'), (204, b"")],
)  # fmt: skip
def test_only_segments_own_answer_counts_as_kept(status: int, body: bytes) -> None:
    answer = classify_response(SimpleNamespace(status_code=status, content=body))
    assert answer == Transient(f"Segment's answer could not be read (HTTP {status})")


def test_reasons_are_one_short_line_without_key_or_address() -> None:
    error = api_error(400, f"bad message for Jo.Doe+x@Example.com\nkey {KEY} " + "x" * 500)
    answer = classify_error(error, KEY)
    assert isinstance(answer, Permanent)
    assert answer.reason.startswith("Segment answered 400 (code): bad message for <email> key ***")
    assert "\n" not in answer.reason and len(answer.reason) == 200
    assert one_line("a@b.c, d@e.f") == "<email>, <email>"


def test_a_short_write_key_masks_no_part_of_a_word() -> None:
    assert one_line("Segment said: no such key e", "e") == "Segment said: no such key ***"
