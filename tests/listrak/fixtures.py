"""Shared helpers for the Listrak client tests: fake time and a client factory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from listrak_source.listrak import ListrakClient

CLIENT_ID = "sim-client"
CLIENT_SECRET = "sim-secret"
API = "https://api.listrak.test/email/v1"
AUTH = "https://auth.listrak.test/OAuth2/Token"


class FakeTime:
    """A monotonic clock that only moves when the code under test sleeps (or a test says so)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_client(
    *,
    base_url: str = API,
    auth_url: str = AUTH,
    time: FakeTime | None = None,
    transport: httpx.BaseTransport | None = None,
    client_secret: str = CLIENT_SECRET,
    random: Callable[[], float] = lambda: 1.0,
    **kwargs: Any,
) -> ListrakClient:
    """A client that never really sleeps; unpaced unless a test asks for a pace."""
    fake = time or FakeTime()
    kwargs.setdefault("requests_per_second", float("inf"))
    kwargs.setdefault("timeout", 5.0)
    return ListrakClient(
        client_id=CLIENT_ID,
        client_secret=client_secret,
        base_url=base_url,
        auth_url=auth_url,
        transport=transport,
        sleep=fake.sleep,
        clock=fake.clock,
        random=random,
        **kwargs,
    )


def token_response(token: str = "tok-1", expires_in: int = 3599) -> httpx.Response:
    return httpx.Response(
        200, json={"access_token": token, "token_type": "bearer", "expires_in": expires_in}
    )


def envelope(status: int, error: str, message: str = "") -> httpx.Response:
    return httpx.Response(status, json={"status": status, "error": error, "message": message})
