"""`listrak-source demo`: simulator, sink and worker on loopback, with changes between syncs,
then Engage audience events through the receiver into a Listrak check box, then email
activity as track events."""

from __future__ import annotations

import functools
import random
import tempfile
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from ..config import Settings
from ..records import RunResult, RunStatus
from ..simulator import ListrakSimulator, SegmentSink, rebuild_profiles
from ..subscribers.sync import sync_list
from .demo_activity import run_activity_demo
from .demo_audiences import AUDIENCE_FIELD, audience_settings, run_audience_demo
from .report import result_line
from .wiring import run_context

MAIN_LIST, VIP_LIST, FIELD = 1001, 1002, 678
KINDS = ("subscribed", "unsubscribed", "userId changed")
Changes = dict[str, set[str]]


def demo_settings(sim: ListrakSimulator, sink: SegmentSink, folder: Path) -> Settings:
    """Settings pointing every URL at loopback; the environment is ignored on purpose."""
    return Settings.from_values(
        listrak={
            "client_id": sim.client_id,
            "client_secret": sim.client_secret,
            "base_url": sim.base_url,
            "auth_url": sim.auth_url,
            "requests_per_second": 1000,
        },
        segment={"write_key": sink.write_key, "host": sink.url},
        database={"url": f"sqlite:///{folder / 'demo.db'}"},
        lists=[{"id": MAIN_LIST, "user_id_field": FIELD}, {"id": VIP_LIST, "activity": True}],
        **audience_settings(MAIN_LIST),
    )


