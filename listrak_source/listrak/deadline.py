"""A deadline for each whole request to Listrak, not only for each read.

httpx bounds every read, so an answer that trickles in a byte at a time never times out.
Each connection's reads and writes here are given at most what is left of the request's
own deadline, which the transport sets as each request starts (on the thread that sends
it and then reads its answer), so such an answer ends in a ReadTimeout, which the client
retries like any other.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx


class _Deadline(threading.local):
    at = float("inf")


_deadline = _Deadline()


def _left(timeout: float | None) -> float:
    """The read or write timeout, shortened to what is left of the request's deadline."""
    left = _deadline.at - time.monotonic()
    if left <= 0:
        raise httpcore.ReadTimeout("no whole answer within the request's deadline")
    return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    """A connection whose every read and write keeps to the request's deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _left(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _left(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        return _Stream(self._inner.start_tls(ssl_context, server_hostname, _left(timeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.SyncBackend):
    """Opens connections as httpcore does, each wrapped to keep to the deadline."""

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        return _Stream(super().connect_tcp(host, port, timeout, local_address, socket_options))


class DeadlineTransport(httpx.HTTPTransport):
    """httpx's own transport, with `total` seconds for each whole request."""

    def __init__(self, total: float) -> None:
        super().__init__()
        self._total = total
        # The pool opens every connection through its backend: the one place to wrap them.
        self._pool._network_backend = _Backend()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Start the request's clock; its answer is read on this thread, under it."""
        _deadline.at = time.monotonic() + self._total
        return super().handle_request(request)
