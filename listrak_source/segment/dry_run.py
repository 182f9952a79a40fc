"""A dry run's stand-in for Segment: it prints each identify and track call, sends nothing."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TextIO

from ..messages import identify_message
from ..records import Delivery, Pending


class PrintingEmitter:
    """A dry run's emitter: writes each identify as a JSON line and pretends it was accepted."""

    def __init__(
        self, out: TextIO | None = None, on_closed: Callable[[], None] | None = None
    ) -> None:
        # Looked up at call time so a redirected stdout (tests, pipes) is honoured.
        self.out = out if out is not None else sys.stdout
        # Told when the reader went away (`| head`): the run has nobody left to show.
        self.on_closed = on_closed

    def deliver(self, rows: Sequence[Pending], trait: str, retired: Sequence[str] = ()) -> Delivery:
        """Print, never send."""
        return self.send((row.message_id, identify_message(row, trait, retired)) for row in rows)

    def send(self, messages: Iterable[tuple[str, dict[str, Any]]]) -> Delivery:
        """Print each built message (identify or track) as a JSON line; send nothing."""
        accepted = []
        try:
            for message_id, message in messages:
                self.out.write(json.dumps(message, sort_keys=True) + "\n")
                accepted.append(message_id)
            self.out.flush()
        except BrokenPipeError:
            if self.on_closed is None:
                raise
            self.on_closed()
        return Delivery(accepted=accepted)