def _mutate(
    sim: ListrakSimulator, list_id: int, field: int | None, rng: random.Random, cycle: int
) -> tuple[Changes, set[str]]:
    """Subscribe, unsubscribe, remove and edit a few contacts; return the changes made, and
    apart from them the contacts removed from the list (no longer on it at all)."""
    truth = sim.truth(list_id, field)
    current = sorted(truth)
    picks = rng.sample(current, k=min(len(current), max(6, len(current) // 50)))
    third = len(picks) // 3
    changes: Changes = {kind: set() for kind in KINDS}
    removed: set[str] = set()
    for key in picks[:third]:
        sim.unsubscribe(list_id, str(truth[key]["email"]))
        changes["unsubscribed"].add(key)
    for key in picks[third : 2 * third]:
        if field is None:
            sim.remove(list_id, str(truth[key]["email"]))
            removed.add(key)
        else:
            sim.set_field(
                list_id, str(truth[key]["email"]), field, f"crm-{cycle}-{rng.randrange(10**6)}"
            )
            changes["userId changed"].add(key)
    for n in range(len(picks) - 2 * third):
        email = f"new{cycle}.{n}.{list_id}@example.com"
        sim.subscribe(list_id, email, {field: f"crm-new-{cycle}-{n}"} if field else None)
        changes["subscribed"].add(email.lower())
    return changes, removed


class Removals:
    """Which removed contacts a sync should send, by the documented rule for the unseen.

    A full scan that misses more than `confirm_unseen_max` subscribers first removes those an
    Unsubscribed scan reports; if still too many remain, it removes only those the previous
    full scan missed too, and the rest wait for the next full scan.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        # Per list: removed from it, missed by one full scan, removed by the next.
        self.waiting: dict[int, set[str]] = {}

    def due(self, list_id: int, unsubscribed: set[str], removed: set[str]) -> set[str]:
        """The removed contacts this list's next full scan sends; the rest wait."""
        earlier = self.waiting.pop(list_id, set())
        unseen = earlier | removed
        if len(unsubscribed | unseen) <= self.limit or len(unseen) <= self.limit:
            return unseen
        self.waiting[list_id] = removed
        return earlier

    def waiting_count(self) -> int:
        """Removed contacts that wait for a second full scan."""
        return sum(len(keys) for keys in self.waiting.values())


def _classify(
    messages: Iterable[Mapping[str, Any]], trait: str, before: Mapping[str, Any]
) -> Changes:
    """Sort what the sink received by kind, from the trait value and the earlier profile."""
    seen: Changes = {kind: set() for kind in KINDS}
    for message in messages:
        key = str(message["anonymousId"]).lower()
        value = message["traits"].get(trait)
        if value is None:
            seen["unsubscribed"].add(key)
        elif trait in before.get(key, {}).get("traits", {}):
            seen["userId changed"].add(key)
        else:
            seen["subscribed"].add(key)
    return seen


def _show(out: TextIO, list_id: int, expected: Changes, seen: Changes) -> bool:
    ok = True
    for kind in KINDS:
        match = expected[kind] == seen[kind]
        ok = ok and match
        sample = ", ".join(sorted(seen[kind])[:3]) + (" ..." if len(seen[kind]) > 3 else "")
        print(
            f"  list {list_id} {kind:>15}: sent {len(seen[kind]):>4}, expected "
            f"{len(expected[kind]):>4} {'OK' if match else 'MISMATCH'}  {sample}",
            file=out,
        )
    return ok


def _sync_all(demo: Demo) -> bool:
    with run_context(demo.settings, stop=demo.stop) as ctx:
        results = []
        for cfg in demo.settings.lists:
            results.append(sync_list(ctx, cfg))
            if demo.stop.is_set():
                break
    for result in results:
        print("  " + result_line(result), file=demo.out)
    return all(_done(r, len(demo.removals.waiting.get(r.list_id, ()))) for r in results)


def _done(result: RunResult, waiting: int) -> bool:
    """The run did everything, or all it left are the removals the demo expects to wait for
    a second full scan (the run is then `partial`, and says so)."""
    if result.status == RunStatus.OK:
        return True
    left = (result.pending, result.dead, result.rejected)
    return result.status == RunStatus.PARTIAL and result.unconfirmed == waiting and not any(left)


def _profiles_match(sim: ListrakSimulator, sink: SegmentSink, settings: Settings) -> bool:
    profiles = rebuild_profiles(sink.messages)
    for cfg in settings.lists:
        truth = sim.truth(cfg.id, cfg.user_id_field)
        have = {k for k, p in profiles.items() if p["traits"].get(cfg.trait_name) is True}
        if have != set(truth):
            return False
        if cfg.user_id_field and any(
            profiles[k]["user_id"] != v["user_id"] for k, v in truth.items() if v["user_id"]
        ):
            return False
    return True


@dataclass
class Demo:
    """What every step of the demo works with."""

    sim: ListrakSimulator
    sink: SegmentSink
    settings: Settings
    out: TextIO
    rng: random.Random
    stop: threading.Event
    removals: Removals


NEXT_STEPS = """\
next: run the worker yourself against the simulator, with changes and outages you make
  (README, "Try it against the simulator"); then copy config.example.toml to config.toml,
  fill in [listrak], [segment] and [[lists]] with your account, and run
  `listrak-source check` until it says ready to run."""


def run_demo(
    *, contacts: int, cycles: int, out: TextIO, seed: int = 7, stop: threading.Event | None = None
) -> bool | None:
    """Initial sync, then `cycles` rounds of changes; True when everything sent matched,
    None when `stop` was set (a Ctrl-C): the running sync stops at its next page."""
    rng = random.Random(seed)
    stop = stop or threading.Event()
    with tempfile.TemporaryDirectory() as tmp, ListrakSimulator() as sim, SegmentSink() as sink:
        sim.add_list(MAIN_LIST, "Newsletter", field_ids=[FIELD])
        sim.seed(MAIN_LIST, contacts, field_id=FIELD, seed=seed)
        sim.add_field(MAIN_LIST, AUDIENCE_FIELD, "CheckBox", "VIP shoppers")
        sim.add_list(VIP_LIST, "VIP")
        sim.seed(VIP_LIST, max(contacts // 4, 10), seed=seed + 1)
        settings = demo_settings(sim, sink, Path(tmp))
        limit = settings.delivery.confirm_unseen_max
        demo = Demo(sim, sink, settings, out, rng, stop, Removals(limit))
        print(f"Listrak simulator at {sim.base_url}, Segment sink at {sink.url}", file=out)
        print(f"initial sync of {contacts} + {max(contacts // 4, 10)} contacts:", file=out)
        ok = _steps(demo, cycles)
    if ok is None:
        print("demo stopped: nothing was kept (it lived in a temporary folder)", file=out)
        return None
    print("demo passed" if ok else "demo FAILED", file=out)
    print(NEXT_STEPS, file=out)
    return ok


def _steps(demo: Demo, cycles: int) -> bool | None:
    """Each step in turn; None as soon as a stop was asked for."""
    ok = _sync_all(demo)
    print(f"  sink received {len(demo.sink.messages)} identify calls", file=demo.out)
    steps = [functools.partial(_cycle, demo, cycle) for cycle in range(1, cycles + 1)]
    steps.append(functools.partial(_finish, demo))
    steps.append(
        functools.partial(run_audience_demo, demo.sim, demo.settings, MAIN_LIST, demo.out, demo.rng)
    )
    steps.append(
        functools.partial(
            run_activity_demo,
            demo.sim,
            demo.sink,
            demo.settings,
            list_id=VIP_LIST,
            out=demo.out,
            rng=demo.rng,
        )
    )
    for step in steps:
        if demo.stop.is_set():
            return None
        ok = step() and ok
    return None if demo.stop.is_set() else ok


def _cycle(demo: Demo, cycle: int) -> bool:
    sim, sink, settings = demo.sim, demo.sink, demo.settings
    before = rebuild_profiles(sink.messages)
    expected = {}
    for cfg in settings.lists:
        changes, removed = _mutate(sim, cfg.id, cfg.user_id_field, demo.rng, cycle)
        changes["unsubscribed"] |= demo.removals.due(cfg.id, changes["unsubscribed"], removed)
        expected[cfg.id] = changes
    mark = len(sink.messages)
    print(f"cycle {cycle}: the simulator changed contacts; syncing", file=demo.out)
    ok = _sync_all(demo)
    new = sink.messages[mark:]
    for cfg in settings.lists:
        mine = [m for m in new if cfg.trait_name in m.get("traits", {})]
        seen = _classify(mine, cfg.trait_name, before)
        ok = _show(demo.out, cfg.id, expected[cfg.id], seen) and ok
    _say_waiting(demo)
    return ok


def _say_waiting(demo: Demo) -> None:
    waiting = demo.removals.waiting_count()
    if waiting:
        print(
            f"  {waiting} contact(s) removed from a list wait for a second full scan "
            f"(more than delivery.confirm_unseen_max = {demo.removals.limit} unseen: "
            "see README, How state and delivery work)",
            file=demo.out,
        )


def _finish(demo: Demo) -> bool:
    sim, sink, settings, out = demo.sim, demo.sink, demo.settings, demo.out
    mark = len(sink.messages)
    due = demo.removals.waiting_count()
    demo.removals.waiting.clear()
    what = f"no change but {due} removal(s) waiting" if due else "no change"
    print(f"one more sync with {what}:", file=out)
    ok = _sync_all(demo)
    quiet = len(sink.messages) - mark == due
    print(
        f"  sent {len(sink.messages) - mark} identify calls, expected {due} "
        f"{'OK' if quiet else 'MISMATCH'}",
        file=out,
    )
    match = _profiles_match(sim, sink, settings)
    print(
        f"profiles rebuilt from the sink equal the simulator's lists: {'yes' if match else 'NO'}",
        file=out,
    )
    return ok and quiet and match
