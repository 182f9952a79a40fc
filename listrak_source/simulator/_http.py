"""Loopback HTTP plumbing shared by the Listrak simulator and the Segment sink."""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.message import Message
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, NamedTuple, Self
from urllib.parse import parse_qsl, unquote, urlsplit

# Bigger bodies are refused unread: nothing legitimate in either API comes close.
MAX_BODY_BYTES = 64 * 1024 * 1024


class RequestRecord(NamedTuple):
    """One request as a fake saw and answered it, for tests to assert on."""

    method: str
    path: str
    query: dict[str, str]
    status: int


@dataclass(frozen=True, slots=True)
class Request:
    """One parsed HTTP request, handed to an app."""

    method: str
    path: str
    query: dict[str, str]
    headers: Message
    body: bytes


@dataclass(slots=True)
class Response:
    """What an app answers; drop=True closes the connection with no answer at all, and
    `trickle` writes the answer a byte at a time, that many seconds apart."""

    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    drop: bool = False
    trickle: float = 0.0


App = Callable[[Request], Response]


class HttpError(Exception):
    """An error answer; each fake renders it in its own service's body shape."""

    def __init__(
        self, status: int, message: str, code: str = "", retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after = retry_after

    @property
    def headers(self) -> list[tuple[str, str]]:
        """Retry-After for rate limits."""
        return [] if self.retry_after is None else [("Retry-After", str(self.retry_after))]


def json_response(
    status: int, payload: object, headers: Iterable[tuple[str, str]] = ()
) -> Response:
    """Encode a JSON answer compactly, as both real services do."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    return Response(status, body, [("Content-Type", "application/json; charset=utf-8"), *headers])


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Joining handler threads on close would wait for idle keep-alive clients forever.
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: App) -> None:
        super().__init__(address, _Handler)
        self.app = app
        self.conns: set[socket.socket] = set()
        self.conns_lock = threading.Lock()
        self.stopping = threading.Event()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hang up mid-request (timeouts, lost-ack tests): no traceback for that."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Without it every response waits ~40 ms for a delayed ACK and benchmarks measure the fake.
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.conns_lock:
            self.server.conns.add(self.connection)

    def finish(self) -> None:
        with self.server.conns_lock:
            self.server.conns.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: tests and benchmarks make thousands of requests."""

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    def _dispatch(self) -> None:
        body = self._read_body()
        if body is None:  # unread, so the connection cannot be reused
            self.close_connection = True
            self._write(json_response(413, {"code": "too_large", "message": "Body too large"}))
            return
        split = urlsplit(self.path)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        request = Request(self.command, unquote(split.path), query, self.headers, body)
        try:
            response = self.server.app(request)
        except Exception:  # a bug in the fake must surface, but not kill the connection thread
            traceback.print_exc(file=sys.stderr)
            bug = {"status": 500, "error": "SIMULATOR_BUG", "code": "bug", "message": "see stderr"}
            response = json_response(500, bug)
        if response.drop:
            self.close_connection = True
            return
        self._write(response)

    def _read_body(self) -> bytes | None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = MAX_BODY_BYTES + 1
        if length > MAX_BODY_BYTES:
            return None
        return self.rfile.read(length) if length else b""

    def _read_chunked(self) -> bytes | None:
        chunks: list[bytes] = []
        total = 0
        while True:
            try:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            except ValueError:
                return None
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                return None
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def _write(self, response: Response) -> None:
        reason = HTTPStatus(response.status).phrase if response.status in _STATUSES else ""
        if response.trickle:
            self.close_connection = True  # a client that gives up leaves it half read
        lines = [
            f"HTTP/1.1 {response.status} {reason}",
            f"Date: {formatdate(usegmt=True)}",
            f"Content-Length: {len(response.body)}",
        ]
        lines += [f"{name}: {value}" for name, value in response.headers]
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        try:
            if response.trickle:
                self._trickle(head + response.body, response.trickle)
            elif len(response.body) < 65536:
                self.wfile.write(head + response.body)
            else:  # two sends beat copying a multi-megabyte page
                self.wfile.write(head)
                self.wfile.write(response.body)
        except OSError:
            self.close_connection = True  # the client gave up (timeouts, hang faults)

    def _trickle(self, data: bytes, seconds: float) -> None:
        """A byte, a pause, a byte: an answer that never times out a read, and never ends."""
        for i in range(len(data)):
            self.wfile.write(data[i : i + 1])
            if self.server.stopping.wait(seconds):
                return


_STATUSES = {s.value for s in HTTPStatus}


class HttpServer:
    """A threaded loopback server that can stop, restart on the same port, and cut sleeps short."""

    def __init__(self, app: App, host: str, port: int) -> None:
        self._app = app
        self._host = host
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.stopping = threading.Event()

    @property
    def port(self) -> int:
        """The bound port; only known once started."""
        if self._server is None:
            raise RuntimeError("server not started: call start() first")
        return self._port

    @property
    def origin(self) -> str:
        """http://host:port of the running server."""
        return f"http://{self._host}:{self.port}"

    def start(self) -> None:
        """Bind (reusing the earlier port after a restart) and serve on a daemon thread."""
        if self._server is not None:
            return
        self.stopping.clear()
        self._server = _Server((self._host, self._port), self._app)
        self._server.stopping = self.stopping
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},  # also how long stop() waits
            name=f"sim-http-{self._port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, cut every open keep-alive connection and wake sleeping handlers."""
        server, self._server = self._server, None
        if server is None:
            return
        self.stopping.set()
        server.shutdown()
        server.server_close()
        with server.conns_lock:
            conns = list(server.conns)
        for conn in conns:
            with contextlib.suppress(OSError):  # already closed by its handler
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)


class Lifecycle:
    """start/stop and the context manager shared by both fakes."""

    _server: HttpServer

    def start(self) -> Self:
        """Start serving; returns self."""
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving and cut open connections."""
        self._server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
