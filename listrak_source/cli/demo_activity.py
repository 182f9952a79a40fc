"""The demo's activity part: a broadcast, opens and clicks, then a late click and a conversion
on a later run, each event once, and a re-run that sends nothing."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any, TextIO

from ..activity.run import activity_pass
from ..config import Settings
from ..simulator import ListrakSimulator, SegmentSink
from .wiring import run_context

MESSAGE, LINK = 7001, 70


def _pass(settings: Settings, list_id: int, sink: SegmentSink, out: TextIO) -> Counter[str]:
    mark = len(sink.messages)
    with run_context(settings) as ctx:
        outcome = activity_pass(ctx, settings.list_by_id(list_id))
    print(f"  list {list_id}: {outcome.describe()}", file=out)
    sent = Counter(m["event"] for m in sink.messages[mark:] if m.get("type") == "track")
    for name, count in sorted(sent.items()):
        print(f"    {name:<22} {count:>4}", file=out)
    return sent


def _check(out: TextIO, what: str, sent: Counter[str], expected: dict[str, int]) -> bool:
    ok = dict(sent) == expected
    print(f"  {what}: {'OK' if ok else f'MISMATCH, expected {expected}'}", file=out)
    return ok


def _unsubscribed(sim: ListrakSimulator, list_id: int) -> int:
    with sim.lock:
        return sum(1 for c in sim.get(list_id).contacts.values() if not c.subscribed)


def run_activity_demo(
    sim: ListrakSimulator,
    sink: SegmentSink,
    settings: Settings,
    *,
    list_id: int,
    out: TextIO,
    rng: random.Random,
) -> bool:
    """True when every event went out once and the re-run sent nothing."""
    emails = sorted(str(v["email"]) for v in sim.truth(list_id).values())
    sim.add_campaign(list_id, 1, "Winter sale")
    sim.send_message(list_id, MESSAGE, emails, subject="Winter sale starts", campaign_id=1)
    sim.add_link(list_id, MESSAGE, LINK, "https://shop.example.com/winter")
    openers = rng.sample(emails, max(len(emails) // 3, 3))
    clickers = openers[: len(openers) // 3]
    for email in openers[len(clickers) :]:
        sim.open(list_id, MESSAGE, email)
    for email in clickers:
        sim.click(list_id, MESSAGE, LINK, email)
    print(
        f"activity: message {MESSAGE} sent to {len(emails)} subscribers of list {list_id}", file=out
    )
    expected: dict[str, Any] = {"Email Opened": len(openers), "Email Link Clicked": len(clickers)}
    if unsubscribed := _unsubscribed(sim, list_id):
        expected["Unsubscribed"] = unsubscribed
    ok = _check(out, "first pass", _pass(settings, list_id, sink, out), expected)
    print("  later: one more click and a purchase of 49.90 after it", file=out)
    sim.click(list_id, MESSAGE, LINK, openers[-1])
    sim.convert(list_id, MESSAGE, openers[-1], 49.90)
    later = _pass(settings, list_id, sink, out)
    ok = _check(out, "later pass", later, {"Email Link Clicked": 1, "Email Converted": 1}) and ok
    ok = _check(out, "re-run with no change", _pass(settings, list_id, sink, out), {}) and ok
    return _once(sink, out) and ok


def _once(sink: SegmentSink, out: TextIO) -> bool:
    ids = [m["messageId"] for m in sink.messages if m.get("type") == "track"]
    once = len(ids) == len(set(ids))
    print(f"  {len(ids)} track events, each fact once: {'yes' if once else 'NO'}", file=out)
    return once
