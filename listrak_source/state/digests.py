"""A list's subscribed rows by the digest of the bytes that set them, for one scan.

A re-sync looks each contact's digest up here (listrak/pieces.py): a hit is a contact
Listrak sends exactly as it sent it when its row was written, so its row already says
what it says, and only its key needs counting as seen. The table holds each digest beside
its key's hash as the scan's seen set takes it (state/seen.py), in sixteen buckets by the
digest's top bits: each bucket is two flat arrays sorted by digest, so a page's digests
are found together by binary search in numpy, not one by one in Python. 18 MB at 1 M
rows, where a dict would cost 150; sorting a bucket at a time needs a sixteenth of that
beside it, where sorting the whole table at once needed as much again.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from .seen import Codes, as_codes

_BUCKET_BITS = 4
_BUCKETS = 1 << _BUCKET_BITS
_MIN_ROWS = 64


class DigestIndex:
    """digest -> key hash; a digest met with two different keys (two contacts whose bytes
    share a 64-bit digest) answers neither, so both are decoded."""

    def __init__(self, expected: int = 0) -> None:
        self._buckets = [_Bucket(expected // _BUCKETS) for _ in range(_BUCKETS)]

    def __len__(self) -> int:
        return sum(len(bucket) for bucket in self._buckets)

    def add(self, digests: Sequence[int] | Codes, codes: Sequence[int] | Codes) -> None:
        """Digests and their keys' hashes, pair by pair; neither is ever 0."""
        values, keys = as_codes(digests), as_codes(codes)
        if len(values) != len(keys):
            raise ValueError("one key hash a digest")
        for bucket, part in zip(self._buckets, _by_bucket(values), strict=True):
            bucket.add(values[part], keys[part])

    def add_carried(self, digests: Sequence[int], codes: Sequence[int]) -> list[int]:
        """Add the pairs whose digest is not 0; return the positions of the others."""
        values = as_codes(digests)
        carried = values != 0
        self.add(values[carried], as_codes(codes)[carried])
        missing: list[int] = np.flatnonzero(~carried).tolist()
        return missing

    def find(self, digests: Sequence[int]) -> list[int]:
        """For each digest, its key's hash, or 0 when no row (or no single row) has it.

        The page's digests are put in bucket order once and each bucket searches its own
        part: numpy gives up the GIL for a sort, a search or an operation over more than
        a few hundred values, and each time it wants it back it may wait behind the page
        reader's Python, so a page costs as few such calls as its sixteen searches allow.
        """
        wanted = as_codes(digests)
        found = np.zeros(len(wanted), np.int64)
        for bucket, part in zip(self._buckets, _by_bucket(wanted), strict=True):
            if len(part):
                found[part] = bucket.find(wanted[part])
        answer: list[int] = found.tolist()
        return answer


class _Bucket:
    """Two arrays filled as rows come; sorted by digest, one row a digest, before a lookup.

    Each is allocated once for the rows expected, with room for an eighth more, and grows
    by half when outgrown: many small arrays, one a bucket a chunk, would leave the heap
    as fragmented as they were many."""

    __slots__ = ("codes", "digests", "rows", "sorted")

    def __init__(self, expected: int) -> None:
        size = max(_MIN_ROWS, expected + expected // 8)
        self.digests: Codes = np.zeros(size, np.int64)
        self.codes: Codes = np.zeros(size, np.int64)
        self.rows = 0  # rows filled
        self.sorted = 0  # rows sorted, one a digest: all of them after _sort

    def __len__(self) -> int:
        self._sort()
        return self.rows

    def add(self, digests: Codes, codes: Codes) -> None:
        end = self.rows + len(digests)
        while end > len(self.digests):
            size = len(self.digests) + len(self.digests) // 2
            self.digests, self.codes = np.resize(self.digests, size), np.resize(self.codes, size)
        self.digests[self.rows : end] = digests
        self.codes[self.rows : end] = codes
        self.rows = end

    def find(self, wanted: Codes) -> Codes:
        self._sort()
        digests, codes = self.digests[: self.rows], self.codes[: self.rows]
        if not self.rows:
            return np.zeros(len(wanted), np.int64)
        at = np.minimum(np.searchsorted(digests, wanted), self.rows - 1)
        hit: npt.NDArray[np.bool_] = digests[at] == wanted
        return np.where(hit, codes[at], 0)

    def _sort(self) -> None:
        """Sort what was added in among the rest; a digest held twice becomes one row, whose
        key hash is 0 unless both rows had the same one."""
        if self.sorted == self.rows:
            return
        digests, codes = self.digests[: self.rows], self.codes[: self.rows]
        order = np.argsort(digests, kind="stable")
        digests[:] = digests[order]
        codes[:] = codes[order]
        starts = np.flatnonzero(np.concatenate(([True], digests[1:] != digests[:-1])))
        if len(starts) < self.rows:
            lowest = np.minimum.reduceat(codes, starts)
            shared = lowest != np.maximum.reduceat(codes, starts)
            digests[: len(starts)] = digests[starts]
            codes[: len(starts)] = np.where(shared, 0, lowest)
            self.rows = len(starts)
        self.sorted = self.rows


def _by_bucket(digests: Codes) -> list[npt.NDArray[np.intp]]:
    """The digests' positions, bucket by bucket: one stable sort by bucket, then a slice
    of it each (a bucket that gets none gets an empty slice)."""
    buckets = _bucket_of(digests)
    order = np.argsort(buckets, kind="stable")
    ends = np.cumsum(np.bincount(buckets, minlength=_BUCKETS))
    return np.split(order, ends[:-1])


def _bucket_of(digests: Codes) -> npt.NDArray[np.intp]:
    """Each digest's bucket: its top bits (digests are uniform, so buckets are even)."""
    return ((digests >> (64 - _BUCKET_BITS)) & (_BUCKETS - 1)).astype(np.intp)
