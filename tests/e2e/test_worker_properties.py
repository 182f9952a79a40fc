"""The rule, not only the cases: the whole subscriber worker against the simulator and the sink.

Random Listrak changes (subscribe, unsubscribe, delete, re-subscribe, a case change, a
userId edited and reverted, dates ahead of our clock), Segment behaviours (accepting,
refusing one message, refusing all, keeping a batch and losing the answer, an outage), a
kill at a random point of a run (nothing after it commits), renames, baselines and
backfills. After every run: no message id carries two contents and a contact keeps one
spelling; a run that says `ok` leaves the profiles rebuilt from everything the sink kept
equal to Listrak (after an incremental run, as far as incremental scans can see); and once
Segment is healthy again, a full sync says `ok`.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule, run_state_machine_as_test
from sqlalchemy import Engine, select

from listrak_source.simulator import ListrakSimulator, SegmentSink, rebuild_profiles
from listrak_source.state import make_engine, upgrade
from listrak_source.state.schema import list_state, runs
from listrak_source.state.transactions import Transactions

from ..properties import example_database
from .harness import FIELD, assert_no_change_under_two_ids, run_cli, write_config

POOL = [f"p{n}@example.com" for n in range(2)]
USER_IDS = ["crm-a", "crm-b"]
TRAITS = ("Listrak_list_{list_id}", "listrak_list_{list_id}")
SEGMENT = ("accept", "refuse one", "refuse all", "lose answer", "outage")
CHANGES = ("subscribe", "unsubscribe", "delete", "ahead", "none")
# Mostly plain syncs, as a deployment runs them.
KINDS = ("sync", "sync", "sync", "sync --full", "backfill", "baseline", "rename")
LIST_IDS = itertools.count(7001)
# Another source that synced Listrak before a baseline adopted it.
OTHER = "other-"


class Killed(BaseException):
    """The process died here: kill -9 between two steps of a run."""


@dataclass
class KillSwitch:
    """Transactions left before the kill; once dead, nothing more commits."""

    left: int | None = None
    dead: bool = False


KILL = KillSwitch()


def _dying(original: Callable[[Transactions], Any]) -> Callable[[Transactions], Any]:
    @contextmanager
    def begin(self: Transactions) -> Iterator[Any]:
        if KILL.left is not None and KILL.left <= 0:
            KILL.dead = True
        if KILL.dead:
            raise Killed
        if KILL.left is not None:
            KILL.left -= 1
        with original(self) as conn:
            yield conn

    return begin


@dataclass
class Env:
    sim: ListrakSimulator
    sink: SegmentSink
    db_url: str
    folder: Path
    engine: Engine


class Worker(RuleBasedStateMachine):
    env: Env
    pool = POOL

    def __init__(self) -> None:
        super().__init__()
        self.list_id = next(LIST_IDS)
        self.trait = 0  # index into TRAITS: what the list should carry now
        self.hidden = False  # a change an incremental scan cannot see since the last full
        # A baseline that did not finish: the other source's profiles are not yet adopted,
        # so the operator runs it again before anything else, as its outcome tells them.
        self.adopting = False
        self.told: set[str] = set()  # addresses the other source has told Segment of
        self.field: int | None = FIELD  # the list's user_id_field in the config now
        self.sim, self.sink = self.env.sim, self.env.sink
        self.sink.faults.reset()
        self.sink.clear()
        self.sim.add_list(self.list_id, "Property", field_ids=[FIELD])
        self.configs = [self._config(n) for n in range(len(TRAITS))]

    def _config(self, n: int, field: int | None = FIELD, page_size: int | None = None) -> Path:
        item: dict[str, object] = {"id": self.list_id}
        if field is not None:
            item["user_id_field"] = field
        item.update(full_scan_every="24h", trait=TRAITS[n])
        path = self.env.folder / f"{self.list_id}-{n}-{field}.toml"
        extra = (
            "[delivery]\nmax_removal_ratio = 1.0\nmax_attempts = 100\n"
            'backoff_base = "0.001s"\nbackoff_max = "0.002s"\n'
        )
        write_config(path, self.sim, self.sink, self.env.db_url, [item], extra=extra)
        text = path.read_text().replace("timeout = 5", "timeout = 5\nmax_retries = 0")
        if page_size is not None:
            rate = "requests_per_second = 1000"
            text = text.replace(rate, f"{rate}\npage_size = {page_size}", 1)
        path.write_text(text)
        return path

    def _trait_name(self, n: int) -> str:
        return TRAITS[n].format(list_id=self.list_id)

    def _contact(self, n: int) -> Any:
        return self.sim.get(self.list_id).contacts.get(self.pool[n])

    # Listrak

    @initialize(uid=st.sampled_from(USER_IDS))
    def first_subscribers(self, uid: str) -> None:
        for email in self.pool:
            self.sim.subscribe(self.list_id, email, {FIELD: uid})

    def _listrak(self, n: int, change: str, uid: str, hours: int) -> None:
        """Subscribe (a new contact with a userId; a re-subscribe keeps its own), unsubscribe,
        delete, or subscribe with Listrak's clock `hours` ahead of ours."""
        contact, email = self._contact(n), self.pool[n]
        if change == "subscribe":
            self.sim.subscribe(self.list_id, email, {FIELD: uid} if contact is None else {})
        elif change == "ahead":
            self.sim.set_now(datetime.now(UTC) + timedelta(hours=hours))
            try:
                self.sim.subscribe(self.list_id, email)
            finally:
                self.sim.set_now(None)
        elif contact is not None and change == "unsubscribe":
            self.sim.unsubscribe(self.list_id, email)
        elif contact is not None and change == "delete":
            self.sim.remove(self.list_id, email)
            self.hidden = True

    @rule(n=st.integers(0, len(POOL) - 1), uid=st.sampled_from(USER_IDS), case=st.booleans())
    def edit(self, n: int, uid: str, case: bool) -> None:
        """A userId edit (or revert), or a case change of the address: invisible to an
        incremental scan."""
        if self._contact(n) is None:
            return
        if case:
            email = self.pool[n]
            spelling = email.upper() if uid == USER_IDS[0] else email.capitalize()
            self.sim.override(self.list_id, email, {"emailAddress": spelling})
        else:
            self.sim.set_field(self.list_id, self.pool[n], FIELD, uid)
            self.hidden = True

    # Each step: a change in Listrak, then a run while Segment does one thing throughout

    @rule(
        n=st.integers(0, len(POOL) - 1),
        change=st.sampled_from(CHANGES),
        uid=st.sampled_from(USER_IDS),
        hours=st.integers(1, 15),
        kind=st.sampled_from(KINDS),
        segment=st.sampled_from(SEGMENT),
    )
    def change_then_run(
        self, n: int, change: str, uid: str, hours: int, kind: str, segment: str
    ) -> None:
        self._listrak(n, change, uid, hours)
        self._run(kind, segment, None, n)

    @rule(
        n=st.integers(0, len(POOL) - 1),
        change=st.sampled_from(CHANGES),
        kind=st.sampled_from(KINDS),
        segment=st.sampled_from(SEGMENT),
        kill=st.integers(0, 16),
    )
    def change_then_killed_run(
        self, n: int, change: str, kind: str, segment: str, kill: int
    ) -> None:
        self._listrak(n, change, USER_IDS[0], 1)
        self._run(kind, segment, kill, n)

    def _run(self, kind: str, segment: str, kill: int | None, victim: int) -> None:
        recorded = self._recorded_trait()
        if recorded is None and kind == "rename":
            kind = "sync"  # nothing recorded yet: the list's first run records its trait
        elif recorded is not None and recorded != self._trait_name(self.trait):
            kind = "rename"  # a rename a kill cut short: every other command refuses the list
        elif kind == "rename":
            self.trait = 1 - self.trait
        if self.adopting and kind != "rename":
            kind = "baseline"
        if kind == "baseline":
            self._other_source_syncs()
        self._misbehave(segment, victim)
        KILL.left, KILL.dead = kill, False
        try:
            code: int | None = self._cli(kind)
        except Killed:
            code = None
        finally:
            KILL.left, KILL.dead = None, False
            self.sink.faults.reset()
        if kind == "baseline":
            self.adopting = code != 0
        self._check(code)

    def _misbehave(self, segment: str, victim: int) -> None:
        faults = self.sink.faults
        if segment == "refuse one":
            contact = self._contact(victim)
            faults.poison = {contact.email if contact is not None else self.pool[victim]}
        elif segment == "refuse all":
            faults.fail_next(10_000, status=400)
        elif segment == "lose answer":
            faults.lose_ack_next(10_000)
        elif segment == "outage":
            faults.outage = True

    def _config_now(self) -> Path:
        return self.configs[self.trait]

    def _cli(self, kind: str) -> int:
        config = self._config_now()
        args = {
            "sync": ["sync"],
            "sync --full": ["sync", "--full"],
            "backfill": ["backfill"],
            "baseline": ["baseline"],
            "rename": ["rename-trait", "--list", str(self.list_id), "--confirm"],
        }[kind]
        with contextlib.redirect_stdout(io.StringIO()):
            return run_cli(config, *args)

    def _other_source_syncs(self) -> None:
        """What a baseline assumes: another source already told Segment what Listrak holds."""
        trait = self._trait_name(self.trait)
        now = datetime.now(UTC).isoformat()
        batch = [
            {
                "type": "identify",
                "messageId": f"{OTHER}{uuid.uuid4()}",
                "anonymousId": c.email,
                "userId": c.field(self.field),
                "timestamp": now,
                "traits": {"email": c.email, trait: True if c.subscribed else None},
            }
            for c in self.sim.get(self.list_id).contacts.values()
        ]
        # It removes the trait of those it told before and Listrak no longer holds.
        here = {c.email.lower() for c in self.sim.get(self.list_id).contacts.values()}
        batch += [
            {
                "type": "identify",
                "messageId": f"{OTHER}{uuid.uuid4()}",
                "anonymousId": email,
                "timestamp": now,
                "traits": {"email": email, trait: None},
            }
            for email in sorted(self.told - here)
        ]
        self.told = here | self.told
        if batch:
            answer = httpx.post(
                f"{self.sink.url}/v1/batch", json={"batch": batch}, auth=(self.sink.write_key, "")
            )
            assert answer.status_code == 200

    # What must hold

    def _recorded_trait(self) -> str | None:
        with self.env.engine.connect() as conn:
            query = select(list_state.c.trait).where(list_state.c.list_id == self.list_id)
            return conn.execute(query).scalar_one_or_none()

    def _last_run_was_full(self) -> bool:
        with self.env.engine.connect() as conn:
            query = (
                select(runs.c.full_scan)
                .where(runs.c.list_id == self.list_id)
                .order_by(runs.c.id.desc())
                .limit(1)
            )
            return bool(conn.execute(query).scalar_one_or_none())

    def _check(self, code: int | None) -> None:
        messages = self.sink.messages
        assert_no_change_under_two_ids(messages)
        spellings: dict[str, set[str]] = {}
        for m in messages:
            if not m["messageId"].startswith(OTHER):
                spellings.setdefault(m["anonymousId"].lower(), set()).add(m["anonymousId"])
                assert m["traits"]["email"] == m["anonymousId"]
        assert all(len(s) == 1 for s in spellings.values()), spellings
        if code != 0:
            return
        full = self._last_run_was_full()
        if full or not self.hidden:
            self._profiles_match(incremental=not full)
        if full:
            self.hidden = False

    def _profiles_match(self, *, incremental: bool) -> None:
        profiles = rebuild_profiles(self.sink.messages)
        trait, retired = self._trait_name(self.trait), self._trait_name(1 - self.trait)
        truth = self.sim.truth(self.list_id, self.field)
        have = {k for k, p in profiles.items() if p["traits"].get(trait) is True}
        assert have == set(truth), (incremental, sorted(have ^ set(truth)))
        assert not [k for k, p in profiles.items() if retired in p["traits"]]
        for key, fact in truth.items():
            if fact["user_id"] is not None:
                assert profiles[key]["user_id"] == fact["user_id"], key

    def teardown(self) -> None:
        """Segment healthy again: a full sync delivers everything and says ok.

        A rename or a baseline a kill cut short is finished first, as the operator is told
        to do."""
        self.sink.faults.reset()
        recorded = self._recorded_trait()
        if recorded is not None and recorded != self._trait_name(self.trait):
            self._check(self._cli("rename"))
        if self.adopting:
            self._other_source_syncs()
            self._check(self._cli("baseline"))
        code = self._cli("sync --full")
        assert code == 0
        self._check(code)


