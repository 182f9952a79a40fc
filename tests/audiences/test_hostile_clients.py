"""Clients that never finish, crowd in or send more than memory holds: real sockets over
loopback against the real server, with its limits lowered so each is reached at once."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import httpx
import orjson
import pytest

from listrak_source.audiences.server import ReceiverServer
from listrak_source.engage.ingest import Ingest

from ._events import track
from .conftest import SECRET, StartReceiver

LIMITS = {"header_timeout": 0.3, "body_timeout": 0.5, "max_connections": 8}
# Long enough that only a server that never closes makes a test wait it out.
PATIENCE = 5.0
HALF_A_HEAD = b"POST /events HTTP/1.1\r\nHost: receiver\r\nAuthorization: Bearer "


def head(length: int, secret: str = SECRET) -> bytes:
    return (
        b"POST /events HTTP/1.1\r\nHost: receiver\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {secret}\r\nContent-Length: {length}\r\n\r\n".encode()
    )


def batch(events: int) -> bytes:
    return orjson.dumps([track(message_id=f"m{n}") for n in range(events)])


@pytest.fixture
def sockets() -> Iterator[Callable[[ReceiverServer], socket.socket]]:
    """Open raw connections to a server; every one is closed at teardown."""
    stack = ExitStack()

    def connect(server: ReceiverServer) -> socket.socket:
        return stack.enter_context(socket.create_connection((server.host, server.port), 10))

    yield connect
    stack.close()


def answer_then_close(sock: socket.socket) -> bytes | None:
    """All the server sends until it closes the connection; None if it keeps it open."""
    sock.settimeout(PATIENCE)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        return None
    return received


def status_of(answer: bytes | None) -> int | None:
    return int(answer.split(b" ", 2)[1]) if answer else None


def test_idle_and_half_sent_connections_are_closed_and_deliveries_still_land(
    start_receiver: StartReceiver, sockets: Callable[[ReceiverServer], socket.socket]
) -> None:
    receiver = start_receiver(**LIMITS)
    idle = [sockets(receiver.server) for _ in range(3)]
    half_sent = [sockets(receiver.server) for _ in range(3)]
    for sock in half_sent:
        sock.sendall(HALF_A_HEAD)
    # Not kept alive: idle past header_timeout while the others are cut off, the client's
    # own connection would be closed too, and reusing it as the server closed it failed
    # the next post one run in five ("Server disconnected without sending a response").
    once = {"Connection": "close"}
    assert receiver.post([track()], headers=once).status_code == 200
    assert [answer_then_close(sock) is not None for sock in idle + half_sent] == [True] * 6
    assert receiver.post([track(message_id="m2")]).status_code == 200


def test_a_head_sent_a_byte_at_a_time_is_cut_off_all_the_same(
    start_receiver: StartReceiver, sockets: Callable[[ReceiverServer], socket.socket]
) -> None:
    # Each byte resets no clock: the head has header_timeout in all, however it trickles.
    receiver = start_receiver(**LIMITS)
    sock = sockets(receiver.server)
    closed = threading.Event()

    def trickle() -> None:
        for byte in HALF_A_HEAD:
            if closed.wait(0.05):
                return
            try:
                sock.send(bytes([byte]))
            except OSError:
                return

    sender = threading.Thread(target=trickle)
    sender.start()
    try:
        assert answer_then_close(sock) is not None
    finally:
        closed.set()
        sender.join()


@pytest.mark.parametrize("secret", [SECRET, "a wrong bearer secret"])
def test_a_body_that_never_finishes_is_a_408_and_the_connection_closes(
    start_receiver: StartReceiver,
    sockets: Callable[[ReceiverServer], socket.socket],
    secret: str,
) -> None:
    # A refused secret is answered at once; the rest of its body must not keep the socket.
    receiver = start_receiver(**LIMITS)
    sock = sockets(receiver.server)
    sock.sendall(head(100_000, secret) + b'[{"type":')
    answer = answer_then_close(sock)
    assert status_of(answer) == (408 if secret == SECRET else 401)
    assert receiver.commits == []


def test_connections_over_the_cap_are_closed_at_once_and_logged_once_a_minute(
    start_receiver: StartReceiver,
    sockets: Callable[[ReceiverServer], socket.socket],
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver = start_receiver(**LIMITS)
    caplog.set_level(logging.INFO)
    crowd = [sockets(receiver.server) for _ in range(40)]
    for sock in crowd[::2]:
        sock.sendall(HALF_A_HEAD)
    assert all(answer_then_close(sock) is not None for sock in crowd)
    assert receiver.post([track()]).status_code == 200
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    over = [line for line in lines if "max_connections" in line]
    slow = [line for line in lines if "header_timeout" in line]
    assert len(over) == 1 and len(slow) == 1, lines
    assert len(lines) == 2, lines


# A receiver alone in a process allowed few descriptors, as a systemd unit is (1,024 there).
_CROWDED = """
import logging, resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (160, 160))
logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
from listrak_source.audiences.receiver import make_app
from listrak_source.audiences.server import ReceiverServer
from listrak_source.engage.mapping import Mappings
from listrak_source.engage.settings import ReceiverSettings
settings = ReceiverSettings(
    port=0, secrets=[sys.argv[1]], max_connections=32, header_timeout=0.5, body_timeout=0.5
)
with ReceiverServer(make_app(settings, Mappings([]), lambda ingest: None), settings) as server:
    print(server.port, flush=True)
    sys.stdin.read()
