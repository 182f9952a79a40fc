"""The keys one scan has seen, held in the worker's memory instead of marked on every row.

A re-sync with no change then writes nothing: the sweep finds the subscribers a complete
scan missed as the list's subscribed rows less this set. The set lives as long as the run
in this process, which is all a sweep needs: a scan that died part way never sweeps, and
the next run starts a set of its own.

A million addresses as Python strings in a `set` would cost about 100 MB, and their hashes
as Python ints about 75 MB; this keeps each key's 64-bit hash in one flat array with open
addressing instead, at most two thirds full: 13.5 MB at 1 M keys. A page of keys is probed
as a whole with numpy's array operations: a loop in Python cost about half a microsecond a
key, a million times a scan. Python's string hash is keyed
afresh in every process, so two addresses share a hash in one run with odds of about 1 in
37 million at 1 M keys, and never the same two again: the next full scan corrects what such
a pair got wrong. When the operator fixed the hash seed (PYTHONHASHSEED), a BLAKE2b keyed
per run takes its place.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Sequence
from hashlib import blake2b

import numpy as np
import numpy.typing as npt

Codes = npt.NDArray[np.int64]
_MIN_SLOTS = 1024
# Codes placed at once when the table doubles: the whole table at once would need several
# arrays of its size beside it.
_SLICE = 65536


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
        # Room for an eighth more keys than expected (a list grows between runs) before
        # the array is two thirds full and doubles.
        slots = max(_MIN_SLOTS, 3 * (expected + expected // 8) // 2 + 1)
        self._slots: Codes = np.zeros(slots, np.int64)
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def codes(self, keys: Iterable[str]) -> list[int]:
        """The keys' hashes, as `present` and `insert` take them (0 marks an empty slot)."""
        return [code or 1 for code in map(self._hash, keys)]

    def present(self, codes: Sequence[int]) -> list[bool]:
        """For each hash, whether it was inserted before."""
        wanted = as_codes(codes)
        found: list[bool] = (self._slots[self._probe(wanted)] == wanted).tolist()
        return found

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.present(self.codes([key]))[0]

    def insert(self, codes: Iterable[int]) -> list[bool]:
        """Add these hashes; for each, whether it was new (a hash given twice is new the
        first time at most). The array doubles before it is more than two thirds full."""
        wanted = as_codes(codes)
        while self._count + len(wanted) >= len(self._slots):
            self._grow()  # room for every one of them, so each probe finds a free slot
        new = self._place(wanted)
        while 3 * self._count > 2 * len(self._slots):
            self._grow()
        fresh: list[bool] = new.tolist()
        return fresh

    def update(self, keys: Iterable[str]) -> None:
        """Add these keys."""
        self.insert(self.codes(keys))

    def _probe(self, codes: Codes) -> npt.NDArray[np.intp]:
        """For each hash, its slot, or the empty slot where its probe ends: every hash of
        the page steps on together, and those settled drop out."""
        slots = self._slots
        size = len(slots)
        at = (codes % size).astype(np.intp)  # numpy's % is never negative for a positive size
        moving = np.arange(len(codes))
        while moving.size:
            held = slots[at[moving]]
            moving = moving[(held != codes[moving]) & (held != 0)]
            at[moving] = (at[moving] + 1) % size
        return at

    def _place(self, codes: Codes) -> npt.NDArray[np.bool_]:
        """Put the hashes not held yet into their slots; for each, whether it was new.
        Two new ones whose probes end in the same free slot: one takes it, the other
        probes again and finds it taken."""
        unique, first = np.unique(codes, return_index=True)
        new = np.zeros(len(unique), np.bool_)
        waiting = np.arange(len(unique))
        while waiting.size:
            at = self._probe(unique[waiting])
            free = self._slots[at] == 0
            waiting, at = waiting[free], at[free]
            _, taker = np.unique(at, return_index=True)
            self._slots[at[taker]] = unique[waiting[taker]]
            new[waiting[taker]] = True
            waiting = np.delete(waiting, taker)
        self._count += int(np.count_nonzero(new))
        fresh = np.zeros(len(codes), np.bool_)
        fresh[first[new]] = True
        return fresh

    def _grow(self) -> None:
        old = self._slots
        self._slots = np.zeros(2 * len(old), np.int64)
        self._count = 0
        for start in range(0, len(old), _SLICE):
            part = old[start : start + _SLICE]
            self._place(part[part != 0])


def as_codes(values: Iterable[int] | Codes) -> Codes:
    """Hashes or digests as one array of signed 64-bit integers."""
    if isinstance(values, np.ndarray):
        return values.astype(np.int64, copy=False)
    if isinstance(values, Sequence):
        return np.array(values, dtype=np.int64)
    return np.fromiter(values, dtype=np.int64)
