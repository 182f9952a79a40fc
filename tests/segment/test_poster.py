"""The poster with an injected post: retries, backoff, Retry-After, pacing, stop, and its logs."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from segment.analytics import request
from segment.analytics.request import APIError

from listrak_source.segment.answers import Accepted, Permanent, Transient
from listrak_source.segment.poster import BatchPoster
from listrak_source.simulator import SegmentSink

from .conftest import FakeTime, email, identify, sink_poster

KEY = "wk-secret-123"
OK = SimpleNamespace(status_code=200, content=b'{"success":true}')


class ScriptedPost:
    """Answers each call with the next scripted result (the last one repeats)."""

    def __init__(self, *results: Any, on_call: Callable[[], None] = lambda: None) -> None:
        self.results = list(results)
        self.calls: list[dict[str, Any]] = []
        self.on_call = on_call

    def __call__(self, write_key: str, host: str, **kwargs: Any) -> Any:
        self.calls.append({"write_key": write_key, "host": host, **kwargs})
        self.on_call()
        result = self.results.pop(0) if len(self.results) > 1 else self.results[0]
        if isinstance(result, Exception):
            raise result
        return result


def unavailable() -> APIError:
    return APIError(503, "internal_error", "down", SimpleNamespace(headers={}))


def rate_limited(seconds: str) -> APIError:
    return APIError(
        429, "too_many_requests", "slow", SimpleNamespace(headers={"Retry-After": seconds})
    )


def poster(post: ScriptedPost, fake: FakeTime, **options: Any) -> BatchPoster:
    settings: dict[str, Any] = {"max_retries": 3, "backoff_base": 1.0, "backoff_max": 30.0}
    return BatchPoster(
        KEY, "http://segment.test", sleep=fake.sleep, clock=fake.clock, post=post,
        **(settings | options),
    )  # fmt: skip


BATCH = [identify(1)[1], identify(2)[1]]


def test_retries_transient_answers_with_jittered_exponential_backoff(fake_time: FakeTime) -> None:
    post = ScriptedPost(unavailable(), unavailable(), unavailable(), OK)
    sender = poster(post, fake_time, random=lambda: 0.25)
    assert sender.send(BATCH) == Accepted()
    assert fake_time.slept == [0.625, 1.25, 2.5]  # half of 1, 2, 4 s fixed, a quarter of the rest
    assert sender.requests == 4
    call = post.calls[0]
    assert (call["write_key"], call["host"], call["gzip"], call["batch"]) == (
        KEY, "http://segment.test", True, BATCH,
    )  # fmt: skip


def test_backoff_is_capped_and_jitter_stays_within_it(fake_time: FakeTime) -> None:
    jitter = iter([0.0, 1.0, 0.0, 1.0])
    sender = poster(
        ScriptedPost(unavailable()), fake_time, max_retries=4, backoff_base=10.0,
        backoff_max=15.0, random=lambda: next(jitter),
    )  # fmt: skip
    answer = sender.send(BATCH)
    assert isinstance(answer, Transient) and "503" in answer.reason
    assert fake_time.slept == [5.0, 15.0, 7.5, 15.0]


def test_gives_up_after_max_retries_with_the_last_answer(fake_time: FakeTime) -> None:
    post = ScriptedPost(unavailable(), unavailable(), rate_limited("1"))
    answer = poster(post, fake_time, max_retries=2).send(BATCH)
    assert answer == Transient("Segment answered 429 (too_many_requests): slow", 1.0)
    assert len(post.calls) == 3


def test_a_permanent_answer_is_not_retried(fake_time: FakeTime) -> None:
    post = ScriptedPost(APIError(400, "invalid_request", "bad", SimpleNamespace(headers={})))
    assert poster(post, fake_time).send(BATCH) == Permanent(
        400, "Segment answered 400 (invalid_request): bad"
    )
    assert len(post.calls) == 1 and fake_time.slept == []


def test_retry_after_is_honoured_and_capped(fake_time: FakeTime) -> None:
    post = ScriptedPost(rate_limited("7"), rate_limited("600"), OK)
    assert poster(post, fake_time, max_retry_after=60.0).send(BATCH) == Accepted()
    assert fake_time.slept == [7.0, 60.0]


def test_request_starts_are_paced(fake_time: FakeTime) -> None:
    sender = poster(ScriptedPost(OK), fake_time, requests_per_second=10.0)
    for _ in range(5):
        sender.send(BATCH)
    assert fake_time.slept == pytest.approx([0.1] * 4)
    fake_time.now += 1.0  # idle long enough: the next request goes at once
    sender.send(BATCH)
    assert len(fake_time.slept) == 4


def test_retries_are_paced_too(fake_time: FakeTime) -> None:
    post = ScriptedPost(unavailable(), OK)
    sender = poster(post, fake_time, requests_per_second=0.5, backoff_base=0.5, random=lambda: 0)
    assert sender.send(BATCH) == Accepted()
    assert fake_time.slept == [0.25, 1.75]  # the backoff, then the rest of the 2 s spacing


class _Watched(threading.Event):
    """An event that says when someone starts waiting on it."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        self.waiting.set()
        return super().wait(timeout)


def test_stop_ends_a_backoff_wait_at_once() -> None:
    stop = _Watched()
    stopper = threading.Thread(target=lambda: (stop.waiting.wait(), stop.set()))
    stopper.start()
    post = ScriptedPost(unavailable(), OK)
    # Without the stop the backoff would wait an hour; pytest's timeout would fail the test.
    sender = BatchPoster(KEY, "http://segment.test", backoff_base=7200.0, backoff_max=7200.0,
                         post=post, stop=stop)  # fmt: skip
    assert sender.send(BATCH) == Transient("stopped")
    stopper.join()
    assert len(post.calls) == 1


def test_a_stopping_caller_still_sends_what_it_has_at_the_pace(fake_time: FakeTime) -> None:
    # A stop abandons retry waits, not the pace: what the run stored still goes out.
    stop = threading.Event()
    post = ScriptedPost(OK)
    sender = poster(post, fake_time, requests_per_second=10, stop=stop)
    assert sender.send(BATCH) == Accepted()
    stop.set()
    assert sender.send(BATCH) == Accepted()
    assert len(post.calls) == 2 and fake_time.slept == pytest.approx([0.1])


def test_repr_leaves_the_write_key_out(fake_time: FakeTime) -> None:
    assert KEY not in repr(poster(ScriptedPost(OK), fake_time))


def test_the_write_key_never_reaches_the_logs_at_debug(
    sink: SegmentSink, fake_time: FakeTime, caplog: pytest.LogCaptureFixture, monkeypatch: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    library = logging.getLogger("segment")
    monkeypatch.setattr(library, "level", logging.DEBUG)  # as under --debug
    monkeypatch.setattr(library, "filters", [])
    request.post(sink.write_key, sink.url, batch=[identify(1)[1]])
    # The library alone logs whole bodies (key included; another test's redaction filter
    # may already mask the key itself, so look for the body).
    assert "making request" in caplog.text and email(1) in caplog.text
    caplog.clear()
    sink.faults.poison.update({email(2)})
    sender = sink_poster(sink, fake_time)
    assert sender.send([identify(1)[1]]) == Accepted()
    assert isinstance(sender.send([identify(2)[1]]), Permanent)
    assert caplog.records  # the library and urllib3 still speak at DEBUG
    assert sink.write_key not in caplog.text
    assert email(1) not in caplog.text and email(2) not in caplog.text