@pytest.mark.slow
def test_segment_holds_what_listrak_holds(
    sim: ListrakSimulator, sink: SegmentSink, db_url: str, tmp_path: Path
) -> None:
    _run_dying(Worker, (sim, sink, db_url, tmp_path), examples=10, steps=12)


# A list read one contact a page, so that its contacts are recognized by the digest of
# their bytes page by page (from a full scan's first page, an incremental one's third;
# listrak/pieces.py, state/digests.py).
PAGED_POOL = [f"q{n}@example.com" for n in range(6)]
OTHER_FIELD = FIELD + 1
FIELDS = (FIELD, OTHER_FIELD, None)
# What changes a contact's bytes but not what it means to the list.
TOUCHES = ("method", "date", "external")


class PagedWorker(Worker):
    """The same rule over six contacts, a page each, with what recognition must tell apart:
    bytes that change without their meaning, a user_id_field named, changed or dropped
    between runs, and a contact served twice in one scan."""

    pool = PAGED_POOL

    def __init__(self) -> None:
        super().__init__()
        self.sim.add_list(self.list_id, field_ids=[OTHER_FIELD])
        self.paged: dict[tuple[int, int | None], Path] = {}
        # Each contact's bytes as the last run was served them: a duplicate may be stale.
        self.served: dict[int, bytes] = {}

    def _config_now(self) -> Path:
        key = (self.trait, self.field)
        if key not in self.paged:
            self.paged[key] = self._config(self.trait, self.field, page_size=1)
        return self.paged[key]

    @initialize(uid=st.sampled_from(USER_IDS), other=st.sampled_from(USER_IDS))
    def first_subscribers(self, uid: str, other: str) -> None:
        for email in self.pool:
            self.sim.subscribe(self.list_id, email, {FIELD: uid, OTHER_FIELD: other})

    @rule(
        n=st.integers(0, len(PAGED_POOL) - 1),
        uid=st.sampled_from(USER_IDS),
        case=st.booleans(),
        field=st.sampled_from((FIELD, OTHER_FIELD)),
    )
    def edit(self, n: int, uid: str, case: bool, field: int) -> None:
        if field == FIELD or case or self._contact(n) is None:
            Worker.edit(self, n, uid, case)
        else:
            self.sim.set_field(self.list_id, self.pool[n], OTHER_FIELD, uid)
            self.hidden = True

    @rule(n=st.integers(0, len(PAGED_POOL) - 1), what=st.sampled_from(TOUCHES))
    def touch(self, n: int, what: str) -> None:
        """New bytes, same meaning: a subscribe method, an older date, an external id."""
        contact = self._contact(n)
        if contact is None:
            return
        with self.sim.lock:
            if what == "method":
                method = "Web" if contact.state.subscribe_method != "Web" else "Import"
                contact.set_state(contact.state._replace(subscribe_method=method))
            elif what == "date":
                contact.set_state(contact.state._replace(subscribe_date="2020-01-02T03:04:05"))
        if what == "external":
            self.sim.override(self.list_id, self.pool[n], {"externalContactID": f"x{n}"})

    @rule(field=st.sampled_from(FIELDS))
    def switch_field(self, field: int | None) -> None:
        """The config names another user_id_field, or none, from the next run on: an
        incremental scan reads only the contacts that changed, so only a full one sees it."""
        # A baseline adopts the userIds the rows hold as Segment's; with no field named a
        # scan leaves those as they were, so the other source is taken to have sent them
        # only while a field is named (see `_run`).
        if field != self.field and not (field is None and self.adopting):
            self.field = field
            self.hidden = True

    @rule(
        n=st.integers(0, len(PAGED_POOL) - 1),
        change=st.sampled_from(CHANGES),
        uid=st.sampled_from(USER_IDS),
        hours=st.integers(1, 15),
        kind=st.sampled_from(KINDS),
        segment=st.sampled_from(SEGMENT),
    )
    def change_then_run(
        self, n: int, change: str, uid: str, hours: int, kind: str, segment: str
    ) -> None:
        Worker.change_then_run(self, n, change, uid, hours, kind, segment)

    @rule(
        n=st.integers(0, len(PAGED_POOL) - 1),
        change=st.sampled_from(CHANGES),
        kind=st.sampled_from(KINDS),
        segment=st.sampled_from(SEGMENT),
        kill=st.integers(0, 24),
    )
    def change_then_killed_run(
        self, n: int, change: str, kind: str, segment: str, kill: int
    ) -> None:
        Worker.change_then_killed_run(self, n, change, kind, segment, kill)

    @rule(
        n=st.integers(0, len(PAGED_POOL) - 1),
        stale=st.booleans(),
        kind=st.sampled_from(KINDS),
        segment=st.sampled_from(SEGMENT),
    )
    def duplicate_then_run(self, n: int, stale: bool, kind: str, segment: str) -> None:
        """For one run, Listrak serves a subscriber twice, elsewhere in the scan: as it is
        now, or as the last run was served it."""
        contact = self._contact(n)
        body = self.served.get(n) if stale else self._bytes(n)
        if contact is None or not contact.subscribed or body is None:
            return
        self.sim.add_raw(self.list_id, json.loads(body))
        lst = self.sim.get(self.list_id)
        twin = lst.raws[-1]
        try:
            self._run(kind, segment, None, n)
        finally:
            with self.sim.lock:
                lst.raws.remove(twin)
                lst.drop(twin)

    def _cli(self, kind: str) -> int:
        if kind != "backfill":
            return super()._cli(kind)
        # Without --confirm a backfill only says how many it would send.
        with contextlib.redirect_stdout(io.StringIO()):
            return run_cli(self._config_now(), "backfill", "--confirm")

    def _bytes(self, n: int) -> bytes | None:
        contact = self._contact(n)
        if contact is None:
            return None
        ids = frozenset() if self.field is None else frozenset([self.field])
        with self.sim.lock:
            return self.sim.get(self.list_id).full(contact, ids)

    def _run(self, kind: str, segment: str, kill: int | None, victim: int) -> None:
        if kind == "baseline" and self.field is None and not self.adopting:
            kind = "sync"
        try:
            super()._run(kind, segment, kill, victim)
        finally:
            self.served = {n: b for n in range(len(self.pool)) if (b := self._bytes(n))}


