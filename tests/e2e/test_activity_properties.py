"""The rule, not only the cases: the whole activity pipeline against the simulator and the sink.

Random Listrak activity between runs (messages sent to part of the list, opens, clicks days
after the open, bounces, complaints, orders that grow a row's total, unsubscribes), rows
that change and move while a pass pages them, Listrak failing mid-pass, Segment behaviours
(accepting, refusing one contact, refusing all, keeping a batch and losing the answer, an
outage, a 5xx), a refused Reporting area, a request budget too small for the pass, a stop
signal and a kill at a random transaction; now and then a backfill instead of a sync, and a
migration that adopts the history with a baseline first. The truth is what Listrak's
cumulative rows imply, by the event table: an open, a bounce and a complaint once per
(message, contact), each clicker row once, the conversions of a row summing to its
orderTotal, each unsubscribe once.

After every run: no messageId carries two contents, no fact is under two ids, nothing is
sent that Listrak does not imply and every event carries its fact's time; a sync that says
`ok` has sent every fact that existed when it started (unless rows moved while it paged
them by offset: a row Listrak's pages then hid is the next pass's); and once everything is
healthy again, a sync says `ok` and the sink holds exactly the truth.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import signal
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule, run_state_machine_as_test

from listrak_source.simulator import ListrakSimulator, SegmentSink
from listrak_source.state import make_engine, upgrade
from listrak_source.state.activity import ActivityLedger
from listrak_source.state.transactions import Transactions

from ..properties import example_database
from .harness import run_cli, write_config
from .test_worker_properties import KILL, Killed, _dying

POOL = [f"a{n}@example.com" for n in range(5)]
LIST_IDS = itertools.count(8001)
# Listrak's message ids are the account's, and event ids are made from them: one per example.
MESSAGE_IDS = itertools.count(90001)
LINKS = {1: "https://shop.test/a", 2: "https://shop.test/b"}
CAMPAIGN = (9, "Spring")
ACTIONS = ("open", "click", "click", "bounce", "complain", "convert", "convert")
AMOUNTS = (0.01, 9.99, 25.0)
SEGMENT = ("accept", "accept", "refuse one", "refuse all", "lose answer", "outage", "5xx")
LISTRAK = ("healthy", "healthy", "5xx", "429", "down", "no reporting", "shift", "stop")
# [activity] max_requests: the default, or budgets a pass runs out of.
BUDGETS = (None, None, None, 3, 8)
KINDS = ("sync", "sync", "sync", "sync", "backfill")
NY = ZoneInfo("America/New_York")
OTHER = "other-"  # Listrak's hosted source, which sent the history a baseline adopts

OPENED, CLICKED, BOUNCED = "Email Opened", "Email Link Clicked", "Email Bounced"
SPAM, CONVERTED, UNSUBSCRIBED = "Email Marked As Spam", "Email Converted", "Unsubscribed"

Fact = tuple[str, ...]


def _utc(raw: str | None) -> str | None:
    """A naive Listrak date as the timestamp Segment receives (fold 0, as the worker reads)."""
    if raw is None:
        return None
    aware = datetime.fromisoformat(raw).replace(tzinfo=NY)
    return aware.astimezone(UTC).isoformat(timespec="milliseconds")


@dataclass
class Truth:
    """What Listrak's rows imply: each fact and its time (None: when first seen), and each
    row's order total, which its conversions must sum to."""

    facts: dict[Fact, str | None] = field(default_factory=dict)
    totals: dict[tuple[str, str], float] = field(default_factory=dict)


@dataclass
class Sent:
    """What the sink holds: the ids of each fact, and each row's conversions summed."""

    ids: dict[Fact, set[str]] = field(default_factory=lambda: defaultdict(set))
    totals: dict[tuple[str, str], float] = field(default_factory=lambda: defaultdict(float))


def fact_of(m: dict[str, Any]) -> Fact:
    """The fact a track call tells, as the event table keys it (a conversion by its id)."""
    p, who, event = m["properties"], m["anonymousId"].lower(), m["event"]
    if event == CLICKED:
        return (event, p["email_id"], p["link_id"], who, m["timestamp"])
    if event == UNSUBSCRIBED:
        return (event, who, m["timestamp"])
    if event == CONVERTED:
        return (event, p["email_id"], who, m["messageId"])
    return (event, p["email_id"], who)


def sent(tracks: list[dict[str, Any]]) -> Sent:
    out = Sent()
    for m in tracks:
        f = fact_of(m)
        if f[0] == CONVERTED and m["messageId"] not in out.ids[f]:
            out.totals[(f[1], f[2])] += m["properties"]["order_total"]
        out.ids[f].add(m["messageId"])
    return out


