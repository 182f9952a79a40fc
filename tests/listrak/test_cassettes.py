"""The client's exact requests, replayed from recorded exchanges with vcrpy.

The cassettes in tests/listrak/cassettes/ were recorded against the Listrak simulator. They
match on method, path and query only (the simulator's port changes every run), and they hold
no secrets: the Authorization header and the client_id/client_secret form fields are dropped
and every access_token is replaced with "REDACTED" before anything is written.

To re-record: delete the cassette files and run these tests (outside CI). A missing cassette
starts the simulator and records in record_mode "once"; an existing one replays, and in CI
(the CI environment variable is set) nothing is ever recorded: record_mode is "none".
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import vcr
import yaml  # type: ignore[import-untyped, unused-ignore]

from listrak_source.errors import UnknownListError
from listrak_source.listrak import ListrakClient
from listrak_source.simulator import ListrakSimulator

from .fixtures import CLIENT_SECRET, make_client

CASSETTES = Path(__file__).parent / "cassettes"
LIST_ID, FIELD = 1001, 678
# Replays never reach the network: these hosts cannot resolve, and record_mode forbids it.
REPLAY_BASE = "https://api.listrak.invalid/email/v1"
REPLAY_AUTH = "https://auth.listrak.invalid/OAuth2/Token"

# Tokens seen while recording in this session, so the secrets check can look for them too.
_recorded_tokens: set[str] = set()


def _redact_token(response: dict[str, Any]) -> dict[str, Any]:
    body = response["body"]["string"]
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return response
    if isinstance(payload, dict) and "access_token" in payload:
        # vcrpy also runs this hook on cassettes it loads, which already say REDACTED.
        _recorded_tokens.add(str(payload["access_token"]))
        _recorded_tokens.discard("REDACTED")
        payload["access_token"] = "REDACTED"
        redacted = json.dumps(payload).encode()
        response["body"]["string"] = redacted
        headers = response["headers"]
        for name in [n for n in headers if n.lower() == "content-length"]:
            headers[name] = [str(len(redacted))]
    return response


RECORDER = vcr.VCR(
    cassette_library_dir=str(CASSETTES),
    record_mode="none" if os.environ.get("CI") else "once",
    match_on=["method", "path", "query"],
    # The token request's length would hint at the secret's length; nothing needs it.
    filter_headers=["authorization", "content-length"],
    filter_post_data_parameters=["client_id", "client_secret"],
    before_record_response=_redact_token,
    decode_compressed_response=True,
)


def _simulator() -> ListrakSimulator:
    sim = ListrakSimulator(client_id="sim-client", client_secret=CLIENT_SECRET).start()
    sim.add_list(LIST_ID, "Main", field_ids=[FIELD])
    sim.seed(LIST_ID, 8, field_id=FIELD, field_ratio=1.0, seed=7)
    return sim


@pytest.fixture
def client(request: pytest.FixtureRequest) -> Iterator[ListrakClient]:
    """A client inside the test's cassette: live against the simulator only when recording."""
    name = f"{request.node.name}.yaml"
    sim = None if (CASSETTES / name).exists() else _simulator()
    base, auth = (sim.base_url, sim.auth_url) if sim else (REPLAY_BASE, REPLAY_AUTH)
    try:
        with RECORDER.use_cassette(name), make_client(base_url=base, auth_url=auth) as c:
            yield c
    finally:
        if sim is not None:
            sim.stop()


def test_token_and_two_pages_with_fields(client: ListrakClient) -> None:
    pages = list(client.iter_pages(LIST_ID, field_ids=[FIELD], page_size=5))
    assert [len(p.contacts) for p in pages] == [5, 3]
    assert [p.rejects for p in pages] == [[], []]
    assert pages[0].next_cursor is not None
    assert pages[1].next_cursor is None
    assert all(c.fields[FIELD].startswith("cust-") for p in pages for c in p.contacts)
    assert client.stats.token_fetches == 1


def test_get_list(client: ListrakClient) -> None:
    data = client.get_list(LIST_ID)
    assert (data["listId"], data["listName"]) == (LIST_ID, "Main")


def test_get_profile_fields(client: ListrakClient) -> None:
    assert client.get_profile_fields(LIST_ID) == {FIELD: f"Field {FIELD}"}


def test_unknown_list_404(client: ListrakClient) -> None:
    with pytest.raises(UnknownListError, match="list 4040 does not exist"):
        client.get_list(4040)


def _cassette_files() -> list[Path]:
    return sorted(CASSETTES.glob("*.yaml"))


def test_cassettes_hold_no_secrets() -> None:
    files = _cassette_files()
    assert len(files) >= 4, "record the cassettes first: run this module outside CI"
    for path in files:
        text = path.read_text()
        assert CLIENT_SECRET not in text, path.name
        assert "client_secret" not in text, path.name
        assert "Bearer" not in text, path.name
        for token in _recorded_tokens:
            assert token not in text, path.name
        for interaction in yaml.safe_load(text)["interactions"]:
            headers = {name.lower() for name in interaction["request"]["headers"]}
            assert "authorization" not in headers, path.name
            body = interaction["response"]["body"]["string"]
            if "access_token" in body:
                assert json.loads(body)["access_token"] == "REDACTED", path.name
