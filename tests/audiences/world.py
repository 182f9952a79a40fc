"""A list with two audience check boxes on the simulator, a state database, and the steps
of the audience direction (events in, sync, push, read back) with time that never waits."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select

from listrak_source.audiences.push import PushContext, push_list
from listrak_source.cli.wiring import context_over
from listrak_source.config import Settings
from listrak_source.engage.ingest import collect
from listrak_source.engage.records import CommitResult, PushResult
from listrak_source.engage.settings import build_mappings
from listrak_source.listrak import ListrakClient
from listrak_source.simulator import ListrakSimulator, SegmentSink
from listrak_source.simulator.webhooks import audience_track
from listrak_source.state import Database
from listrak_source.state.schema import audience_values
from listrak_source.subscribers.sync import sync_list

from ..listrak.fixtures import FakeTime

LIST = 1001
VIP, LAPSED = 901, 902
T0 = datetime(2024, 5, 6, 9, 30, tzinfo=UTC)
AUDIENCES = [
    {"key": "vip", "list_id": LIST, "field_id": VIP},
    {"key": "lapsed", "list_id": LIST, "field_id": LAPSED},
]


def make_settings(
    sim: ListrakSimulator, sink: SegmentSink, db_url: str, **sections: Any
) -> Settings:
    """Settings on loopback, with the two audiences and no waiting for imports."""
    values: dict[str, Any] = {
        "listrak": {
            "client_id": sim.client_id,
            "client_secret": sim.client_secret,
            "base_url": sim.base_url,
            "auth_url": sim.auth_url,
            "requests_per_second": 1000,
        },
        "segment": {"write_key": sink.write_key, "host": sink.url, "requests_per_second": 1000},
        "database": {"url": db_url},
        "lists": [{"id": LIST}],
        "audiences": AUDIENCES,
        "push": {"apply_grace": "60s"},
    }
    values.update(sections)
    return Settings.from_values(**values)


def prepare_list(sim: ListrakSimulator, subscribers: int = 20) -> list[str]:
    """The list, its two check-box fields, and some subscribers; returns their emails."""
    sim.add_list(LIST, "Main")
    sim.add_field(LIST, VIP, "CheckBox", "VIP")
    sim.add_field(LIST, LAPSED, "CheckBox", "Lapsed")
    return sim.seed(LIST, subscribers, seed=3)


@dataclass
class World:
    """The audience direction over one simulator and one database, on a clock of its own."""

    sim: ListrakSimulator
    settings: Settings
    engine: Engine
    now: datetime = T0 + timedelta(days=1)
    time: FakeTime = field(default_factory=FakeTime)

    @property
    def db(self) -> Database:
        return Database(self.engine)

    def clock(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def send(self, *events: dict[str, Any]) -> CommitResult:
        """Commit events as the receiver does."""
        ingest = collect(list(events), build_mappings(self.settings.audiences), self.now)
        return self.db.audiences.commit(ingest, self.now)

    def sync(self) -> None:
        """One subscriber sync: members, and the read-back of the audience fields."""
        with context_over(self.settings, self.engine) as ctx:
            sync_list(replace(ctx, clock=self.clock), self.settings.lists[0])

    @contextmanager
    def client(self) -> Iterator[ListrakClient]:
        s = self.settings.listrak
        with ListrakClient(
            client_id=s.client_id,
            client_secret=s.client_secret.get_secret_value(),
            base_url=s.base_url,
            auth_url=s.auth_url,
            requests_per_second=float("inf"),
            sleep=self.time.sleep,
            clock=self.time.clock,
            random=lambda: 1.0,
        ) as client:
            yield client

    def push(self, **options: Any) -> PushResult:
        """One push of the list through a real client that never really sleeps."""
        with self.client() as client:
            ctx = PushContext(self.settings, self.db, client, clock=self.clock)
            return push_list(ctx, LIST, **options)

    def boxes(self, field_id: int = VIP) -> set[str]:
        """Lower-cased emails whose box Listrak holds checked, once every import applied."""
        self.sim.apply_imports()
        with self.sim.lock:
            contacts = self.sim.get(LIST).contacts
            return {k for k, c in contacts.items() if any(f[0] == field_id for f in c.fields)}

    def rows(self) -> dict[tuple[int, str], dict[str, Any]]:
        """audience_values by (field, email key)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(audience_values)).mappings()
            return {(r["field_id"], r["email_key"]): dict(r) for r in rows}


def event(
    email: str,
    member: bool,
    seconds: float = 0,
    *,
    key: str = "vip",
    message_id: str | None = None,
    identify: bool = False,
) -> dict[str, Any]:
    """An Engage audience event at T0 + seconds."""
    when = T0 + timedelta(seconds=seconds)
    if identify:
        from listrak_source.simulator.webhooks import audience_identify

        return audience_identify(key, email, member, timestamp=when, message_id=message_id)
    return audience_track(key, email, member, timestamp=when, message_id=message_id)


def bodies(sim: ListrakSimulator, since: int = 0) -> list[list[dict[str, Any]]]:
    """The bodies the bulk route accepted, in order."""
    return [r.body for r in sim.bulk_requests[since:] if r.status == 201]


def emails_in(requests: Sequence[list[dict[str, Any]]]) -> list[str]:
    return [item["emailAddress"].lower() for body in requests for item in body]