@pytest.mark.slow
def test_segment_holds_what_listrak_holds_when_contacts_are_recognized(
    sim: ListrakSimulator, sink: SegmentSink, db_url: str, tmp_path: Path
) -> None:
    _run_dying(PagedWorker, (sim, sink, db_url, tmp_path), examples=8, steps=10)


def _run_dying(
    machine: type[Worker],
    world: tuple[ListrakSimulator, SegmentSink, str, Path],
    *,
    examples: int,
    steps: int,
) -> None:
    """Run the machine against (simulator, sink, database URL, folder), with transactions
    that die when told to. The example database keys each machine's examples by the
    machine, not by this runner."""
    engine = make_engine(world[2])
    upgrade(engine)
    # A page's read and write on PostgreSQL take a connection of their own, not begin().
    original, page = Transactions.begin, Transactions.read_then_write
    Transactions.begin = _dying(original)  # type: ignore[method-assign]
    Transactions.read_then_write = _dying(page)  # type: ignore[method-assign]
    try:
        machine.env = Env(*world, engine)
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=examples, stateful_step_count=steps, database=example_database()
            ),
        )
    finally:
        Transactions.begin = original  # type: ignore[method-assign]
        Transactions.read_then_write = page  # type: ignore[method-assign]
        engine.dispose()
