"""Listrak's paging and query forms, shared by the contact and the activity routes."""

from __future__ import annotations

import base64
import binascii
import re
import struct
import zlib
from collections.abc import Mapping
from datetime import datetime
from typing import NamedTuple

from ._http import HttpError

# Three fixed bytes that base64 turns into "+/+/", and 28 bytes in all so it always ends in
# "==": every cursor breaks a client that forgets to URL-encode it.
_CURSOR_MAGIC = b"\xfb\xff\xbf"
_CURSOR = struct.Struct(">BQIQ")
_KEYED, _OFFSET = 1, 2  # the cursor's first byte: resume after an order key, or skip an offset
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}(\.\d{1,6})?)?")


class Cursor(NamedTuple):
    """What a cursor holds: the page it leads to, and where that page starts."""

    page: int
    position: int  # the order key to resume after, or the offset to skip
    offset: bool = False


def encode_cursor(list_id: int, subscribed: bool, cursor: Cursor) -> str:
    """An opaque cursor for this list's scan of one state."""
    kind = _OFFSET if cursor.offset else _KEYED
    payload = _CURSOR.pack(kind, cursor.position, cursor.page, list_id)
    check = zlib.crc32(payload + bytes([subscribed])).to_bytes(4, "big")
    return base64.b64encode(_CURSOR_MAGIC + payload + check).decode()


def decode_cursor(cursor: str, list_id: int, subscribed: bool) -> Cursor:
    """A cursor this list's scan of this state handed out, else 400."""
    try:
        raw = base64.b64decode(cursor, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    payload, check = raw[3:-4], raw[-4:]
    ok = len(raw) == 7 + _CURSOR.size and raw.startswith(_CURSOR_MAGIC)
    ok = ok and zlib.crc32(payload + bytes([subscribed])).to_bytes(4, "big") == check
    if not ok or _CURSOR.unpack(payload)[3] != list_id:
        raise HttpError(400, "The cursor is not valid.")
    kind, position, page, _ = _CURSOR.unpack(payload)
    return Cursor(page, position, kind == _OFFSET)


def date_param(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name.lower())
    if not value:
        return None
    try:
        if not _DATE.fullmatch(value):
            raise ValueError(value)
        return datetime.fromisoformat(value).strftime("%Y-%m-%dT%H:%M:%S")
    except ValueError:
        raise HttpError(400, f"{name} is not a valid date (YYYY-MM-DDTHH:MM:SS).") from None


def count_param(params: Mapping[str, str]) -> int:
    value = params.get("count", "1000")
    if not (value.isdigit() and 1 <= int(value) <= 5000):
        raise HttpError(400, "count must be between 1 and 5000.")
    return int(value)
