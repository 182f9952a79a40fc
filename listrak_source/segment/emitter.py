"""Delivery through segment-analytics-python: what counts as accepted, and what failed why."""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from segment.analytics import Client

from ..config import SegmentSettings
from ..messages import identify_kwargs
from ..records import Delivery, Pending

log = logging.getLogger(__name__)

# Segment takes 500 KB a batch; the library cuts batches at 475 KB by size itself,
# so the count cap only needs to stay at Segment's 2,500 events.
_MAX_BATCH_EVENTS = 2500
# The library cuts a batch at this many bytes, so pacing enqueued bytes paces requests.
_BATCH_BYTES = 475_000
# What an identify adds around its email, userId and trait name once serialized.
_MESSAGE_OVERHEAD = 260
# The consumer waits this long for a batch to fill; short, because we enqueue a
# whole chunk at once and every flush otherwise pays the wait at its tail.
_UPLOAD_INTERVAL = 0.05


class _Failures:
    """Collects on_error reports from the consumer thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.failed: dict[str, str] = {}
        self.rate_limited: set[str] = set()

    def __call__(self, error: Exception, batch: list[dict[str, Any]]) -> None:
        limited = _is_rate_limit(error)
        text = _describe(error)
        with self._lock:
            for message in batch:
                message_id = str(message.get("messageId"))
                if limited:
                    self.rate_limited.add(message_id)
                else:
                    self.failed[message_id] = text


def _is_rate_limit(error: Exception) -> bool:
    return getattr(error, "status", None) == 429 or "Rate limit" in str(error)


def _describe(error: Exception) -> str:
    status = getattr(error, "status", None)
    prefix = f"Segment answered {status}: " if status else "Segment delivery failed: "
    return prefix + str(error)[:300]


class BytePacer:
    """Holds enqueueing to a byte rate, so batches leave at no more than a request rate."""

    def __init__(
        self,
        bytes_per_second: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = bytes_per_second
        self.clock = clock
        self.sleep = sleep
        self._start: float | None = None
        self._bytes = 0.0

    def take(self, size: int) -> None:
        """Account for `size` bytes; sleep while we are ahead of the allowed rate."""
        now = self.clock()
        if self._start is None:
            self._start = now
        self._bytes += size
        ahead = self._bytes / self.rate - (now - self._start)
        if ahead > 0:
            self.sleep(ahead)


def estimated_size(row: Pending, trait: str) -> int:
    """Bytes an identify takes on the wire, near enough for pacing."""
    return 2 * len(row.email) + len(row.user_id or "") + len(trait) + _MESSAGE_OVERHEAD


class SegmentEmitter:
    """Sends identify calls with a fresh Client per delivery: flush, then shutdown."""

    def __init__(
        self,
        settings: SegmentSettings,
        *,
        client_factory: Callable[..., Any] = Client,
        pacer: BytePacer | None = None,
    ) -> None:
        self.settings = settings
        self._client_factory = client_factory
        # One pacer for the emitter's life, so the ceiling holds across chunks.
        self._pacer = pacer or BytePacer(settings.requests_per_second * _BATCH_BYTES)

    def _client(self, on_error: _Failures, size: int) -> Any:
        s = self.settings
        return self._client_factory(
            write_key=s.write_key.get_secret_value(),
            host=s.host,
            gzip=True,
            on_error=on_error,
            max_queue_size=size + 1,
            upload_size=_MAX_BATCH_EVENTS,
            upload_interval=_UPLOAD_INTERVAL,
            max_retries=s.max_retries,
            timeout=s.timeout,
            max_total_backoff_duration=s.max_backoff_seconds,
            max_rate_limit_duration=s.max_backoff_seconds,
            thread=1,  # thread > 1 keeps only the last consumer in 2.x
        )

    def deliver(self, rows: Sequence[Pending], trait: str, retired: Sequence[str] = ()) -> Delivery:
        """Enqueue every row, flush, and count as accepted only what on_error did not name."""
        failures = _Failures()
        client = self._client(failures, len(rows))
        queued: list[str] = []
        result = Delivery()
        try:
            for row in rows:
                self._pacer.take(estimated_size(row, trait))
                reason = _enqueue(client, row, trait, retired)
                if reason is None:
                    queued.append(row.message_id)
                else:
                    result.failed[row.message_id] = reason
            client.flush()
        finally:
            client.shutdown()
            # Each Client registers join() with atexit; a long-lived daemon would pile them up.
            atexit.unregister(client.join)
        for message_id in queued:
            if message_id in failures.failed:
                result.failed[message_id] = failures.failed[message_id]
            elif message_id in failures.rate_limited:
                result.rate_limited.append(message_id)
            else:
                result.accepted.append(message_id)
        return result


def _enqueue(client: Any, row: Pending, trait: str, retired: Sequence[str]) -> str | None:
    try:
        ok, _ = client.identify(**identify_kwargs(row, trait, retired))
    except RuntimeError as exc:  # the library's own 32 KB check
        return f"message refused before sending: {str(exc)[:200]}"
    # A full queue drops the message silently apart from this flag.
    return None if ok else "segment client queue was full"
