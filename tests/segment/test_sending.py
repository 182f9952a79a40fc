"""Whole deliveries against the sink on loopback: batches, bisection, outages, lost answers."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from listrak_source.segment.batches import MAX_MESSAGE_BYTES
from listrak_source.segment.poster import BatchPoster
from listrak_source.segment.sending import deliver_batches
from listrak_source.simulator import SegmentSink

from .conftest import FakeTime, email, identifies, identify, sink_poster


def ids(count: int) -> list[str]:
    return [f"m-{i}" for i in range(count)]


def test_everything_goes_in_batches_of_2500(sink: SegmentSink, fake_time: FakeTime) -> None:
    outcome = deliver_batches(identifies(6000), sink_poster(sink, fake_time))
    assert outcome.accepted == ids(6000)
    assert (outcome.rejected, outcome.unsent, outcome.outage) == ({}, 0, None)
    assert outcome.requests == sink.batches == 3
    assert [m["messageId"] for m in sink.messages] == ids(6000)


def test_big_messages_are_cut_under_the_byte_limit(sink: SegmentSink, fake_time: FakeTime) -> None:
    outcome = deliver_batches(identifies(200, note="n" * 10_000), sink_poster(sink, fake_time))
    assert outcome.accepted == ids(200) and outcome.outage is None
    assert sink.batches == outcome.requests == 5  # about 48 of 10 KB to a 490,000-byte batch


def test_a_message_over_32kb_is_refused_and_never_sent(
    sink: SegmentSink, fake_time: FakeTime
) -> None:
    big = identify(3, note="n" * MAX_MESSAGE_BYTES)
    messages = [identify(0), identify(1), identify(2), big, identify(4)]
    outcome = deliver_batches(messages, sink_poster(sink, fake_time))
    assert outcome.accepted == ["m-0", "m-1", "m-2", "m-4"]
    assert list(outcome.rejected) == ["m-3"] and email(3) not in outcome.rejected["m-3"]
    assert "m-3" not in {m["messageId"] for m in sink.messages}
    assert outcome.requests == 1


def test_a_poison_message_is_isolated_by_bisection(sink: SegmentSink, fake_time: FakeTime) -> None:
    sink.faults.poison.update({email(1234)})
    outcome = deliver_batches(identifies(2500), sink_poster(sink, fake_time))
    assert outcome.rejected == {
        "m-1234": "Segment answered 400 (invalid_request): A message of the batch was refused"
    }
    assert sorted(outcome.accepted) == sorted(set(ids(2500)) - {"m-1234"})
    # The whole batch, then both halves at each of the 12 levels down to one message.
    assert outcome.requests == 1 + 2 * math.ceil(math.log2(2500)) == 25
    assert sink.message_count == 2499 and outcome.unsent == 0
    assert fake_time.slept == pytest.approx([0.02] * 24)  # no backoff: only 50 requests a second


def test_several_poison_messages_each_isolated(sink: SegmentSink, fake_time: FakeTime) -> None:
    sink.faults.poison.update({email(0), email(2), email(2999)})
    outcome = deliver_batches(identifies(3000), sink_poster(sink, fake_time))
    assert sorted(outcome.rejected) == ["m-0", "m-2", "m-2999"]
    assert len(outcome.accepted) == 2997 == sink.message_count


def test_an_outage_opens_the_circuit_after_bounded_retries(
    sink: SegmentSink, fake_time: FakeTime
) -> None:
    sink.faults.fail_next(1000, status=503)
    outcome = deliver_batches(identifies(6000), sink_poster(sink, fake_time, max_retries=2))
    assert outcome.outage == "Segment answered 503 (internal_error): Simulated failure"
    assert (outcome.accepted, outcome.rejected, outcome.unsent) == ([], {}, 6000)
    assert outcome.requests == 3 and len(fake_time.slept) == 2
    assert sink.messages == []


def test_an_outage_mid_run_leaves_the_rest_unsent(sink: SegmentSink, fake_time: FakeTime) -> None:
    read = 0

    def source() -> Iterator[tuple[str, dict[str, Any]]]:
        nonlocal read
        for item in identifies(10_000):
            read += 1
            if read == 3000:  # the first batch is in; the second meets a dead endpoint
                sink.faults.fail_next(1000, status=500)
            yield item

    outcome = deliver_batches(source(), sink_poster(sink, fake_time, max_retries=1))
    assert outcome.accepted == ids(2500) and outcome.unsent == 7500
    assert outcome.requests == 3 and read == 10_000


def test_a_refused_write_key_is_an_outage_not_a_poison(
    sink: SegmentSink, fake_time: FakeTime
) -> None:
    outcome = deliver_batches(identifies(10), sink_poster(sink, fake_time, write_key=""))
    assert outcome.outage is not None and "401" in outcome.outage
    assert (outcome.rejected, outcome.unsent) == ({}, 10)


def test_429_waits_as_long_as_retry_after_says(sink: SegmentSink, fake_time: FakeTime) -> None:
    sink.faults.rate_limit_next(1, retry_after=7)
    outcome = deliver_batches(identifies(100), sink_poster(sink, fake_time))
    assert outcome.accepted == ids(100) and outcome.requests == 2
    assert fake_time.slept == [7.0]


def test_a_lost_answer_is_retried_under_the_same_message_ids(
    sink: SegmentSink, fake_time: FakeTime
) -> None:
    sink.faults.lose_ack_next(1)
    outcome = deliver_batches(identifies(100), sink_poster(sink, fake_time))
    assert outcome.accepted == ids(100) and outcome.requests == 2
    assert [m["messageId"] for m in sink.messages] == ids(100) * 2  # kept, then re-sent
    assert len(sink.profiles()) == 100  # Segment drops the copies by messageId


def test_a_hung_endpoint_times_out(sink: SegmentSink, fake_time: FakeTime) -> None:
    sink.faults.hang_next(1, 5.0)
    poster = sink_poster(sink, fake_time, timeout=0.2, max_retries=0)
    outcome = deliver_batches(identifies(10), poster)
    assert outcome.outage == "Segment did not answer in time" and outcome.unsent == 10


def test_a_stop_during_a_wait_leaves_the_rest_unsent(
    sink: SegmentSink, fake_time: FakeTime
) -> None:
    stop = threading.Event()
    sink.faults.fail_next(1, status=503)
    poster = sink_poster(sink, fake_time, stop=stop, sleep=lambda _: stop.set())
    outcome = deliver_batches(identifies(3000), poster)
    assert outcome.outage == "stopped" and outcome.unsent == 3000
    assert outcome.requests == 1 and sink.messages == []


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_host_that_redirects_is_never_taken_for_segment(
    sink: SegmentSink, fake_time: FakeTime, status: int
) -> None:
    # Where it leads answers any method with a JSON object, as a proxy's page may.
    sink.faults.redirect = (status, f"{sink.url}/_sink/stats")
    outcome = deliver_batches(identifies(10), sink_poster(sink, fake_time, max_retries=0))
    assert outcome.accepted == [] and outcome.unsent == 10
    assert outcome.outage is not None and f"redirect ({status})" in outcome.outage
    assert outcome.requests == 1 and sink.messages == []


@pytest.mark.parametrize("status", [400, 413])
def test_a_refusal_of_everything_is_about_the_host_not_the_messages(
    sink: SegmentSink, fake_time: FakeTime, status: int
) -> None:
    sink.faults.refuse_all = status
    outcome = deliver_batches(identifies(6000), sink_poster(sink, fake_time))
    assert (outcome.accepted, outcome.rejected, outcome.unsent) == ([], {}, 6000)
    assert outcome.outage is not None and "refuses every batch, an empty one too" in outcome.outage
    assert outcome.requests == 4  # the batch, its two halves, then an empty batch


def test_poison_in_both_halves_is_still_isolated(sink: SegmentSink, fake_time: FakeTime) -> None:
    # Both halves refused, yet Segment takes an empty batch: the messages are at fault.
    sink.faults.poison.update({email(3), email(2000)})
    outcome = deliver_batches(identifies(2500), sink_poster(sink, fake_time))
    assert set(outcome.rejected) == {"m-3", "m-2000"} and len(outcome.accepted) == 2498
    assert outcome.outage is None


def test_an_answer_that_trickles_in_meets_a_deadline_for_the_whole_request(
    sink: SegmentSink, fake_time: FakeTime
) -> None:
    # A byte every 50 ms never times out a read; the whole answer would take seconds.
    sink.faults.trickle_next(1, 0.05)
    poster = sink_poster(sink, fake_time, timeout=0.3, max_retries=1)
    outcome = deliver_batches(identifies(10), poster)
    assert outcome.accepted == ids(10) and outcome.requests == 2
    assert [m["messageId"] for m in sink.messages] == ids(10) * 2  # kept, then re-sent


def test_a_stop_cuts_short_a_request_whose_answer_trickles_in(sink: SegmentSink) -> None:
    stop = threading.Event()
    sink.faults.trickle_next(1, 0.05)
    # Without the stop the request could run for an hour; pytest's timeout would fail the test.
    poster = BatchPoster(sink.write_key, sink.url, timeout=3600.0, stop=stop, stop_grace=0.1)
    threading.Timer(0.2, stop.set).start()
    outcome = deliver_batches(identifies(10), poster)
    assert outcome.outage == "stopped" and outcome.unsent == 10


def test_a_lone_message_refused_with_everything_else_is_not_blamed(
    sink: SegmentSink, fake_time: FakeTime
) -> None:
    sink.faults.refuse_all = 400
    outcome = deliver_batches(identifies(1), sink_poster(sink, fake_time))
    assert (outcome.rejected, outcome.unsent) == ({}, 1) and outcome.requests == 2
    assert outcome.outage is not None and "refuses every batch" in outcome.outage
    sink.faults.refuse_all = None
    sink.faults.poison.add(email(0))  # refused alone while Segment takes an empty batch
    outcome = deliver_batches(identifies(1), sink_poster(sink, fake_time))
    assert list(outcome.rejected) == ["m-0"] and outcome.outage is None
