"""A deadline for one whole request to Segment, and a stop that ends the wait for it.

The library's `requests` session only bounds each read: an answer that trickles in a byte
at a time would hold a delivery, and a stopping worker, for ever. Each post therefore runs
in a thread of its own while the caller waits for it, at most until the deadline (or a
short grace once a stop is asked for). The library's connections register their socket
while they wait for an answer, so a wait given up also shuts that socket, and the thread
ends instead of reading on.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from requests.adapters import HTTPAdapter
from segment.analytics import request
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.response import HTTPResponse

T = TypeVar("T")
# Once a stop is asked for, a request in flight gets this long to be answered.
STOP_GRACE = 5.0
_POLL = 0.05

_in_flight: dict[int, socket.socket] = {}
_in_flight_lock = threading.Lock()


class DeadlineExceeded(TimeoutError):
    """The whole request took longer than its deadline (its reads each came in time)."""


class Stopped(Exception):
    """The caller is stopping, and the answer did not come within the grace."""


def _register(sock: socket.socket | None) -> None:
    if sock is not None:
        with _in_flight_lock:
            _in_flight[threading.get_ident()] = sock


class _WatchedHTTP(HTTPConnection):
    def getresponse(self) -> HTTPResponse:  # type: ignore[override]  # as urllib3 declares it
        """Register the socket the answer is read from, for the waiter to shut if need be."""
        _register(self.sock)
        return super().getresponse()


class _WatchedHTTPS(HTTPSConnection):
    def getresponse(self) -> HTTPResponse:  # type: ignore[override]  # as urllib3 declares it
        """As for plain HTTP."""
        _register(self.sock)
        return super().getresponse()


class _WatchedPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTP


class _WatchedTLSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPS


def watch_library_connections() -> None:
    """Make the library's session open connections whose wait for an answer can be cut."""
    session = request._session  # the library posts through this one
    for prefix in ("http://", "https://"):
        adapter = session.get_adapter(prefix)
        if isinstance(adapter, HTTPAdapter):
            classes = {"http": _WatchedPool, "https": _WatchedTLSPool}
            adapter.poolmanager.pool_classes_by_scheme = classes


def call_within(
    call: Callable[[], T],
    deadline: float,
    stop: threading.Event | None = None,
    *,
    grace: float = STOP_GRACE,
) -> T:
    """call()'s result, unless it takes over `deadline` seconds or a stop's grace runs out."""
    box: dict[str, Any] = {}
    done = threading.Event()
    worker = threading.Thread(target=_run, args=(call, box, done), daemon=True)
    worker.start()
    if not _wait(done, deadline, stop, grace):
        _abort(worker)
        if stop is not None and stop.is_set():
            raise Stopped
        raise DeadlineExceeded(f"no whole answer within {deadline:g}s")
    if "error" in box:
        raise box["error"]
    result: T = box["result"]
    return result


def _run(call: Callable[[], Any], box: dict[str, Any], done: threading.Event) -> None:
    try:
        box["result"] = call()
    except BaseException as exc:  # handed to the waiting caller, who raises it
        box["error"] = exc
    finally:
        with _in_flight_lock:
            _in_flight.pop(threading.get_ident(), None)
        done.set()


def _wait(
    done: threading.Event, deadline: float, stop: threading.Event | None, grace: float
) -> bool:
    """True once done; False at the deadline, or `grace` after a stop was asked for."""
    end = time.monotonic() + deadline
    while not done.wait(min(_POLL, max(end - time.monotonic(), 0.0))):
        now = time.monotonic()
        if stop is not None and stop.is_set():
            end = min(end, now + grace)
            stop = None  # the grace is counted once, from when the stop was first seen
        if now >= end:
            return done.is_set()
    return True


def _abort(worker: threading.Thread) -> None:
    """Shut the socket the abandoned thread reads from, so it ends instead of reading on."""
    with _in_flight_lock:
        sock = _in_flight.pop(worker.ident or 0, None)
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed: the thread is ending anyway
            sock.shutdown(socket.SHUT_RDWR)
