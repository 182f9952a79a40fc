"""The driver's side of a benchmark: simulator, sink, their data, a database and a config."""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self

from sqlalchemy import create_engine, text

from listrak_source.simulator import ListrakSimulator, SegmentSink

if TYPE_CHECKING:
    from listrak_source.simulator._store import PageQuery

LIST_ID = 1001
FIELD_ID = 678
FIELD_RATIO = 0.5
TRAIT = f"Listrak_list_{LIST_ID}"
# Listrak's published 2 requests/s would by itself hold a 1 M scan (200 pages of 5,000)
# at 100 s; the benchmark measures the worker, so the pace is lifted as in the e2e tests.
REQUESTS_PER_SECOND = 1000
# The churn case's mix, as shares of the subscribed contacts; they add up to 1 %.
UNSUBSCRIBE_SHARE = 0.004
NEW_SHARE = 0.003
FIELD_SHARE = 0.003
# The incremental case: this many changes, polled with full_scan_every set.
INCREMENTAL_CHANGES = 1000


@dataclass(frozen=True, slots=True)
class Expected:
    """The identify one contact should produce: its email as sent, the trait, the userId."""

    email: str
    subscribed: bool
    user_id: str | None


class TimedSimulator(ListrakSimulator):
    """Notes when each Contact page was built, so the worker's time between pages shows."""

    def __init__(self) -> None:
        super().__init__()
        self.page_times: list[tuple[float, float]] = []

    def page(self, list_id: int, q: PageQuery) -> tuple[bytes, int | None, int]:
        """The simulator's page, timed on the driver's clock."""
        started = time.perf_counter()
        try:
            return super().page(list_id, q)
        finally:
            self.page_times.append((started, time.perf_counter()))


class Database:
    """A fresh SQLite file, or a fresh schema on a Postgres server, dropped at the end."""

    def __init__(self, folder: Path, postgres: str | None, name: str = "state.db") -> None:
        self._server = postgres
        self._schema = f"bench_{uuid.uuid4().hex[:12]}"
        self._file = folder / name
        if postgres is None:
            self.url = f"sqlite:///{self._file}"
            return
        self._admin("CREATE SCHEMA")
        # search_path keeps every table of the run in its own schema, as the tests do.
        sep = "&" if "?" in postgres else "?"
        self.url = f"{postgres}{sep}options=-csearch_path%3D{self._schema}"

    def drop(self) -> None:
        """Remove the Postgres schema, or the SQLite file and its journals."""
        if self._server is not None:
            self._admin("DROP SCHEMA IF EXISTS", " CASCADE")
            return
        for suffix in ("", "-wal", "-shm", "-journal"):
            self._file.with_name(self._file.name + suffix).unlink(missing_ok=True)

    def _admin(self, verb: str, tail: str = "") -> None:
        assert self._server is not None
        engine = create_engine(self._server, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text(f'{verb} "{self._schema}"{tail}'))
        finally:
            engine.dispose()


