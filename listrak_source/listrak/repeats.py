"""Pages that only hand back contacts the scan already returned: a scan that cannot end."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..records import Pieces, RawPage

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

# One page of repeats can be a list shifting under its cursors; this many in a row is a loop.
REPEATED_PAGES = 3
_BITS = 1 << 24  # 2 MiB: after a million keys a new one still reads "seen" only 6 % of the time


class RepeatWatch:
    """Remembers every contact of one scan in a one-hash Bloom filter of fixed size.

    A set of a million addresses would cost the worker about 100 MB; the filter costs 2 MiB.
    It may say "seen" of a contact it never saw, but a whole page of such errors, three
    pages in a row, is out of reach (each of a page's thousands of keys would have to be one).
    """

    def __init__(self) -> None:
        import numpy as np  # noqa: PLC0415 - loads with the first scan, not with the client

        self._filter: npt.NDArray[np.uint8] = np.zeros(_BITS // 8, np.uint8)
        self.streak = 0

    def page(self, page: RawPage) -> int:
        """Add the page's contacts; how many pages in a row held only contacts seen before."""
        # Addresses as Listrak spells them: a page served again spells them the same way.
        keys: Sequence[str | bytes] = (
            _raw_identities(page.pieces)
            if page.pieces is not None
            else [_identity(item) for item in page.data]
        )
        if keys:
            self.streak = 0 if self._add(keys) else self.streak + 1
        return self.streak

    def _add(self, keys: Sequence[str | bytes]) -> bool:
        """Set each key's bit; True when any was not yet set (a key new to the scan). The
        page's keys are hashed in C and their bits set together: a loop in Python cost
        half a microsecond a contact in the reader's thread."""
        import numpy as np  # noqa: PLC0415 - loaded by __init__ already

        # Salted per process, stable within it: all one scan needs.
        bits = np.fromiter(map(hash, keys), np.int64, len(keys)) & (_BITS - 1)
        byte, mask = bits >> 3, np.left_shift(1, bits & 7).astype(np.uint8)
        new = bool(np.any(self._filter[byte] & mask == 0))
        np.bitwise_or.at(self._filter, byte, mask)
        return new


def _raw_identities(pieces: Pieces) -> list[bytes]:
    """Each contact's address as its bytes spell it, when contacts open with it (the bytes
    up to the first comma: the whole address, or as much of it as is stable); else the
    contacts' bytes whole."""
    if not pieces.head.rstrip().endswith(b'"emailAddress":'):
        return pieces.parts
    return [part[: part.find(b",")] for part in pieces.parts]


def _identity(item: Any) -> str:
    """A contact's address as sent, or the text of what carries none."""
    email = item.get("emailAddress") if isinstance(item, dict) else None
    return email if isinstance(email, str) else repr(item)[:200]
