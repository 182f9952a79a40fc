"""The receiver on a real uvicorn server on loopback, with a recording commit."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from listrak_source.audiences.receiver import Commit, Tally, make_app
from listrak_source.audiences.server import ReceiverServer
from listrak_source.engage.ingest import Ingest
from listrak_source.engage.mapping import AudienceMapping, Mappings
from listrak_source.engage.settings import ReceiverSettings

SECRET = "receiver-secret-1"
ROTATED = "receiver-secret-2"
SHARED = "segment shared secret"
AUDIENCE = AudienceMapping("first_time_shopper", list_id=1, field_id=10)


@dataclass
class Receiver:
    """A served receiver, the ingests it committed, its counters and a client for it."""

    server: ReceiverServer
    client: httpx.Client
    commits: list[Ingest] = field(default_factory=list)
    tally: Tally = field(default_factory=Tally)

    def post(
        self, body: Any, secret: str | None = SECRET, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        """POST /events with the bearer secret; bytes and generators are sent as they are."""
        sent = dict(headers or {})
        if secret is not None:
            sent["Authorization"] = f"Bearer {secret}"
        if isinstance(body, bytes) or hasattr(body, "__next__"):
            return self.client.post("/events", content=body, headers=sent)
        return self.client.post("/events", json=body, headers=sent)


StartReceiver = Callable[..., Receiver]


@pytest.fixture
def start_receiver() -> Iterator[StartReceiver]:
    """Start receivers with settings overrides and an optional commit; all stop at teardown."""
    stack = ExitStack()

    def start(commit: Commit | None = None, **overrides: Any) -> Receiver:
        values: dict[str, Any] = {"port": 0, "secrets": [SECRET, ROTATED], **overrides}
        settings = ReceiverSettings.model_validate(values)
        tally = Tally()
        commits: list[Ingest] = []
        app = make_app(settings, Mappings([AUDIENCE]), commit or commits.append, counters=tally)
        server = stack.enter_context(ReceiverServer(app, settings))
        client = stack.enter_context(httpx.Client(base_url=server.url, timeout=30))
        return Receiver(server, client, commits, tally)

    yield start
    stack.close()


def raw_exchange(server: ReceiverServer, data: bytes) -> tuple[int, bytes]:
    """Send bytes as they are and read one response (status, body), whatever the server reads."""
    with socket.create_connection((server.host, server.port), timeout=20) as sock:
        sock.sendall(data)
        received = b""
        while b"\r\n\r\n" not in received:
            received += _recv(sock)
        head, _, body = received.partition(b"\r\n\r\n")
        length = _content_length(head)
        while len(body) < length:
            body += _recv(sock)
    return int(head.split(b" ", 2)[1]), body


def _recv(sock: socket.socket) -> bytes:
    chunk = sock.recv(65536)
    if not chunk:
        raise ConnectionError("the server closed the connection before answering")
    return chunk


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0
