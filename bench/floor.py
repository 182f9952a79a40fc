"""`python -m bench.floor`: the wire work of a first sync and nothing else, as a yardstick.

It fetches a token, pages every subscribed contact of one list and, unless --scan-only,
posts one identify per contact to Segment in gzip batches from a second thread, so
paging and posting overlap. It keeps no state and retries nothing: any failure ends the
run with one line on stderr. The benchmark runs it beside the worker on the same
machine, so the worker's times read as multiples of it, whatever the machine's speed.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import queue
import sys
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

PAGE_SIZE = 5000  # Listrak's largest page
MAX_BATCH_EVENTS = 2500  # Segment's limits for one /v1/batch request
MAX_BATCH_BYTES = 500_000
# Room for {"batch":[...],"sentAt":"..."} around the messages.
_ENVELOPE_BYTES = 64
# The level segment-analytics-python's gzip uses, so the bytes on the wire are the worker's.
GZIP_LEVEL = 9
# Pages waiting between the reader and the poster: enough to overlap, few enough to stay flat.
QUEUE_PAGES = 2
TIMEOUT_S = 60.0
Message = dict[str, Any]


class FloorError(Exception):
    """One readable line that ends the run; it names the step, never a secret."""


@dataclass(frozen=True, slots=True)
class Options:
    """Where the list is and where its identifies go."""

    base_url: str
    auth_url: str
    client_id: str
    client_secret: str
    list_id: int
    field_id: int
    sink_url: str
    write_key: str
    scan_only: bool


def _check(response: httpx.Response, step: str) -> httpx.Response:
    if response.status_code != 200:
        raise FloorError(f"{step} answered HTTP {response.status_code}")
    return response


def fetch_token(client: httpx.Client, opts: Options) -> str:
    """A client-credentials token: one request, as the worker makes at its start."""
    form = {
        "grant_type": "client_credentials",
        "client_id": opts.client_id,
        "client_secret": opts.client_secret,
    }
    response = _check(client.post(opts.auth_url, data=form), "the token request")
    token: str = orjson.loads(response.content)["access_token"]
    return token


def pages(client: httpx.Client, opts: Options, token: str) -> Iterator[list[Message]]:
    """Every page of the list's subscribed contacts, following nextPageCursor to its end."""
    url = f"{opts.base_url}/List/{opts.list_id}/Contact"
    headers = {"Authorization": f"Bearer {token}"}
    params = {
        "subscriptionState": "Subscribed",
        "count": str(PAGE_SIZE),
        "segmentationFieldIds": str(opts.field_id),
        "cursor": "Start",
    }
    while True:
        response = _check(client.get(url, params=params, headers=headers), "a Contact page")
        body = orjson.loads(response.content)
        yield body["data"]
        if body.get("nextPageCursor") is None:
            return
        params["cursor"] = body["nextPageCursor"]


def user_id(contact: Message, field_id: int) -> str | None:
    """The profile field's value, which the list's config names as the userId."""
    for item in contact.get("segmentationFieldValues") or ():
        if item.get("segmentationFieldId") == field_id and item.get("value"):
            return str(item["value"])
    return None


def identifies(data: list[Message], list_id: int, field_id: int) -> list[Message]:
    """One page's contacts as the identifies a first sync sends, stamped with the page's time."""
    trait = f"Listrak_list_{list_id}"
    timestamp = datetime.now(UTC).isoformat(timespec="milliseconds")
    messages = []
    for contact in data:
        email = contact["emailAddress"]
        message = {
            "type": "identify",
            "messageId": str(uuid.uuid4()),
            "anonymousId": email,
            "traits": {"email": email, trait: True},
            "timestamp": timestamp,
        }
        found = user_id(contact, field_id)
        if found is not None:
            message["userId"] = found
        messages.append(message)
    return messages


def batches(messages: list[Message], carry: list[bytes]) -> Iterator[list[bytes]]:
    """Encoded messages in batches within Segment's limits; an unfilled tail stays in carry."""
    size = sum(len(part) + 1 for part in carry)
    for message in messages:
        part = orjson.dumps(message)
        full = len(carry) == MAX_BATCH_EVENTS
        if carry and (full or size + len(part) + 1 + _ENVELOPE_BYTES >= MAX_BATCH_BYTES):
            yield carry[:]
            carry.clear()
            size = 0
        carry.append(part)
        size += len(part) + 1