def one_content_per_id(tracks: list[dict[str, Any]]) -> None:
    contents: dict[str, str] = {}
    for m in tracks:
        keys = ("type", "event", "anonymousId", "timestamp", "properties", "context")
        content = json.dumps({k: m.get(k) for k in keys}, sort_keys=True)
        assert contents.setdefault(m["messageId"], content) == content, m["messageId"]


@dataclass
class Armed:
    """What counts from the start of the activity pass, not of the run: the transactions
    before a kill, and the pass's requests to Listrak (None before it starts)."""

    kill: int | None = None
    requests: int | None = None


ARMED = Armed()


def _arming(original: Callable[..., Any]) -> Callable[..., Any]:
    def list_pass(self: ActivityLedger, list_id: int) -> Any:
        if ARMED.kill is not None:
            KILL.left, ARMED.kill = ARMED.kill, None
        ARMED.requests = 0
        return original(self, list_id)

    return list_pass


@dataclass
class Env:
    sim: ListrakSimulator
    sink: SegmentSink
    db_url: str
    folder: Path


class Activity(RuleBasedStateMachine):
    env: Env

    def __init__(self) -> None:
        super().__init__()
        self.sim, self.sink = self.env.sim, self.env.sink
        self.sim.faults.reset()
        self.sink.faults.reset()
        self.sink.clear()
        self.list_id = next(LIST_IDS)
        self.sim.add_list(self.list_id, "Activity")
        self.sim.add_campaign(self.list_id, *CAMPAIGN)
        # Listrak's clock: a month ago, moving on with each change, never past ours.
        self.clock = datetime.now(UTC) - timedelta(days=30)
        self.sim.set_now(self.clock)
        self.messages: dict[int, list[str]] = {}
        self.first_seen: dict[Fact, datetime] = {}  # our clock when a complaint or order came
        self.configs: dict[int | None, Path] = {}
        # Rows moved while a pass paged them by offset: Listrak's pages may have hidden one.
        self.hiding = False

    def _config(self, budget: int | None) -> Path:
        if budget in self.configs:
            return self.configs[budget]
        path = self.configs[budget] = self.env.folder / f"{self.list_id}-{budget}.toml"
        extra = (
            "[delivery]\nmax_removal_ratio = 1.0\nmax_attempts = 100\n"
            'backoff_base = "0.001s"\nbackoff_max = "0.002s"\n'
        )
        if budget is not None:
            extra += f"[activity]\nmax_requests = {budget}\n"
        item = {"id": self.list_id, "activity": True}
        write_config(path, self.sim, self.sink, self.env.db_url, [item], extra=extra)
        text = path.read_text()
        text = text.replace("timeout = 5", "timeout = 5\nmax_retries = 0")
        # Small pages, so a pass pages every message; one retry of a failed request.
        listrak = "requests_per_second = 1000\npage_size = 2\nmax_attempts = 2"
        path.write_text(text.replace("requests_per_second = 1000", listrak, 1))
        return path

    def _advance(self, hours: int) -> None:
        latest = datetime.now(UTC) - timedelta(minutes=1)
        self.clock = min(self.clock + timedelta(hours=hours, seconds=1), latest)
        self.sim.set_now(self.clock)

    # Listrak

    @initialize(
        recipients=st.sets(st.integers(0, len(POOL) - 1), min_size=2),
        actions=st.lists(st.tuples(st.sampled_from(ACTIONS), st.integers(0, 99)), max_size=6),
        migrate=st.booleans(),
        kill=st.none() | st.integers(0, 12),
    )
    def history(
        self, recipients: set[int], actions: list[tuple[str, int]], migrate: bool, kill: int | None
    ) -> None:
        """Subscribers, a first message and its activity; then, for a team moving from
        Listrak's hosted source, that source's events of it and a baseline that adopts them."""
        for email in POOL:
            self.sim.subscribe(self.list_id, email)
        self.send(recipients, 1)
        for action, n in actions:
            self._act(action, n, n % 3, 0)
        if migrate:
            self._baseline(kill)

    @rule(recipients=st.sets(st.integers(0, len(POOL) - 1), min_size=1), hours=st.integers(0, 48))
    def send(self, recipients: set[int], hours: int) -> None:
        """A message sent to part of the list, with two tracked links."""
        self._advance(hours)
        emails = [e for e in self._subscribed() if POOL.index(e) in recipients]
        if not emails:
            return
        message_id = next(MESSAGE_IDS)
        self.sim.send_message(
            self.list_id,
            message_id,
            emails,
            subject=f"Offer {message_id}",
            campaign_id=CAMPAIGN[0],
        )
        for link_id, url in LINKS.items():
            self.sim.add_link(self.list_id, message_id, link_id, url)
        self.messages[message_id] = emails

    @rule(
        actions=st.lists(
            st.tuples(st.sampled_from(ACTIONS), st.integers(0, 99), st.integers(0, 2)),
            min_size=1,
            max_size=4,
        ),
        hours=st.integers(0, 72),
    )
    def act(self, actions: list[tuple[str, int, int]], hours: int) -> None:
        """Recipients open, click (often days after the open), bounce, complain and buy."""
        self._advance(hours)
        for action, n, amount in actions:
            self._act(action, n, amount, n)

    def _act(self, action: str, n: int, amount: int, pick: int) -> None:
        if not self.messages:
            return
        ids = sorted(self.messages)
        message_id = ids[pick % len(ids)]
        emails = self.messages[message_id]
        email = emails[n % len(emails)]
        if action == "click":
            self.sim.click(self.list_id, message_id, 1 + n % len(LINKS), email)
        elif action == "convert":
            self.first_seen.setdefault((CONVERTED, str(message_id), email), datetime.now(UTC))
            self.sim.convert(self.list_id, message_id, email, AMOUNTS[amount])
        elif action == "bounce":
            self.sim.bounce(self.list_id, message_id, email, f"reason {n % 2}")
        else:
            if action == "complain":
                self.first_seen.setdefault((SPAM, str(message_id), email), datetime.now(UTC))
            getattr(self.sim, action)(self.list_id, message_id, email)

    @rule(n=st.integers(0, len(POOL) - 1), hours=st.integers(0, 48))
    def unsubscribe(self, n: int, hours: int) -> None:
        """A subscriber leaves: an Unsubscribed event, once."""
        subscribed = self._subscribed()
        if subscribed:
            self._advance(hours)
            self.sim.unsubscribe(self.list_id, subscribed[n % len(subscribed)])

    def _subscribed(self) -> list[str]:
        with self.sim.lock:
            contacts = self.sim.get(self.list_id).contacts
            return [e for e in POOL if contacts[e].subscribed]

    # Runs

    @rule(
        kind=st.sampled_from(KINDS),
        listrak=st.sampled_from(LISTRAK),
        segment=st.sampled_from(SEGMENT),
        at=st.integers(0, 8),
        move=st.tuples(st.sampled_from(ACTIONS), st.integers(0, 99), st.integers(0, 2)),
        offset=st.booleans(),
        victim=st.integers(0, len(POOL) - 1),
        budget=st.sampled_from(BUDGETS),
    )
    def run(
        self,
        kind: str,
        listrak: str,
        segment: str,
        at: int,
        move: tuple[str, int, int],
        offset: bool,
        victim: int,
        budget: int | None,
    ) -> None:
        """A run while Listrak and Segment each do one thing."""
        self._listrak(listrak, at, move, offset)
        self._segment(segment, victim)
        self._run(kind, None, budget=budget)

    @rule(
        kind=st.sampled_from(KINDS),
        kill=st.integers(0, 12),
        activity=st.booleans(),
        segment=st.sampled_from(SEGMENT),
    )
    def killed_run(self, kind: str, kill: int, activity: bool, segment: str) -> None:
        """A run killed at a random transaction (mostly of its activity pass): nothing after
        it commits."""
        self._segment(segment, 0)
        self._run(kind, kill, activity=activity)

    def _listrak(self, listrak: str, at: int, move: tuple[str, int, int], offset: bool) -> None:
        faults = self.sim.faults
        if listrak == "no reporting":
            faults.refuse_reporting = 403
        elif listrak == "shift":
            faults.shift_activity, faults.offset_cursors = True, offset
            self.hiding = offset
            faults.on_activity_page = self._moving(at % 2, move)
        elif listrak != "healthy":
            faults.on_request = self._at_request(listrak, at)

    def _moving(self, at: int, move: tuple[str, int, int]) -> Callable[[int, int], None]:
        """Once a pass has read page `at` of a message, a row of it changes, and moves."""
        done = False

        def hook(message_id: int, page: int) -> None:
            nonlocal done
            if not done and page >= at:
                done = True
                self.clock += timedelta(minutes=1)
                self.sim.set_now(self.clock)
                action, n, amount = move
                self._act(action, n, amount, sorted(self.messages).index(message_id))

        return hook

    def _at_request(self, listrak: str, at: int) -> Callable[[str], None]:
        """At request `at` of the activity pass, whichever route it is: Listrak fails (once,
        within the retry, or past it), or a stop signal comes."""

        def hook(_path: str) -> None:
            if ARMED.requests is None:
                return
            ARMED.requests += 1
            if ARMED.requests - 1 != at:
                return
            if listrak == "stop":
                self._stop()
            elif listrak == "429":
                self.sim.faults.rate_limit_next(1 + at % 2, retry_after=0)
            else:
                self.sim.faults.fail_next(1 if listrak == "5xx" else 2, 503)

        return hook

    def _stop(self) -> None:
        """SIGTERM to this process, as systemd sends it: only while `sync` handles it."""
        if signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, signal.SIG_IGN, None):
            os.kill(os.getpid(), signal.SIGTERM)

    def _segment(self, segment: str, victim: int) -> None:
        faults = self.sink.faults
        if segment == "refuse one":
            faults.poison = {POOL[victim]}
        elif segment == "refuse all":
            faults.fail_next(10_000, status=400)
        elif segment == "lose answer":
            faults.lose_ack_next(10_000)
        elif segment == "outage":
            faults.outage = True
        elif segment == "5xx":
            faults.fail_next(1, status=500)

    def _run(
        self, kind: str, kill: int | None, *, activity: bool = False, budget: int | None = None
    ) -> int | None:
        before = self._truth()
        # A sync says ok only once it has read every row that held a fact when it started;
        # a row that offset paging hid while rows moved is read by the next pass instead
        # (the next ok sync, or the last, checks it).
        judged = kind == "sync" and not self.hiding
        if activity:
            ARMED.kill = kill
        else:
            KILL.left = kill
        try:
            code: int | None = self._cli(kind, budget)
        except Killed:
            code = None
        finally:
            KILL.left, KILL.dead = None, False
            ARMED.kill = ARMED.requests = None
            self._heal()
        self._check(code if judged else None, before)
        return code

    def _heal(self) -> None:
        self.sim.faults.reset()
        self.sink.faults.reset()
        self.hiding = False

    def _cli(self, kind: str, budget: int | None = None) -> int:
        since = (datetime.now(UTC) - timedelta(days=40)).date().isoformat()
        args = {
            "sync": ["sync"],
            "backfill": ["activity-backfill", "--since", since],
            "baseline": ["activity-baseline", "--since", since],
        }[kind]
        with contextlib.redirect_stdout(io.StringIO()):
            return run_cli(self._config(budget), *args)

    def _baseline(self, kill: int | None) -> None:
        """The hosted source has sent what Listrak holds; the baseline adopts it, and is run
        again until it says ok, as its outcome tells the operator."""
        self._other_source_sends()
        if self._run("baseline", kill) != 0:
            assert self._cli("baseline") == 0
            self._check(None, self._truth())

    def _other_source_sends(self) -> None:
        """Listrak's hosted source: every fact the sink does not hold yet, under its own ids."""
        truth, have = self._truth(), sent(self._tracks())
        batch = [self._track(f, at) for f, at in truth.facts.items() if f not in have.ids]
        for (email_id, who), total in truth.totals.items():
            missing = round(total - have.totals.get((email_id, who), 0.0), 2)
            if missing > 0:
                batch.append(self._track((CONVERTED, email_id, who), None, missing))
        if batch:
            answer = httpx.post(
                f"{self.sink.url}/v1/batch", json={"batch": batch}, auth=(self.sink.write_key, "")
            )
            assert answer.status_code == 200

    def _track(self, f: Fact, at: str | None, total: float = 0.0) -> dict[str, Any]:
        event = f[0]
        props: dict[str, Any] = {"list_id": str(self.list_id), "list_name": "Activity"}
        if event == UNSUBSCRIBED:
            who, at = f[1], f[2]
        else:
            who = f[3] if event == CLICKED else f[2]
            props["email_id"] = f[1]
        if event == CLICKED:
            props.update(link_id=f[2], link_url=LINKS[int(f[2])])
        if event == CONVERTED:
            props["order_total"] = total
        return {
            "type": "track",
            "event": event,
            "messageId": f"{OTHER}{'-'.join(f)}-{total}",
            "anonymousId": who,
            "timestamp": at or datetime.now(UTC).isoformat(timespec="milliseconds"),
            "properties": props,
            "context": {"traits": {"email": who}},
        }

    # What must hold

    def _tracks(self) -> list[dict[str, Any]]:
        return [m for m in self.sink.messages if m["type"] == "track"]

    def _truth(self) -> Truth:
        truth = Truth()
        with self.sim.lock:
            for message_id in self.messages:
                self._message_truth(truth, message_id)
            for key, contact in self.sim.get(self.list_id).contacts.items():
                date = contact.state.unsubscribe_date
                if not contact.subscribed and date is not None:
                    truth.facts[(UNSUBSCRIBED, key, str(_utc(date)))] = _utc(date)
        return truth

    def _message_truth(self, truth: Truth, message_id: int) -> None:
        msg, mid = self.sim.message(self.list_id, message_id), str(message_id)
        for key, row in msg.rows.items():
            acted = _utc(row.activity_date) or _utc(row.send_date)
            if row.open:
                truth.facts[(OPENED, mid, key)] = acted
            if row.bounce:
                truth.facts[(BOUNCED, mid, key)] = acted
            if row.abuse:
                truth.facts[(SPAM, mid, key)] = None
            if row.order_total > 0:
                truth.totals[(mid, key)] = row.order_total
        for link in msg.links.values():
            for email, date in link.clickers:
                at = str(_utc(date))
                truth.facts[(CLICKED, mid, str(link.link_id), email.lower(), at)] = at

    def _check(self, code: int | None, before: Truth) -> None:
        """After any run: one content per id, one id per fact, nothing Listrak does not
        imply, each event at its fact's time. After a sync that said ok: every fact that
        existed when it started is in the sink."""
        tracks = self._tracks()
        one_content_per_id(tracks)
        have, truth = sent(tracks), self._truth()
        twice = {f: ids for f, ids in have.ids.items() if len(ids) > 1}
        assert not twice, f"facts under two ids: {twice}"
        for m in tracks:
            self._right_event(m, truth)
        for row, total in have.totals.items():
            assert total <= truth.totals.get(row, 0.0) + 1e-6, (row, total, truth.totals)
        if code == 0:
            missing = [f for f in before.facts if f not in have.ids]
            assert not missing, f"an ok sync left facts unsent: {missing}"
            short = {
                row: (have.totals.get(row, 0.0), total)
                for row, total in before.totals.items()
                if have.totals.get(row, 0.0) < total - 1e-6
            }
            assert not short, f"an ok sync left conversions unsent: {short}"

    def _right_event(self, m: dict[str, Any], truth: Truth) -> None:
        f = fact_of(m)
        assert m["anonymousId"] == m["context"]["traits"]["email"] and m["anonymousId"] in POOL
        assert m["properties"]["list_id"] == str(self.list_id)
        if f[0] == CONVERTED:
            assert (f[1], f[2]) in truth.totals, f
            at = self.first_seen[(CONVERTED, f[1], f[2])]
        elif f[0] == SPAM:
            assert f in truth.facts, f
            at = self.first_seen[f]
        else:
            assert f in truth.facts, f"sent, but not a fact of Listrak: {f}"
            assert m["timestamp"] == truth.facts[f], (f, m["timestamp"])
            return
        if m["messageId"].startswith(OTHER):
            return
        # A fact without a time of its own takes the time it was first seen: after it was.
        moment = datetime.fromisoformat(m["timestamp"])
        assert at - timedelta(milliseconds=1) <= moment <= datetime.now(UTC), (f, moment, at)

    def teardown(self) -> None:
        """Listrak and Segment healthy again: a sync sends everything left and says ok, and
        the sink then holds exactly the truth."""
        self._heal()
        self.sim.set_now(None)
        code = self._cli("sync")
        assert code == 0
        truth = self._truth()
        self._check(code, truth)
        have = sent(self._tracks())
        assert {f for f in have.ids if f[0] != CONVERTED} == set(truth.facts)
        assert {row for row, t in have.totals.items() if t > 0} == set(truth.totals)


@pytest.mark.slow
def test_segment_holds_each_fact_listrak_implies_once(
    sim: ListrakSimulator, sink: SegmentSink, db_url: str, tmp_path: Path
) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    engine.dispose()
    original, passes = Transactions.begin, ActivityLedger.list_pass
    Transactions.begin = _dying(original)  # type: ignore[method-assign]
    ActivityLedger.list_pass = _arming(passes)  # type: ignore[method-assign]
    try:
        Activity.env = Env(sim, sink, db_url, tmp_path)
        run_state_machine_as_test(
            Activity,
            settings=settings(max_examples=10, stateful_step_count=10, database=example_database()),
        )
    finally:
        Transactions.begin = original  # type: ignore[method-assign]
        ActivityLedger.list_pass = passes  # type: ignore[method-assign]
