"""The keys one scan has seen, held in the worker's memory instead of marked on every row.

A re-sync with no change then writes nothing: the sweep finds the subscribers a complete
scan missed as the list's subscribed rows less this set. The set lives as long as the run
in this process, which is all a sweep needs: a scan that died part way never sweeps, and
the next run starts a set of its own.

A million addresses as Python strings in a `set` would cost about 100 MB, and their hashes
as Python ints about 75 MB; this keeps each key's 64-bit hash in one flat array with open
addressing instead, at most half full: 16 MB at 1 M keys. Python's string hash is keyed
afresh in every process, so two addresses share a hash in one run with odds of about 1 in
37 million at 1 M keys, and never the same two again: the next full scan corrects what such
a pair got wrong. When the operator fixed the hash seed (PYTHONHASHSEED), a BLAKE2b keyed
per run takes its place.
"""

from __future__ import annotations

import os
import sys
from array import array
from collections.abc import Callable, Iterable, Sequence
from hashlib import blake2b

_MIN_SLOTS = 1024


def _keyed_hash() -> Callable[[str], int]:
    # str's hash is a signed 64-bit SipHash, keyed per process unless the seed is fixed.
    if os.environ.get("PYTHONHASHSEED", "random") == "random" and sys.flags.hash_randomization:
        return hash
    salt = os.urandom(16)

    def digest(key: str) -> int:
        code = blake2b(key.encode(), digest_size=8, key=salt).digest()
        return int.from_bytes(code, "little", signed=True)

    return digest


class SeenKeys:
    """A set of strings kept as their hashes, a page of keys at a time."""

    def __init__(self, expected: int = 0) -> None:
        self._hash = _keyed_hash()
        slots = _MIN_SLOTS
        while slots < 2 * expected:
            slots *= 2
        self._slots = array("q", bytes(8 * slots))
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def codes(self, keys: Iterable[str]) -> list[int]:
        """The keys' hashes, as `present` and `insert` take them (0 marks an empty slot)."""
        return [code or 1 for code in map(self._hash, keys)]

    def present(self, codes: Sequence[int]) -> list[bool]:
        """For each hash, whether it was inserted before."""
        slots = self._slots
        mask = len(slots) - 1
        found = []
        for code in codes:
            i = code & mask
            while (held := slots[i]) != code and held:
                i = (i + 1) & mask
            found.append(held == code)
        return found

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.present(self.codes([key]))[0]

    def insert(self, codes: Iterable[int]) -> list[bool]:
        """Add these hashes; for each, whether it was new. The array doubles before it is
        more than half full."""
        slots = self._slots
        mask = len(slots) - 1
        new = []
        for code in codes:
            i = code & mask
            while (held := slots[i]) != code and held:
                i = (i + 1) & mask
            new.append(not held)
            if held:
                continue
            slots[i] = code
            self._count += 1
            if 2 * self._count > len(slots):
                self._grow()
                slots = self._slots
                mask = len(slots) - 1
        return new

    def update(self, keys: Iterable[str]) -> None:
        """Add these keys."""
        self.insert(self.codes(keys))

    def _grow(self) -> None:
        # Straight from the old array: a list of a million codes would cost 40 MB more.
        old = self._slots
        self._slots = array("q", bytes(16 * len(old)))
        self._count = 0
        self.insert(code for code in old if code)
