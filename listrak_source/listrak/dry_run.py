"""A dry run's stand-in for the bulk profile-field route: it prints each request, sends none."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

import orjson


class PrintingWriter:
    """Writes each request's route and its exact body, and pretends Listrak accepted it."""

    def __init__(
        self, out: TextIO | None = None, on_closed: Callable[[], None] | None = None
    ) -> None:
        # Looked up at call time so a redirected stdout (tests, pipes) is honoured.
        self.out = out
        # Told when the reader went away (`| head`): the push has nobody left to show.
        self.on_closed = on_closed

    def post_profile_fields(self, list_id: int, contacts: Sequence[Mapping[str, Any]]) -> None:
        """Print what the client would send, byte for byte, and send nothing."""
        out = self.out if self.out is not None else sys.stdout
        try:
            out.write(f"POST /List/{list_id}/Contact/SegmentationField\n")
            out.write(orjson.dumps(list(contacts)).decode() + "\n")
            out.flush()
        except BrokenPipeError:
            if self.on_closed is None:
                raise
            self.on_closed()
