"""uvicorn's HTTP/1.1 protocol with the bounds a server facing the internet needs.

uvicorn times out only a keep-alive connection that sends nothing after an answer: a new
connection that never sends a byte, or a request head sent a byte at a time, holds its
socket for ever, and enough of them use up the process's descriptors (taking the store
and the Listrak and Segment clients down too). Here every connection waiting for a request
head has `header_timeout` in all to send it, however it trickles; connections beyond
`max_connections` are closed as they are accepted; and a connection whose answer went out
before its request's body was read is closed, so the rest of that body cannot hold it.
Each kind of event is logged once a minute at most.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from ..logs import Throttle, held_back

log = logging.getLogger(__name__)


@dataclass
class ConnectionGuard:
    """The bounds every connection of one server keeps, and what they refused."""

    header_timeout: float
    max_connections: int
    throttle: Throttle = field(default_factory=Throttle)
    over_cap: int = 0
    timed_out: int = 0

    def refused_over_cap(self) -> None:
        """A connection beyond max_connections was closed as it was accepted."""
        self.over_cap += 1
        self._warn(
            "closed a connection on arrival: max_connections (%d) are open", self.max_connections
        )

    def head_timed_out(self) -> None:
        """A connection sent no complete request head within header_timeout."""
        self.timed_out += 1
        self._warn(
            "closed a connection that sent no complete request within header_timeout (%gs)",
            self.header_timeout,
        )

    def _warn(self, message: str, *args: Any) -> None:
        count = self.throttle.admit(message)
        if count is not None:
            log.warning(message + held_back(count), *args)


class GuardedH11Protocol(H11Protocol):
    """H11Protocol whose connections are capped in number and in how long a head may take."""

    guard: ClassVar[ConnectionGuard]
    _head_timer: asyncio.TimerHandle | None = None

    @classmethod
    def bound_by(cls, guard: ConnectionGuard) -> type[GuardedH11Protocol]:
        """This protocol with one server's guard: uvicorn builds each connection's itself."""
        return type(cls.__name__, (cls,), {"guard": guard})

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Count the connection; close it at once past the cap, else start its head clock."""
        super().connection_made(transport)
        if len(self.connections) > self.guard.max_connections:
            self.guard.refused_over_cap()
            transport.abort()  # frees the descriptor now; nothing was read or written
            return
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the connection and its clock."""
        self._stop_clock()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        """Parse what arrived; once a request's head is in, its clock stops."""
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:
            self._stop_clock()

    def on_response_complete(self) -> None:
        """After an answer: close if the request's body was left unread, else await a head."""
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if self.conn.their_state is h11.IDLE:
            self._await_head()
        elif self.conn.our_state is h11.DONE and self.conn.their_state is h11.SEND_BODY:
            # Answered before its body was read (a refusal): the rest of it is not wanted,
            # and reading it a byte at a time must not keep the socket.
            self.transport.close()

    def _await_head(self) -> None:
        self._stop_clock()
        self._head_timer = self.loop.call_later(self.guard.header_timeout, self._head_late)

    def _stop_clock(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.guard.head_timed_out()
            self.transport.abort()