"""


def test_a_crowd_past_the_descriptors_neither_stops_the_receiver_nor_floods_its_log() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _CROWDED, SECRET],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(child.stdout.readline())  # type: ignore[union-attr]
        with ExitStack() as stack:
            crowd = [stack.enter_context(sock) for sock in _connect_many(port, 300)]
            for sock in crowd[::3]:
                sock.sendall(HALF_A_HEAD)
            assert all(answer_then_close(sock) is not None for sock in crowd)
        response = httpx.post(f"http://127.0.0.1:{port}/events", json=[], headers=BEARER)
        assert response.status_code == 200
    finally:
        _, log = child.communicate(timeout=30)
    assert "Too many open files" not in log
    assert len(log.splitlines()) <= 2, log


BEARER = {"Authorization": f"Bearer {SECRET}"}


def _connect_many(port: int, count: int) -> list[socket.socket]:
    """As many connections as the server's queue takes; the kernel refuses the rest."""
    made = []
    for _ in range(count):
        try:
            made.append(socket.create_connection(("127.0.0.1", port), 0.2))
        except OSError:
            continue
    return made


def test_the_metrics_port_closes_an_idle_connection(
    sockets: Callable[[ReceiverServer], socket.socket],
) -> None:
    from listrak_source.service.metrics import Metrics

    server = Metrics().serve(0, idle_timeout=0.3)
    try:
        sock = socket.create_connection(("127.0.0.1", server.port), 10)
        with sock:
            sock.sendall(b"GET /metrics HTTP/1.1\r\n")
            assert answer_then_close(sock) is not None
        scrape = httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=10)
        assert scrape.status_code == 200
    finally:
        server.close()


class HeldCommit:
    """A commit that waits, so requests stay in flight until the test lets them go."""

    def __init__(self) -> None:
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()
        self.commits: list[Ingest] = []

    def __call__(self, ingest: Ingest) -> None:
        self.entered.release()
        self.release.wait(30)
        self.commits.append(ingest)


def chunked(body: bytes) -> Iterator[bytes]:
    """The body as httpx sends a generator: chunked, with no Content-Length."""
    for start in range(0, len(body), 4096):
        yield body[start : start + 4096]


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_bodies_past_the_bytes_in_flight_are_a_503_to_retry(
    start_receiver: StartReceiver, declared: bool
) -> None:
    body = batch(40)
    held = HeldCommit()
    room = {"max_body_bytes": len(body), "max_bytes_in_flight": 2 * len(body) + 100}
    receiver = start_receiver(held, **room)
    with ThreadPoolExecutor(2) as pool:
        first = [pool.submit(receiver.post, body) for _ in range(2)]
        assert all(held.entered.acquire(timeout=20) for _ in first)
        third = receiver.post(body if declared else chunked(body))
        assert third.status_code == 503
        assert third.headers["retry-after"].isdigit()
        assert third.json() == {"error": "busy, retry later"}
        held.release.set()
        assert [future.result().status_code for future in first] == [200, 200]
    assert receiver.post(body if declared else chunked(body)).status_code == 200
    assert len(held.commits) == 3


def test_the_bytes_in_flight_must_take_the_largest_body() -> None:
    from pydantic import ValidationError

    from listrak_source.engage.settings import ReceiverSettings

    with pytest.raises(ValidationError, match="max_bytes_in_flight"):
        ReceiverSettings(secrets=[SECRET], max_body_bytes=4096, max_bytes_in_flight=2048)
