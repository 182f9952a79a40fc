"""Batches sent one after another, each answer deciding what happens to its messages."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from .answers import Accepted, Answer, Transient
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
    parts = [(ids, messages)]
    while parts:
        ids, messages = parts.pop()
        answer = poster.send(messages)
        if isinstance(answer, Accepted):
            outcome.accepted.extend(ids)
        elif isinstance(answer, Transient):
            outcome.outage = answer.reason
            return False
        elif len(ids) == 1:
            outcome.rejected[ids[0]] = answer.reason
        else:
            half = len(ids) // 2
            parts += [(ids[half:], messages[half:]), (ids[:half], messages[:half])]
    return True