def batch_body(parts: Sequence[bytes]) -> bytes:
    """The /v1/batch document around already encoded messages, gzipped."""
    sent_at = datetime.now(UTC).isoformat(timespec="milliseconds").encode()
    body = b'{"batch":[' + b",".join(parts) + b'],"sentAt":"' + sent_at + b'"}'
    return gzip.compress(body, compresslevel=GZIP_LEVEL)


class Poster(threading.Thread):
    """Takes pages of identifies from a bounded queue and posts them; keeps its first failure."""

    def __init__(self, opts: Options) -> None:
        super().__init__(name="poster", daemon=True)
        self.inbox: queue.Queue[list[Message] | None] = queue.Queue(QUEUE_PAGES)
        self.sent = 0
        self.batches = 0
        self.error: FloorError | None = None
        self._url = opts.sink_url.rstrip("/") + "/v1/batch"
        key = base64.b64encode(f"{opts.write_key}:".encode()).decode()
        self._headers = {
            "Authorization": f"Basic {key}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        }

    def run(self) -> None:
        """Post until the reader's final None; after a failure, only drain the queue."""
        carry: list[bytes] = []
        with httpx.Client(timeout=TIMEOUT_S) as client:
            while (messages := self.inbox.get()) is not None:
                self._attempt(client, batches(messages, carry))
            self._attempt(client, [carry] if carry else [])

    def _attempt(self, client: httpx.Client, chunks: Iterable[list[bytes]]) -> None:
        if self.error is not None:
            return
        try:
            for parts in chunks:
                self._post(client, parts)
        except FloorError as exc:
            self.error = exc
        except httpx.HTTPError as exc:
            self.error = FloorError(f"a batch post failed: {type(exc).__name__}")

    def _post(self, client: httpx.Client, parts: Sequence[bytes]) -> None:
        response = client.post(self._url, content=batch_body(parts), headers=self._headers)
        _check(response, "a batch post")
        self.sent += len(parts)
        self.batches += 1


def _scan(client: httpx.Client, opts: Options, poster: Poster | None) -> int:
    scanned = 0
    for data in pages(client, opts, fetch_token(client, opts)):
        scanned += len(data)
        if poster is not None:
            if poster.error is not None:
                raise poster.error
            poster.inbox.put(identifies(data, opts.list_id, opts.field_id))
    return scanned


def _scan_all(opts: Options, poster: Poster | None) -> int:
    """Every page, a Listrak failure turned into one line."""
    try:
        with httpx.Client(timeout=TIMEOUT_S) as client:
            return _scan(client, opts, poster)
    except httpx.HTTPError as exc:
        raise FloorError(f"a Listrak request failed: {type(exc).__name__}") from None
    except (KeyError, TypeError, orjson.JSONDecodeError) as exc:
        raise FloorError(f"Listrak answered unexpected JSON: {type(exc).__name__}") from None


def run(opts: Options) -> str:
    """Scan and (unless scan-only) send; the one-line summary of what was done."""
    poster = None if opts.scan_only else Poster(opts)
    if poster is not None:
        poster.start()
    try:
        scanned = _scan_all(opts, poster)
    finally:
        if poster is not None:
            poster.inbox.put(None)
            poster.join()
    if poster is None:
        return f"floor: list {opts.list_id} - scanned {scanned}, scan only"
    if poster.error is not None:
        raise poster.error
    sent = f"sent {poster.sent} in {poster.batches} batches"
    return f"floor: list {opts.list_id} - scanned {scanned}, {sent}"


def build_parser() -> argparse.ArgumentParser:
    """Every endpoint and credential is an argument: the floor reads no config file."""
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__)
    parser.add_argument("--base-url", required=True, help="Listrak Email API base URL")
    parser.add_argument("--auth-url", required=True, help="Listrak OAuth2 token URL")
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--list-id", type=int, required=True)
    parser.add_argument("--field-id", type=int, required=True, help="the userId profile field")
    parser.add_argument("--sink", required=True, help="Segment host, e.g. https://api.segment.io")
    parser.add_argument("--write-key", required=True)
    parser.add_argument("--scan-only", action="store_true", help="page the list, send nothing")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run once; print the summary, or one line on stderr and exit 1."""
    args = build_parser().parse_args(argv)
    opts = Options(
        base_url=args.base_url.rstrip("/"),
        auth_url=args.auth_url,
        client_id=args.client_id,
        client_secret=args.client_secret,
        list_id=args.list_id,
        field_id=args.field_id,
        sink_url=args.sink,
        write_key=args.write_key,
        scan_only=args.scan_only,
    )
    try:
        print(run(opts))
    except FloorError as exc:
        print(f"floor failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
