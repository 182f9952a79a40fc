"""Pure message building: a pending row becomes the identify Segment should receive."""

from __future__ import annotations

import functools
import json
import os
import random
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from .records import Pending

# Segment refuses a message over 32 KB. The worker posts whole batches through the
# library's request path, which adds nothing to a message (sentAt and the write key are
# the batch's): a message is measured as json.dumps encodes it, as delivery measures it.
MAX_MESSAGE_BYTES = 32 * 1024


def traits(row: Pending, trait: str, retired: Sequence[str] = ()) -> dict[str, Any]:
    """The identify's traits: the list's trait, and null for old names a rename retires."""
    out: dict[str, Any] = {"email": row.email, trait: True if row.subscribed else None}
    out.update(dict.fromkeys(retired))
    return out


def identify_message(row: Pending, trait: str, retired: Sequence[str] = ()) -> dict[str, Any]:
    """The identify as it goes on the wire, for dry runs and size checks."""
    message: dict[str, Any] = {
        "type": "identify",
        "messageId": row.message_id,
        "anonymousId": row.email,
        "traits": traits(row, trait, retired),
        "timestamp": _stamp(row.detected_at),
    }
    if row.user_id is not None:
        message["userId"] = row.user_id
    return message


def oversize_reason(
    email: str, user_id: str | None, trait: str, retired: Sequence[str] = ()
) -> str | None:
    """Why a contact's message would exceed Segment's 32 KB limit, or None if it fits;
    `retired`: the old traits a rename has every message remove as well."""
    probe = Pending(0, email.lower(), email, True, user_id, "0" * 36, datetime.now(UTC))
    size = len(json.dumps(identify_message(probe, trait, retired)).encode())
    if size <= MAX_MESSAGE_BYTES:
        return None
    return f"identify would be {size} bytes, over Segment's {MAX_MESSAGE_BYTES}-byte limit"


@functools.lru_cache(maxsize=64)
def _stamp(moment: datetime) -> str:
    """Segment's timestamp form; a page's changes share one detection time, so it is cached."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.isoformat(timespec="milliseconds")


class MessageIds:
    """Random (version 4) UUIDs as strings, drawn from a generator seeded by os.urandom.

    A first sync makes a million ids; uuid.uuid4() makes a system call and a UUID object
    for each, which measured as a tenth of the whole run. An id only has to be unique, so
    a Mersenne Twister seeded with 256 random bits per run does: two runs colliding on one
    of 2^122 values is as unlikely as it is for uuid4 itself. The ids are made a few
    thousand at a time from one draw of random bytes: 1.3-1.8 µs an id against 2.7 one by one.
    """

    def __init__(self) -> None:
        self._random = random.Random(os.urandom(32))
        self._lock = threading.Lock()
        self._ready: list[str] = []

    def __call__(self) -> str:
        with self._lock:
            if not self._ready:
                self._ready = uuid4_strings(self._random.randbytes(16 * _BATCH))
            return self._ready.pop()


_BATCH = 4096
# A UUID's variant nibble keeps its two low random bits under the RFC 4122 variant (10).
_VARIANT = {f"{n:x}": f"{(n & 0x3) | 0x8:x}" for n in range(16)}


def uuid4_strings(data: bytes) -> list[str]:
    """Each 16 bytes of `data` as the canonical 8-4-4-4-12 form of a version 4 UUID: its
    version nibble (4) and variant bits set where a UUID keeps them, the rest as drawn."""
    h = data.hex()
    return [
        f"{h[i : i + 8]}-{h[i + 8 : i + 12]}-4{h[i + 13 : i + 16]}"
        f"-{_VARIANT[h[i + 16]]}{h[i + 17 : i + 20]}-{h[i + 20 : i + 32]}"
        for i in range(0, len(h), 32)
    ]
