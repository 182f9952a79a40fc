"""Batches sent one after another, each answer deciding what happens to its messages."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from .answers import Accepted, Answer, Permanent, Transient
from .batches import Message, Refused, pack


class Poster(Protocol):
    """Sends one batch and answers for it; counts the HTTP requests it made."""

    envelope_bytes: int
    requests: int

    def send(self, messages: list[Message]) -> Answer: ...


@dataclass(slots=True)
class Outcome:
    """What one delivery settled, by message id; `unsent` messages spent no attempt."""

    accepted: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)
    unsent: int = 0
    outage: str | None = None
    requests: int = 0


class _Counted:
    """Passes messages through, counting them, so an outage can say how many were left."""

    def __init__(self, messages: Iterable[tuple[str, Message]]) -> None:
        self._messages = iter(messages)
        self.seen = 0

    def __iter__(self) -> Iterator[tuple[str, Message]]:
        for item in self._messages:
            self.seen += 1
            yield item

    def drain(self) -> None:
        """Count what was never read, without encoding or sending any of it."""
        self.seen += sum(1 for _ in self._messages)


def deliver_batches(messages: Iterable[tuple[str, Message]], poster: Poster) -> Outcome:
    """Send batch after batch until the input ends or the endpoint fails transiently."""
    counted = _Counted(messages)
    outcome = Outcome()
    before = poster.requests
    for item in pack(counted, envelope=poster.envelope_bytes):
        if isinstance(item, Refused):
            outcome.rejected[item.message_id] = item.reason
        elif not _send(item.ids, item.messages, poster, outcome):
            counted.drain()
            outcome.unsent = counted.seen - len(outcome.accepted) - len(outcome.rejected)
            break
    outcome.requests = poster.requests - before
    return outcome


def _send(ids: list[str], messages: list[Message], poster: Poster, outcome: Outcome) -> bool:
    """Send one batch, halving what gets a permanent answer; False once the endpoint is down."""
    return _settle(ids, messages, poster.send(messages), poster, outcome, whole=True)


_Part = tuple[list[str], list[Message], Answer]


def _settle(
    ids: list[str],
    messages: list[Message],
    answer: Answer,
    poster: Poster,
    outcome: Outcome,
    *,
    whole: bool = False,
) -> bool:
    """Record what Segment's answer means for these messages; split a refusal in halves.

    A whole batch of one that is refused is blamed only once Segment has taken an empty one.
    """
    if isinstance(answer, Accepted):
        outcome.accepted.extend(ids)
        return True
    if isinstance(answer, Transient):
        outcome.outage = answer.reason
        return False
    if len(ids) > 1:
        return _split(ids, messages, answer, poster, outcome, whole=whole)
    if whole and not _takes_batches(poster, answer, outcome):
        return False
    outcome.rejected[ids[0]] = answer.reason
    return True


def _split(
    ids: list[str],
    messages: list[Message],
    refusal: Permanent,
    poster: Poster,
    outcome: Outcome,
    *,
    whole: bool,
) -> bool:
    """Send both halves of a refused batch; a refusal of the whole batch and both halves
    asks Segment to take an empty batch before any message is blamed."""
    half = len(ids) // 2
    halves = [_answered(ids[:half], messages[:half], poster)]
    if not isinstance(halves[0][2], Transient):
        halves.append(_answered(ids[half:], messages[half:], poster))
    if whole and _both_refused(halves) and not _takes_batches(poster, refusal, outcome):
        return False
    settled = True
    for part in halves:
        # A half Segment kept counts even when the other half found the endpoint down.
        if settled or isinstance(part[2], Accepted):
            settled = _settle(*part, poster, outcome) and settled
    return settled


def _answered(ids: list[str], messages: list[Message], poster: Poster) -> _Part:
    return ids, messages, poster.send(messages)


def _takes_batches(poster: Poster, refusal: Permanent, outcome: Outcome) -> bool:
    """Whether Segment takes an empty batch; if not, delivery stops as for an outage."""
    probe = poster.send([])
    if isinstance(probe, Accepted):
        return True
    outcome.outage = _everything_refused(refusal, probe)
    return False


def _both_refused(halves: list[_Part]) -> bool:
    return len(halves) == 2 and all(isinstance(answer, Permanent) for _, _, answer in halves)


def _everything_refused(refusal: Permanent, probe: Answer) -> str:
    """Why delivery stops: an empty batch holds no message to blame, so when Segment will
    not take one either, the host or the key is wrong, and splitting further would only
    charge every row for what is wrong with the configuration."""
    if isinstance(probe, Transient):
        return probe.reason
    return (
        f"Segment refuses every batch, an empty one too ({refusal.reason}): "
        "check segment.host and the write key"
    )
