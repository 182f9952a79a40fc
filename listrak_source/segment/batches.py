"""Identify and track dicts packed into requests: 500 KB and 2,500 events a batch at most."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

Message = dict[str, Any]

MAX_MESSAGE_BYTES = 32 * 1024
MAX_BATCH_EVENTS = 2500
# Segment's 500 KB read as 500,000 bytes, the stricter reading, less 10,000 spare in case
# Segment counts anything beyond the body we measure.
MAX_BATCH_BYTES = 490_000
# sentAt as the library writes it (an aware now().isoformat()), at its longest.
_SENT_AT = "2000-01-01T00:00:00.000000+00:00"
# The library's json.dumps joins a batch's messages with ", ".
_SEPARATOR_BYTES = 2


@dataclass(slots=True)
class Batch:
    """Messages for one request and their ids, in input order, with the body's size."""

    ids: list[str] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    size: int = 0

    def add(self, message_id: str, message: Message, size: int) -> None:
        """Take one message that fits."""
        self.size += size + (_SEPARATOR_BYTES if self.ids else 0)
        self.ids.append(message_id)
        self.messages.append(message)


@dataclass(frozen=True, slots=True)
class Refused:
    """A message Segment would never take, and why (sizes only, never its content)."""

    message_id: str
    reason: str


def envelope_bytes(write_key: str) -> int:
    """Bytes of the library's body around the batch's messages, this write key included."""
    return len(json.dumps({"batch": [], "sentAt": _SENT_AT, "writeKey": write_key}))


def wire_size(message: Message) -> int:
    """Bytes the library's json.dumps makes of a message, never fewer, for JSON's own types."""
    encoded = orjson.dumps(message)
    # DEL is ASCII, but json.dumps spells it \u007f, six bytes where orjson writes one.
    if encoded.isascii() and b"\x7f" not in encoded:
        # json.dumps puts a space after each ',' and ':'; those inside strings only over-count.
        return len(encoded) + encoded.count(b",") + encoded.count(b":")
    # ensure_ascii spells each other character as one or two \uXXXX: measure those exactly.
    return len(json.dumps(message, default=str))


def pack(
    messages: Iterable[tuple[str, Message]],
    *,
    envelope: int,
    max_bytes: int = MAX_BATCH_BYTES,
    max_events: int = MAX_BATCH_EVENTS,
) -> Iterator[Batch | Refused]:
    """Batches in input order, one held at a time; a message over 32 KB comes out Refused."""
    batch = Batch(size=envelope)
    for message_id, message in messages:
        refused, size = _measure(message_id, message)
        if refused is not None:
            yield refused
            continue
        full = len(batch.ids) >= max_events or batch.size + _SEPARATOR_BYTES + size > max_bytes
        if batch.ids and full:
            yield batch
            batch = Batch(size=envelope)
        batch.add(message_id, message, size)
    if batch.ids:
        yield batch


def _measure(message_id: str, message: Message) -> tuple[Refused | None, int]:
    kind = message.get("type", "message")
    try:
        size = wire_size(message)
    except (TypeError, ValueError):  # orjson's JSONEncodeError is a TypeError
        return Refused(message_id, f"{kind} cannot be encoded as JSON"), 0
    if size > MAX_MESSAGE_BYTES:
        # wire_size may over-count (a ',' or ':' inside a string): refuse only what is over.
        size = len(json.dumps(message, default=str))
    if size > MAX_MESSAGE_BYTES:
        reason = f"{kind} is {size} bytes, over Segment's {MAX_MESSAGE_BYTES}-byte limit"
        return Refused(message_id, reason), size
    return None, size
