"""One batch to Segment through the library's own request function: paced, retried, told apart."""

from __future__ import annotations

import logging
import random as _random
import threading
import time
from collections.abc import Callable
from typing import Any

import requests
from segment.analytics import request

from .answers import STOPPED, Answer, Transient, classify_error, classify_response
from .batches import Message, envelope_bytes
from .deadline import STOP_GRACE, Stopped, call_within, watch_library_connections


class _NoRequestBodies(logging.Filter):
    """Drops the library's DEBUG lines: they hold whole request bodies, write key included."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep INFO and above only."""
        return record.levelno > logging.DEBUG


def quiet_library_debug() -> None:
    """Keep request bodies out of the `segment` logger whatever level anyone sets on it."""
    logger = logging.getLogger("segment")
    if not any(isinstance(f, _NoRequestBodies) for f in logger.filters):
        logger.addFilter(_NoRequestBodies())


def _no_redirect_target(response: requests.Response) -> None:
    """Never follow: a redirected POST becomes a GET (or goes elsewhere) and uploads nothing."""
    return None


def refuse_redirects() -> None:
    """Make the library's session hand back a redirect instead of following it.

    Its `post` then raises an APIError for the 3xx, which counts as an outage; only
    Segment's own answer to the POST may mark a message as kept.
    """
    session: requests.Session = request._session  # the library posts through this one
    session.get_redirect_target = _no_redirect_target  # type: ignore[method-assign,assignment]


class BatchPoster:
    """Posts batches with gzip, starts at most `requests_per_second`, retries transient answers.

    `timeout` bounds each whole request, not only each read; once `stop` is set, a request
    in flight gets `stop_grace` seconds more at most.
    """

    def __init__(
        self,
        write_key: str,
        host: str,
        *,
        timeout: float = 15.0,
        max_retries: int = 3,
        backoff_base: float = 1.0,
        backoff_max: float = 30.0,
        max_retry_after: float = 60.0,
        requests_per_second: float = 50.0,
        sleep: Callable[[float], object] | None = None,
        clock: Callable[[], float] = time.monotonic,
        random: Callable[[], float] = _random.random,
        post: Callable[..., Any] = request.post,
        stop: threading.Event | None = None,
        stop_grace: float = STOP_GRACE,
    ) -> None:
        quiet_library_debug()
        refuse_redirects()
        watch_library_connections()
        self._stop_grace = stop_grace
        self._write_key = write_key
        self._host = host
        self._timeout = timeout
        self._retries = max_retries
        self._backoff = (backoff_base, backoff_max, max_retry_after)
        self._interval = 1.0 / requests_per_second
        self._next_start = float("-inf")
        self._sleep = sleep or (stop.wait if stop is not None else time.sleep)
        self._pace_sleep = sleep or time.sleep
        self._clock = clock
        self._random = random
        self._post = post
        self._stop = stop
        self.envelope_bytes = envelope_bytes(write_key)
        self.requests = 0

    def __repr__(self) -> str:
        return f"BatchPoster(host={self._host!r})"

    def send(self, messages: list[Message]) -> Answer:
        """Segment's answer to the batch, after up to max_retries retries of a transient one."""
        answer = self._attempt(messages)
        for retry in range(self._retries):
            if not isinstance(answer, Transient) or answer is STOPPED:
                break
            if not self._wait(self._delay(answer, retry)):
                return STOPPED
            answer = self._attempt(messages)
        return answer

    def probe(self) -> Answer:
        """Segment's answer to an empty batch: proof the host takes batches, creating nothing."""
        return self.send([])

    def _attempt(self, messages: list[Message]) -> Answer:
        self._pace()
        self.requests += 1
        try:
            response = call_within(
                lambda: self._post(
                    self._write_key, self._host, gzip=True, timeout=self._timeout, batch=messages
                ),
                self._timeout,
                self._stop,
                grace=self._stop_grace,
            )
        except Stopped:
            return STOPPED
        except (request.APIError, OSError) as exc:
            return classify_error(exc, self._write_key)
        return classify_response(response)

    def _pace(self) -> None:
        """Hold this request's start until 1/requests_per_second after the previous one.

        Not cut short by a stop: a stopping run still delivers what it stored, and this
        wait is a fraction of a second; only retry waits are abandoned.
        """
        now = self._clock()
        start = max(now, self._next_start)
        self._next_start = start + self._interval
        if start > now:
            self._pace_sleep(start - now)

    def _delay(self, answer: Transient, retry: int) -> float:
        """Retry-After when Segment gave one (capped), else jittered exponential backoff."""
        base, most, max_retry_after = self._backoff
        if answer.retry_after is not None:
            return min(answer.retry_after, max_retry_after)
        ceiling = min(most, base * 2.0**retry)
        return ceiling / 2 + self._random() * ceiling / 2

    def _wait(self, seconds: float) -> bool:
        """Sleep; False when the caller is stopping, before or during the wait."""
        if self._stop is not None and self._stop.is_set():
            return False
        self._sleep(seconds)
        return self._stop is None or not self._stop.is_set()
