"""`listrak-source demo`: simulator, sink and worker on loopback, with changes between syncs,
then Engage audience events through the receiver into a Listrak check box, then email
activity as track events."""

from __future__ import annotations

import random
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TextIO

from ..config import Settings
from ..records import RunStatus
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
) -> Changes:
    """Subscribe, unsubscribe, remove and edit a few contacts; return what should go out."""
    truth = sim.truth(list_id, field)
    current = sorted(truth)
    picks = rng.sample(current, k=min(len(current), max(6, len(current) // 50)))
    third = len(picks) // 3
    changes: Changes = {kind: set() for kind in KINDS}
    for key in picks[:third]:
        sim.unsubscribe(list_id, str(truth[key]["email"]))
        changes["unsubscribed"].add(key)
    for key in picks[third : 2 * third]:
        if field is None:
            sim.remove(list_id, str(truth[key]["email"]))
            changes["unsubscribed"].add(key)
        else:
            sim.set_field(
                list_id, str(truth[key]["email"]), field, f"crm-{cycle}-{rng.randrange(10**6)}"
            )
            changes["userId changed"].add(key)
    for n in range(len(picks) - 2 * third):
        email = f"new{cycle}.{n}.{list_id}@example.com"
        sim.subscribe(list_id, email, {field: f"crm-new-{cycle}-{n}"} if field else None)
        changes["subscribed"].add(email.lower())
    return changes


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
            f"  list {list_id} {kind:>15}: sent {len(seen[kind]):>4}, simulator changed "
            f"{len(expected[kind]):>4} {'OK' if match else 'MISMATCH'}  {sample}",
            file=out,
        )
    return ok


def _sync_all(settings: Settings, out: TextIO) -> bool:
    with run_context(settings) as ctx:
        results = [sync_list(ctx, cfg) for cfg in settings.lists]
    for result in results:
        print("  " + result_line(result), file=out)
    return all(r.status == RunStatus.OK for r in results)


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


def run_demo(*, contacts: int, cycles: int, out: TextIO, seed: int = 7) -> bool:
    """Initial sync, then `cycles` rounds of changes; True when everything sent matched."""
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp, ListrakSimulator() as sim, SegmentSink() as sink:
        sim.add_list(MAIN_LIST, "Newsletter", field_ids=[FIELD])
        sim.seed(MAIN_LIST, contacts, field_id=FIELD, seed=seed)
        sim.add_field(MAIN_LIST, AUDIENCE_FIELD, "CheckBox", "VIP shoppers")
        sim.add_list(VIP_LIST, "VIP")
        sim.seed(VIP_LIST, max(contacts // 4, 10), seed=seed + 1)
        settings = demo_settings(sim, sink, Path(tmp))
        print(f"Listrak simulator at {sim.base_url}, Segment sink at {sink.url}", file=out)
        print(f"initial sync of {contacts} + {max(contacts // 4, 10)} contacts:", file=out)
        ok = _sync_all(settings, out)
        print(f"  sink received {len(sink.messages)} identify calls", file=out)
        for cycle in range(1, cycles + 1):
            ok = _cycle(sim, sink, settings, rng=rng, cycle=cycle, out=out) and ok
        ok = _finish(sim, sink, settings, out) and ok
        ok = run_audience_demo(sim, settings, MAIN_LIST, out, rng) and ok
        ok = run_activity_demo(sim, sink, settings, list_id=VIP_LIST, out=out, rng=rng) and ok
        print("demo passed" if ok else "demo FAILED", file=out)
        return ok


def _cycle(
    sim: ListrakSimulator,
    sink: SegmentSink,
    settings: Settings,
    *,
    rng: random.Random,
    cycle: int,
    out: TextIO,
) -> bool:
    before = rebuild_profiles(sink.messages)
    expected = {
        cfg.id: _mutate(sim, cfg.id, cfg.user_id_field, rng, cycle) for cfg in settings.lists
    }
    mark = len(sink.messages)
    print(f"cycle {cycle}: the simulator changed contacts; syncing", file=out)
    ok = _sync_all(settings, out)
    new = sink.messages[mark:]
    for cfg in settings.lists:
        mine = [m for m in new if cfg.trait_name in m.get("traits", {})]
        ok = _show(out, cfg.id, expected[cfg.id], _classify(mine, cfg.trait_name, before)) and ok
    return ok


def _finish(sim: ListrakSimulator, sink: SegmentSink, settings: Settings, out: TextIO) -> bool:
    mark = len(sink.messages)
    print("one more sync with no change:", file=out)
    ok = _sync_all(settings, out)
    quiet = len(sink.messages) == mark
    print(
        f"  sent {len(sink.messages) - mark} identify calls {'OK' if quiet else 'MISMATCH'}",
        file=out,
    )
    match = _profiles_match(sim, sink, settings)
    print(
        f"profiles rebuilt from the sink equal the simulator's lists: {'yes' if match else 'NO'}",
        file=out,
    )
    return ok and quiet and match
