"""A maker thread and its taker: order, failure in place, what is ready now, and a close that
leaves nothing of the maker's open."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from listrak_source.feed import Empty, Feed


def test_the_items_then_the_makers_failure_reach_the_taker_in_order() -> None:
    def make() -> Iterator[int]:
        yield 1
        yield 2
        raise RuntimeError("the second connection was refused")

    feed = Feed(make, depth=1)
    got: list[int] = []
    with pytest.raises(RuntimeError, match="refused"):
        got.extend(feed.rest())
    assert got == [1, 2]
    with pytest.raises(StopIteration):
        feed.take()  # ended: the failure is not raised twice


def test_ready_gives_what_was_made_without_waiting_for_more() -> None:
    made_two, gate = threading.Event(), threading.Event()

    def make() -> Iterator[int]:
        yield 1
        yield 2
        made_two.set()  # both are in the queue by now
        gate.wait(10)
        yield 3

    feed = Feed(make, depth=2)
    assert made_two.wait(10)
    assert list(feed.ready()) == [1, 2]
    with pytest.raises(Empty):
        feed.take(timeout=0.01)
    gate.set()
    assert list(feed.rest()) == [3]
    assert list(feed.ready()) == []


def test_close_stops_the_maker_and_closes_what_it_made_in_its_own_thread() -> None:
    closed_in: list[str] = []

    def make() -> Iterator[int]:
        try:
            n = 0
            while True:
                n += 1
                yield n
        finally:
            closed_in.append(threading.current_thread().name)

    made = make()  # held here too, so only an explicit close ends it
    feed = Feed(lambda: made, depth=1, name="maker")
    assert feed.take(timeout=10) == 1
    feed.close()
    assert not feed.thread.is_alive()
    assert closed_in == ["maker"]
