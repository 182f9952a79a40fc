"""The receiver on a real uvicorn server, on a background thread, with a prompt draining stop.

Signals stay with the caller: uvicorn installs no handlers off the main thread, and the
caller's own SIGTERM handling calls stop(). uvicorn's logging configuration is left alone
(its records go to the caller's handlers); its access log, off by default, carries method,
path and status only, and nothing here logs a body or a header.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from types import TracebackType
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from ..engage.settings import ReceiverSettings
from ..errors import EXIT_CONFIG, ListrakSourceError
from ..logs import Throttle, ThrottleFilter, held_back
from .connections import ConnectionGuard, GuardedH11Protocol

log = logging.getLogger(__name__)


class ReceiverError(ListrakSourceError):
    """The receiver could not listen where it was configured to."""

    exit_code = EXIT_CONFIG


class _Server(uvicorn.Server):
    """uvicorn's server, telling the starting thread when it listens and when it stops."""

    def __init__(self, config: uvicorn.Config, throttle: Throttle) -> None:
        super().__init__(config)
        self.ready = threading.Event()
        self.stopping = threading.Event()
        self._throttle = throttle

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Listen, then release whoever waits in ReceiverServer.start()."""
        asyncio.get_running_loop().set_exception_handler(self._loop_error)
        await super().startup(sockets)
        self.ready.set()

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        # Out of descriptors, asyncio reports every failed accept with a traceback: once a
        # minute is enough to say so, and leaves the disk for the lines that matter.
        count = self._throttle.admit(f"loop:{context.get('message')}")
        if count is not None:
            loop.default_exception_handler(
                {**context, "message": f"{context.get('message')}{held_back(count)}"}
            )

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Stop accepting, say so, then let uvicorn wait for the requests in flight."""
        for server in self.servers:
            server.close()
        self.stopping.set()
        await super().shutdown(sockets)


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket, bound here so a bad address fails in the caller's thread."""
    sock: socket.socket | None = None
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = info[0]
        # The protocol must say TCP: asyncio turns Nagle's algorithm off only on sockets that
        # do, and with it on every keep-alive answer stalls ~40 ms on delayed ACKs.
        sock = socket.socket(family, kind, proto or socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen()
        return sock
    except OSError as exc:
        if sock is not None:
            sock.close()
        raise ReceiverError(f"receiver cannot listen on {host}:{port}: {exc.strerror}") from None


class ReceiverServer:
    """One served app: start() returns once it listens, stop() once in-flight requests end."""

    def __init__(
        self,
        app: ASGIApp,
        settings: ReceiverSettings,
        *,
        graceful_timeout: float = 15.0,
        startup_timeout: float = 10.0,
    ) -> None:
        self.host = settings.host
        self.port = settings.port
        self._startup_timeout = startup_timeout
        throttle = Throttle()
        self.guard = ConnectionGuard(settings.header_timeout, settings.max_connections, throttle)
        self._server = _Server(_config(app, settings, graceful_timeout, self.guard), throttle)
        # uvicorn logs each request refused over the cap and each malformed one.
        self._quiet = ThrottleFilter(throttle)
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    @property
    def url(self) -> str:
        """The base URL the server answers on."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def stopping(self) -> threading.Event:
        """Set once shutdown has begun and no new connection is accepted."""
        return self._server.stopping

    def start(self) -> ReceiverServer:
        """Bind, serve on a daemon thread, and return once requests are accepted."""
        if self._thread is not None:
            return self  # already serving: serve() hands out a started server
        if self._server.should_exit:
            raise RuntimeError("a stopped receiver server cannot be started again")
        sock = _bind(self.host, self.port)
        self.port = int(sock.getsockname()[1])
        logging.getLogger("uvicorn.error").addFilter(self._quiet)
        self._thread = threading.Thread(
            target=self._run, args=(sock,), name="audience-receiver", daemon=True
        )
        self._thread.start()
        self._server.ready.wait(self._startup_timeout)
        if not self._server.started:
            self.stop()
            why = f" ({type(self._failure).__name__})" if self._failure is not None else ""
            raise ReceiverError(f"receiver did not start on {self.host}:{self.port}{why}")
        log.info("audience receiver listening on %s", self.url)
        return self

    def _run(self, sock: socket.socket) -> None:
        try:
            self._server.run(sockets=[sock])
        except BaseException as exc:  # uvicorn reports a failed start with SystemExit
            self._failure = exc
        finally:
            sock.close()
            self._server.ready.set()

    def stop(self) -> None:
        """Stop accepting, let requests in flight finish (a commit under way is waited for)."""
        if self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join()
        self._thread = None
        logging.getLogger("uvicorn.error").removeFilter(self._quiet)

    def __enter__(self) -> ReceiverServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _config(
    app: ASGIApp, settings: ReceiverSettings, graceful_timeout: float, guard: ConnectionGuard
) -> uvicorn.Config:
    if settings.access_log:
        # A server built earlier with the access log off detached this logger from the root.
        logging.getLogger("uvicorn.access").propagate = True
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        # Plain asyncio and h11: the same behaviour whatever optional speedups are installed,
        # with the bounds on connections that uvicorn lacks.
        loop="asyncio",
        http=GuardedH11Protocol.bound_by(guard),
        # While max_connections are open, a request is answered 503 (Segment retries it).
        limit_concurrency=settings.max_connections,
        # asyncio accepts up to `backlog` connections in one go before any is counted: a
        # burst of the default 2,048 would take that many descriptors at once.
        backlog=settings.max_connections,
        lifespan="off",
        log_config=None,
        access_log=settings.access_log,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=max(1, round(graceful_timeout)),
    )


def serve(
    app: ASGIApp, settings: ReceiverSettings, *, graceful_timeout: float = 15.0
) -> ReceiverServer:
    """Start serving the app where the settings say; call stop() (or use `with`) to end."""
    return ReceiverServer(app, settings, graceful_timeout=graceful_timeout).start()
