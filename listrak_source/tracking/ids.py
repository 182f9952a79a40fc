"""Event ids from Listrak's facts and the write key: stable across runs, apart across keys.

Segment drops a `messageId` it saw in the last day from any source, so an id made from
Listrak's data alone would let two sources fed from one account drop each other's events;
the write key's hash keeps them apart. The same fact under the same key always gets the
same id, even from a fresh database, so a re-send after any failure is a copy Segment drops.
"""

from __future__ import annotations

import hashlib

# Segment keeps ids under 100 characters; the UUID form is 36 and fits every column.
_VERSION_MASK = ~((0xF << 76) | (0x3 << 62))
_VERSION_BITS = (0x8 << 76) | (0x2 << 62)  # RFC 9562 version 8: a custom, name-based UUID


def key_hash(write_key: str) -> str:
    """The write key's part of every id; the key itself is never stored."""
    return hashlib.sha256(b"listrak-source write key\n" + write_key.encode()).hexdigest()


def event_id(write_key_hash: str, fact_key: str) -> str:
    """The messageId of one fact under one write key."""
    digest = hashlib.sha256(f"{write_key_hash}\n{fact_key}".encode()).digest()
    bits = (int.from_bytes(digest[:16], "big") & _VERSION_MASK) | _VERSION_BITS
    h = f"{bits:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