class World:
    """One list of `size` contacts served on loopback, and the config that points at it."""

    def __init__(self, size: int, folder: Path, *, postgres: str | None, seed: int = 0) -> None:
        self.size = size
        self.folder = folder
        self.rng = random.Random(seed)
        self.sim = TimedSimulator()
        self.sink = SegmentSink()
        self.sim.add_list(LIST_ID, "Bench", [FIELD_ID])
        # Real lists grew over years; contacts all dated "now" would sit inside every
        # incremental poll's overlap window and make it re-read the whole list.
        self.sim.set_now(datetime.now(UTC) - timedelta(days=30))
        self.sim.seed(LIST_ID, size, field_id=FIELD_ID, field_ratio=FIELD_RATIO, seed=seed)
        self.sim.set_now(None)
        self.postgres = postgres
        self.db = Database(folder, postgres)
        self.databases = 1
        self.churns = 0

    def __enter__(self) -> Self:
        self.sim.start()
        self.sink.start()
        self._write_configs()
        return self

    def _write_configs(self) -> None:
        self.config = write_config(self.folder / "config.toml", self.sim, self.sink, self.db.url)
        self.incremental_config = write_config(
            self.folder / "incremental.toml",
            self.sim,
            self.sink,
            self.db.url,
            extra='full_scan_every = "24h"\n',
        )

    def fresh_database(self) -> None:
        """An empty database in place of the synced one, so a first sync can run again."""
        self.db.drop()
        self.databases += 1
        self.db = Database(self.folder, self.postgres, f"state-{self.databases}.db")
        self._write_configs()

    def floor_arguments(self, *, scan_only: bool) -> list[str]:
        """`python -m bench.floor`'s arguments for this list, simulator and sink."""
        arguments = [
            *("--base-url", self.sim.base_url, "--auth-url", self.sim.auth_url),
            *("--client-id", self.sim.client_id, "--client-secret", self.sim.client_secret),
            *("--list-id", str(LIST_ID), "--field-id", str(FIELD_ID)),
            *("--sink", self.sink.url, "--write-key", self.sink.write_key),
        ]
        return [*arguments, "--scan-only"] if scan_only else arguments

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.sim.stop()
        self.sink.stop()
        self.db.drop()

    def expect_everyone(self) -> dict[str, Expected]:
        """A first sync sends every subscribed contact as subscribed."""
        truth = self.sim.truth(LIST_ID, FIELD_ID)
        return {
            key: Expected(str(v["email"]), True, _text_or_none(v["user_id"]))
            for key, v in truth.items()
        }

    def churn(self) -> dict[str, Expected]:
        """Unsubscribe, add and re-field 1 % in all; exactly these must be sent next."""
        before = self.sim.truth(LIST_ID, FIELD_ID)
        n = len(before)
        unsub_n, field_n = _share(n, UNSUBSCRIBE_SHARE), _share(n, FIELD_SHARE)
        picked = self.rng.sample(list(before), unsub_n + field_n)
        self.churns += 1
        expected: dict[str, Expected] = {}
        for key in picked[:unsub_n]:
            self.sim.unsubscribe(LIST_ID, key)
            # The removal carries the last userId so it lands on the same Segment profile.
            old = _text_or_none(before[key]["user_id"])
            expected[key] = Expected(str(before[key]["email"]), False, old)
        for i, key in enumerate(picked[unsub_n:]):
            value = f"changed-{self.churns}-{i:07d}"
            self.sim.set_field(LIST_ID, key, FIELD_ID, value)
            expected[key] = Expected(str(before[key]["email"]), True, value)
        expected.update(self._subscribe_new(_share(n, NEW_SHARE)))
        return expected

    def incremental_changes(self, count: int = INCREMENTAL_CHANGES) -> dict[str, Expected]:
        """Three hours on, half unsubscribes and half new subscribers: what polling can see."""
        self.sim.advance(timedelta(hours=3))
        before = self.sim.truth(LIST_ID, FIELD_ID)
        self.churns += 1
        expected: dict[str, Expected] = {}
        for key in self.rng.sample(list(before), count // 2):
            self.sim.unsubscribe(LIST_ID, key)
            old = _text_or_none(before[key]["user_id"])
            expected[key] = Expected(str(before[key]["email"]), False, old)
        expected.update(self._subscribe_new(count - count // 2))
        return expected

    def _subscribe_new(self, count: int) -> dict[str, Expected]:
        added: dict[str, Expected] = {}
        for i in range(count):
            email = f"New{self.churns}-{i:07d}@Example.org"
            value = f"new-{self.churns}-{i:07d}" if i % 2 == 0 else None
            self.sim.subscribe(LIST_ID, email, None if value is None else {FIELD_ID: value})
            added[email.lower()] = Expected(email, True, value)
        return added


def _share(n: int, share: float) -> int:
    return max(1, round(n * share))


def _text_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def write_config(
    path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str, *, extra: str = ""
) -> Path:
    """A config.toml with every URL on loopback and the pace lifted."""
    path.write_text(
        f"""[listrak]
client_id = "{sim.client_id}"
client_secret = "{sim.client_secret}"
base_url = "{sim.base_url}"
auth_url = "{sim.auth_url}"
requests_per_second = {REQUESTS_PER_SECOND}

[segment]
write_key = "{sink.write_key}"
host = "{sink.url}"

[database]
url = "{db_url}"

[[lists]]
id = {LIST_ID}
user_id_field = {FIELD_ID}
{extra}"""
    )
    return path
