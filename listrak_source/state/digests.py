"""A list's subscribed rows by the digest of the bytes that set them, for one scan.

A re-sync looks each contact's digest up here (listrak/pieces.py): a hit is a contact
Listrak sends exactly as it sent it when its row was written, so its row already says
what it says, and only its key needs counting as seen. The table holds each digest beside
its key's hash as the scan's seen set takes it (state/seen.py): two flat arrays, filled as
the rows are read and sorted by digest before the first lookup, so a page's digests are
found together by binary search in numpy, not one by one in Python. 16 MB at 1 M rows,
where a dict would cost 150.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .seen import Codes, as_codes

_MIN_ROWS = 1024


class DigestIndex:
    """digest -> key hash; a digest met with two different keys (two contacts whose bytes
    share a 64-bit digest) answers neither, so both are decoded."""

    def __init__(self, expected: int = 0) -> None:
        # Room for an eighth more rows than expected before the arrays grow.
        size = max(_MIN_ROWS, expected + expected // 8)
        self._digests: Codes = np.zeros(size, np.int64)
        self._codes: Codes = np.zeros(size, np.int64)
        self._rows = 0  # rows filled
        self._sorted = 0  # rows sorted by digest, one a digest: all of them after _sort

    def __len__(self) -> int:
        self._sort()
        return self._rows

    def add(self, digests: Sequence[int] | Codes, codes: Sequence[int] | Codes) -> None:
        """Digests and their keys' hashes, pair by pair; neither is ever 0."""
        if len(digests) != len(codes):
            raise ValueError("one key hash a digest")
        end = self._rows + len(digests)
        while end > len(self._digests):
            self._grow()
        self._digests[self._rows : end] = as_codes(digests)
        self._codes[self._rows : end] = as_codes(codes)
        self._rows = end

    def add_carried(self, digests: Sequence[int], codes: Sequence[int]) -> list[int]:
        """Add the pairs whose digest is not 0; return the positions of the others."""
        values = as_codes(digests)
        carried = values != 0
        self.add(values[carried], as_codes(codes)[carried])
        missing: list[int] = np.flatnonzero(~carried).tolist()
        return missing

    def find(self, digests: Sequence[int]) -> list[int]:
        """For each digest, its key's hash, or 0 when no row (or no single row) has it."""
        self._sort()
        wanted = as_codes(digests)
        table, codes = self._digests[: self._rows], self._codes[: self._rows]
        if not len(table):
            return [0] * len(wanted)
        at = np.minimum(np.searchsorted(table, wanted), len(table) - 1)
        found: list[int] = np.where(table[at] == wanted, codes[at], 0).tolist()
        return found

    def _sort(self) -> None:
        """Sort what was added by digest; a digest held twice becomes one row, whose key
        hash is 0 unless both rows had the same one."""
        if self._sorted == self._rows:
            return
        digests, codes = self._digests[: self._rows], self._codes[: self._rows]
        order = np.argsort(digests, kind="stable")
        digests[:] = digests[order]
        codes[:] = codes[order]
        del order
        starts = np.flatnonzero(np.concatenate(([True], digests[1:] != digests[:-1])))
        if len(starts) < self._rows:
            lowest = np.minimum.reduceat(codes, starts)
            shared = lowest != np.maximum.reduceat(codes, starts)
            digests[: len(starts)] = digests[starts]
            codes[: len(starts)] = np.where(shared, 0, lowest)
            self._rows = len(starts)
        self._sorted = self._rows

    def _grow(self) -> None:
        """Half as many rows again: a list that grew since its last scan."""
        size = len(self._digests) + len(self._digests) // 2
        self._digests = np.resize(self._digests, size)
        self._codes = np.resize(self._codes, size)
