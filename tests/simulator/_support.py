"""Helpers for the simulator's tests: a token, an authorized client, a full scan."""

from __future__ import annotations

import ssl
from typing import Any

import httpx

from listrak_source.simulator import ListrakSimulator

LIST = 1001
TEXT_FIELD = 678
BOX = 900
_TLS = ssl.create_default_context()  # building one per httpx client costs ~50 ms


def client(**kwargs: Any) -> httpx.Client:
    """An httpx client with a short timeout and the shared TLS context."""
    return httpx.Client(verify=_TLS, timeout=5, **kwargs)


def api_client(sim: ListrakSimulator) -> httpx.Client:
    """A client on the simulator's base URL carrying a fresh bearer token."""
    form = {"grant_type": "client_credentials", "client_id": sim.client_id}
    form["client_secret"] = sim.client_secret
    with client() as c:
        token = c.post(sim.auth_url, data=form).json()["access_token"]
    return client(base_url=sim.base_url, headers={"Authorization": f"Bearer {token}"})


def page(api: httpx.Client, cursor: str = "Start", **params: Any) -> dict[str, Any]:
    """One Contact page of the main list."""
    response = api.get(f"/List/{LIST}/Contact", params={**params, "cursor": cursor})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def scan(api: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    """Every contact of a scan of the main list, paging to the end."""
    found: list[dict[str, Any]] = []
    cursor: str | None = "Start"
    while cursor is not None:
        body = page(api, cursor, **params)
        found += body["data"]
        cursor = body["nextPageCursor"]
    return found


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    """Listrak's error envelope with this status and code."""
    assert response.status_code == status, response.text
    body = response.json()
    assert (body["status"], body["error"]) == (status, code)
    assert body["message"]
