"""The demo's other direction: Engage audience events, through the receiver, into a check box.

Events are posted the way Segment's Webhooks destination posts them (batched, shuffled, some
twice); the push sends each subscriber's newest membership to the simulator's bulk route;
a non-subscriber's value waits until they subscribe.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from ..audiences.push import push_list
from ..config import Settings
from ..service.metrics import Metrics
from ..simulator import ListrakSimulator
from ..simulator.webhooks import WebhookSender, audience_track
from ..state import Database
from ..subscribers.sync import sync_list
from .report import push_line, result_line
from .wiring import build_receiver, open_database, push_context, run_context

AUDIENCE = "vip_shoppers"
AUDIENCE_FIELD = 901
SECRET = "demo-receiver-secret"
_T0 = datetime(2024, 5, 6, 9, 30, tzinfo=UTC)


def audience_settings(list_id: int) -> dict[str, Any]:
    """The receiver on any free loopback port, and one audience setting a check box."""
    return {
        "receiver": {"port": 0, "secrets": [SECRET]},
        "audiences": [{"key": AUDIENCE, "list_id": list_id, "field_id": AUDIENCE_FIELD}],
    }


def _story(emails: list[str], rng: random.Random) -> tuple[list[dict[str, Any]], dict[str, bool]]:
    """One to three entries and exits per email, in time order; and each email's last one."""
    events, last = [], {}
    for email in emails:
        member = rng.random() < 0.5
        for step in range(rng.randint(1, 3)):
            member = not member if step else member
            when = _T0 + timedelta(minutes=rng.randrange(600) + 1000 * step)
            events.append(audience_track(AUDIENCE, email, member, timestamp=when))
        last[email.lower()] = member
    return events, last


def _post(url: str, events: list[dict[str, Any]], out: TextIO, rng: random.Random) -> bool:
    sender = WebhookSender(
        f"{url}/events",
        headers={"Authorization": f"Bearer {SECRET}"},
        batch_size=5,
        shuffle=True,
        duplicate_share=0.3,
        rng=rng,
    )
    with sender:
        outcomes = sender.send(events)
    ok = all(o.delivered for o in outcomes)
    print(
        f"  posted {len(events)} membership events as {len(outcomes)} copies (shuffled, some "
        f"twice) to {url}/events: {'all answered 200' if ok else 'SOME REFUSED'}",
        file=out,
    )
    return ok


def _boxes(sim: ListrakSimulator, list_id: int) -> dict[str, bool]:
    """Subscribers' check boxes as Listrak holds them once its imports applied."""
    sim.apply_imports()
    with sim.lock:
        return {
            key: any(f[0] == AUDIENCE_FIELD for f in c.fields)
            for key, c in sim.get(list_id).contacts.items()
            if c.subscribed
        }


def _compare(sim: ListrakSimulator, list_id: int, last: dict[str, bool], out: TextIO) -> bool:
    boxes = _boxes(sim, list_id)
    ok = True
    for email, member in sorted(last.items()):
        want = "entered" if member else "exited"
        if email not in boxes:
            print(f"    {email:<28} last: {want:<7}  held: not a subscriber", file=out)
            continue
        match = boxes[email] == member
        ok = ok and match
        shown = "checked" if boxes[email] else "unchecked"
        mark = "OK" if match else "MISMATCH"
        print(f"    {email:<28} last: {want:<7}  Listrak: {shown:<9} {mark}", file=out)
    return ok


def _push(settings: Settings, list_id: int, out: TextIO) -> None:
    engine = open_database(settings)
    try:
        with push_context(settings, engine) as ctx:
            print("  " + push_line(push_list(ctx, list_id)), file=out)
    finally:
        engine.dispose()


def run_audience_demo(
    sim: ListrakSimulator, settings: Settings, list_id: int, out: TextIO, rng: random.Random
) -> bool:
    """Receive, push, compare; then a held value goes out once its person subscribes."""
    print("audiences: Engage events -> receiver -> Listrak check-box field:", file=out)
    members = sorted(sim.truth(list_id))
    emails = [*rng.sample(members, k=min(8, len(members))), "prospect@example.com"]
    events, last = _story(emails, rng)
    engine = open_database(settings)
    with build_receiver(settings, Database(engine), Metrics()) as server:
        posted = _post(server.url, events, out, rng)
    engine.dispose()
    _push(settings, list_id, out)
    ok = _compare(sim, list_id, last, out) and posted
    print("  prospect@example.com subscribes; one sync and one push later:", file=out)
    sim.subscribe(list_id, "prospect@example.com")
    with run_context(settings) as ctx:
        print("  " + result_line(sync_list(ctx, settings.list_by_id(list_id))), file=out)
    _push(settings, list_id, out)
    held = _boxes(sim, list_id).get("prospect@example.com") == last["prospect@example.com"]
    print(f"  its box now matches its last membership: {'yes' if held else 'NO'}", file=out)
    return ok and held
