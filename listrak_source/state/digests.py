"""A list's subscribed rows by the digest of the bytes that set them, for one scan.

A re-sync looks each contact's digest up here (listrak/pieces.py): a hit is a contact
Listrak sends exactly as it sent it when its row was written, so its row already says
what it says, and only its key needs counting as seen. The table holds each digest beside
its key's hash as the scan's seen set takes it (state/seen.py), in two flat arrays with
open addressing, at most two thirds full: 29 MB at 1 M rows, where a dict would cost 150.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence

_MIN_SLOTS = 1024
_SLICE = 65536


class DigestIndex:
    """digest -> key hash; a digest met with two different keys (two contacts whose bytes
    share a 64-bit digest) answers neither, so both are decoded."""

    def __init__(self, expected: int = 0) -> None:
        # Room for a fifth more rows than expected before the table is two thirds full: a
        # power of two would be a third larger again at 1 M.
        size = max(_MIN_SLOTS, 9 * expected // 5 + 1)
        self._digests = array("q", bytes(8 * size))
        self._codes = array("q", bytes(8 * size))
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, digests: Sequence[int], codes: Sequence[int]) -> None:
        """Digests and their keys' hashes, pair by pair; neither is ever 0 (the empty slot)."""
        while 3 * (self._count + len(digests)) > 2 * len(self._digests):
            self._grow()
        # One loop, not a call a pair: a million are added at a re-sync's third page.
        table, keys = self._digests, self._codes
        size, count = len(table), self._count
        for digest, code in zip(digests, codes, strict=True):
            i = digest % size
            while (held := table[i]) != digest and held:
                i = i + 1 if i + 1 < size else 0
            if not held:
                table[i], keys[i] = digest, code
                count += 1
            elif keys[i] != code:
                keys[i] = 0  # shared by two keys: recognizes neither
        self._count = count

    def find(self, digests: Sequence[int]) -> list[int]:
        """For each digest, its key's hash, or 0 when no row (or no single row) has it."""
        table, codes = self._digests, self._codes
        size = len(table)
        found = []
        for digest in digests:
            i = digest % size
            while (held := table[i]) != digest and held:
                i = i + 1 if i + 1 < size else 0
            found.append(codes[i] if held else 0)
        return found

    def _grow(self) -> None:
        """Twice the slots, refilled a slice at a time: a list of a million entries would
        cost more than the table."""
        old_digests, old_codes = self._digests, self._codes
        self._digests = array("q", bytes(16 * len(old_digests)))
        self._codes = array("q", bytes(16 * len(old_digests)))
        self._count = 0
        for start in range(0, len(old_digests), _SLICE):
            end = start + _SLICE
            pairs = zip(old_digests[start:end], old_codes[start:end], strict=True)
            held = [(d, c) for d, c in pairs if d]
            self.add([d for d, _ in held], [c for _, c in held])
