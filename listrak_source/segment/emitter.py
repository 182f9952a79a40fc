"""Identify and track calls to Segment: each built once as a dict, posted a batch at a time.

What Segment answers for each batch decides what happens to its rows (see `sending`): a
batch that is kept counts as accepted, a refusal is split until the messages at fault are
isolated, and an outage ends the delivery with the rest left due for the next run.

The poster, and with it the Segment library and `requests`, loads when the first batch is
posted (in the thread that posts it): a run that sends nothing never pays for them.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from ..config import SegmentSettings
from ..messages import identify_message
from ..records import Delivery, Pending
from .answers import Accepted
from .batches import Message
from .sending import deliver_batches

if TYPE_CHECKING:
    from .poster import BatchPoster


class SegmentEmitter:
    """Delivers identify and track calls through one poster: one request ceiling for both."""

    def __init__(self, settings: SegmentSettings, *, stop: threading.Event | None = None) -> None:
        self.settings = settings
        self._stop = stop
        self._poster: BatchPoster | None = None
        # The courier's thread and the run's own may ask for the poster first.
        self._poster_lock = threading.Lock()

    @property
    def poster(self) -> BatchPoster:
        """The one shared poster, built on first use."""
        with self._poster_lock:
            if self._poster is None:
                self._poster = _new_poster(self.settings, self._stop)
            return self._poster

    def probe(self) -> str | None:
        """None when the host answered an empty batch as Segment does, else why not."""
        answer = self.poster.probe()
        return None if isinstance(answer, Accepted) else answer.reason

    def deliver(self, rows: Sequence[Pending], trait: str, retired: Sequence[str] = ()) -> Delivery:
        """Send these rows' identifies; say which Segment kept, refused, or never answered."""
        return self.send(_messages(rows, trait, retired))

    def send(self, messages: Iterable[tuple[str, Message]]) -> Delivery:
        """Send built messages (identify or track) by id, through the one shared poster."""
        items = iter(messages)
        first = next(items, None)
        if first is None:
            return Delivery()  # nothing to post: the library need not load
        outcome = deliver_batches(itertools.chain((first,), items), self.poster)
        return Delivery(
            accepted=outcome.accepted,
            rejected=outcome.rejected,
            outage=outcome.outage,
            requests=outcome.requests,
        )


def _new_poster(settings: SegmentSettings, stop: threading.Event | None) -> BatchPoster:
    from .poster import BatchPoster  # noqa: PLC0415 - loads the Segment library

    return BatchPoster(
        settings.write_key.get_secret_value(),
        settings.host,
        timeout=settings.timeout,
        max_retries=settings.max_retries,
        backoff_max=settings.max_backoff_seconds,
        max_retry_after=settings.max_backoff_seconds,
        requests_per_second=settings.requests_per_second,
        stop=stop,
    )


def _messages(
    rows: Sequence[Pending], trait: str, retired: Sequence[str]
) -> Iterator[tuple[str, Message]]:
    for row in rows:
        yield row.message_id, identify_message(row, trait, retired)
