"""The read-ahead thread keeps order, hands errors over in place, and stops when told."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator

import pytest

from listrak_source.errors import StopRequested
from listrak_source.logs import current_context, log_context
from listrak_source.subscribers.readahead import Prefetch


def test_items_arrive_in_order_and_end() -> None:
    with Prefetch(iter(range(50)), depth=2) as ahead:
        assert list(ahead) == list(range(50))


def test_an_error_is_raised_after_the_items_before_it() -> None:
    def pages() -> Iterator[int]:
        yield 1
        yield 2
        raise RuntimeError("HTTP 500 after retries")

    got = []
    with Prefetch(pages()) as ahead, pytest.raises(RuntimeError, match="HTTP 500"):
        for item in ahead:
            got.append(item)
    assert got == [1, 2]


def test_reads_no_more_than_depth_ahead_and_stops_when_closed() -> None:
    produced: list[int] = []
    taken = threading.Event()

    def pages() -> Iterator[int]:
        for n in range(1000):
            produced.append(n)
            yield n
            taken.set()

    ahead = Prefetch(pages(), depth=1)
    assert next(ahead) == 0
    taken.wait(5)
    ahead.close()
    # One item handed over, one queued and one in the reader's hand at most.
    assert len(produced) <= 3
    assert not ahead._thread.is_alive()


def test_the_reader_runs_under_the_callers_log_context() -> None:
    seen: list[tuple[str, dict[str, object]]] = []

    def pages() -> Iterator[int]:
        seen.append((threading.current_thread().name, current_context()))
        yield 1

    with log_context(list_id=1001, run_id=7), Prefetch(pages(), name="reader") as ahead:
        assert list(ahead) == [1]
    assert seen == [("reader", {"list_id": 1001, "run_id": 7})]


def test_a_signal_the_kernel_gives_the_reader_still_reaches_the_main_thread() -> None:
    # Python runs handlers on the main thread. A consumer blocked without a timeout would
    # run this one only once the reader's page arrived; here the page waits for it.
    events: list[str] = []
    handled = threading.Event()

    def handler(_signum: int, _frame: object) -> None:
        events.append("signal")
        handled.set()

    def pages() -> Iterator[int]:
        handled.wait(10)
        events.append("page")
        yield 1

    previous = signal.signal(signal.SIGUSR1, handler)
    try:
        with Prefetch(pages()) as ahead:
            assert ahead._thread.ident is not None
            signal.pthread_kill(ahead._thread.ident, signal.SIGUSR1)
            assert list(ahead) == [1]
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert events == ["signal", "page"]


def test_a_stop_abandons_the_wait_for_an_item_not_yet_read() -> None:
    stop = threading.Event()
    release = threading.Event()

    def pages() -> Iterator[int]:
        yield 1
        release.wait(10)  # a page that has not arrived
        yield 2

    with Prefetch(pages(), stop=stop) as ahead:
        assert next(ahead) == 1
        stop.set()
        with pytest.raises(StopRequested):
            next(ahead)
        release.set()


def test_an_item_already_read_is_still_handed_over_after_a_stop() -> None:
    stop = threading.Event()
    queued = threading.Event()
    release = threading.Event()

    def pages() -> Iterator[int]:
        yield 1
        yield 2
        queued.set()  # asked for the next one: 2 is in the queue
        release.wait(10)
        yield 3

    with Prefetch(pages(), stop=stop) as ahead:
        assert next(ahead) == 1
        assert queued.wait(10)
        stop.set()
        assert next(ahead) == 2, "the page in hand is finished"
        with pytest.raises(StopRequested):
            next(ahead)
        release.set()


def test_the_reader_ripens_an_item_when_the_consumer_is_behind() -> None:
    ripened = threading.Event()

    def ripen(item: str) -> str:
        ripened.set()
        return item.upper()

    with Prefetch(iter("abc"), depth=1, ripen=ripen) as ahead:
        # "a" waits in the queue untaken, so "b" finds it full and is ripened.
        assert ripened.wait(5)
        taken = list(ahead)
    assert taken[:2] == ["a", "B"] and taken[2] in ("c", "C")


def test_a_consumer_that_keeps_up_gets_every_item_as_read() -> None:
    took = threading.Semaphore(0)

    def items() -> Iterator[str]:
        for item in "abc":
            yield item
            took.acquire(timeout=5)  # the next one only once this one was taken

    with Prefetch(items(), depth=1, ripen=str.upper) as ahead:
        taken = []
        for item in ahead:
            taken.append(item)
            took.release()
    assert taken == ["a", "b", "c"]
