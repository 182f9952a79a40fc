"""`run` with the receiver, driven as Segment's Webhooks destination drives it, killed -9 mid-burst.

Every request answered 200 must be in the database; the sender retries the rest into the
restarted worker; once the pushes are done, Listrak's boxes equal each email's last membership.
"""

from __future__ import annotations

import random
import signal
import socket
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, func, select

from listrak_source.simulator import ListrakSimulator, SegmentSink
from listrak_source.simulator.webhooks import Outcome, WebhookSender, audience_track
from listrak_source.state.schema import audience_inbox, audience_values

from ..audiences.world import LAPSED, LIST, T0, VIP, prepare_list
from .harness import worker, write_config

SECRET = "crash-test-bearer"
KEYS = {"vip": VIP, "lapsed": LAPSED}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Any, what: str, timeout: float = 60.0) -> Any:
    """Poll a condition; the deadline only bounds a hang and asserts no speed."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
    return value


def burst(emails: list[str], rng: random.Random) -> list[dict[str, Any]]:
    """Several entries and exits per email and audience, each with its own time."""
    events = []
    for _ in range(2400):
        email = rng.choice(emails)
        key = rng.choice(list(KEYS))
        when = T0 + timedelta(milliseconds=rng.randrange(10**7))
        events.append(audience_track(key, email, rng.random() < 0.5, timestamp=when))
    return events


def last_memberships(events: list[dict[str, Any]]) -> dict[tuple[int, str], bool]:
    newest: dict[tuple[int, str], tuple[str, str, bool]] = {}
    for e in events:
        key = e["properties"]["audience_key"]
        target = (KEYS[key], e["context"]["traits"]["email"].lower())
        rank = (e["timestamp"], e["messageId"])
        if target not in newest or rank > newest[target][:2]:
            newest[target] = (*rank, e["properties"][key])
    return {target: value[2] for target, value in newest.items()}


def count(db_url: str, table: Any, *where: Any) -> int:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()
            )
    finally:
        engine.dispose()


def test_kill_9_mid_burst_loses_no_acknowledged_event(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    rng = random.Random(424242)
    subscribers = prepare_list(sim, subscribers=300)
    strangers = [f"stranger{n}@example.com" for n in range(20)]  # never subscribe
    events = burst(subscribers + strangers, rng)
    port = free_port()
    extra = f"""
[schedule]
interval = "1s"
[push]
interval = "1s"
apply_grace = "1s"
[receiver]
port = {port}
secrets = ["{SECRET}"]
[[audiences]]
key = "vip"
list_id = {LIST}
field_id = {VIP}
[[audiences]]
key = "lapsed"
list_id = {LIST}
field_id = {LAPSED}
"""
    config = write_config(tmp_path / "config.toml", sim, sink, db_url, [{"id": LIST}], extra=extra)
    log = tmp_path / "worker.log"
    health = f"http://127.0.0.1:{port}/healthz"

    def receiver_up() -> bool:
        try:
            return httpx.get(health, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    proc = worker(config, "run", log=log)
    wait_for(receiver_up, "the receiver")
    outcomes: list[Outcome] = []
    sender = WebhookSender(
        f"http://127.0.0.1:{port}/events",
        headers={"Authorization": f"Bearer {SECRET}"},
        batch_size=40,
        shuffle=True,
        duplicate_share=0.25,
        reform_on_retry=True,
        max_attempts=1000,
        rng=rng,
        # Segment backs off between tries; here a try waits only until the receiver answers.
        sleep=lambda _seconds: wait_for(receiver_up, "the restarted receiver", 120),
    )
    thread = threading.Thread(target=lambda: outcomes.extend(sender.send(events)))
    thread.start()
    wait_for(lambda: count(db_url, audience_inbox) > len(events) // 3, "a third of the burst")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc = worker(config, "run", log=log)
    try:
        thread.join(timeout=300)
        assert not thread.is_alive()
        sender.close()
        assert all(o.delivered for o in outcomes), "the sender got every batch in at last"
        assert len(outcomes) > len(events)
        assert any(o.attempts > 1 for o in outcomes), "the kill landed mid-burst"
        # Nothing answered 200 was lost: every event is in the inbox exactly once.
        assert count(db_url, audience_inbox) == len({e["messageId"] for e in events})
        wait_for(lambda: _pending_only_strangers(db_url, strangers), "the pushes", 120)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    sim.apply_imports()
    want = last_memberships(events)
    with sim.lock:
        contacts = sim.get(LIST).contacts
        for (field, key), member in want.items():
            if key in contacts:
                checked = any(f[0] == field for f in contacts[key].fields)
                assert checked == member, (field, key)
            else:
                assert key in {s.lower() for s in strangers}


def _pending_only_strangers(db_url: str, strangers: list[str]) -> bool:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            keys = conn.execute(
                select(audience_values.c.email_key).where(audience_values.c.pending.is_(True))
            ).scalars()
            return set(keys) <= set(strangers)
    finally:
        engine.dispose()
