"""The state as one object: members, outbox, runs, traits, audiences, activity, and the locks."""

from __future__ import annotations

import functools

from sqlalchemy import Connection, Engine

from .activity import ActivityLedger
from .audience_reports import AudienceReports
from .audiences import Audiences
from .locks import Locks, list_locks
from .members import Members
from .outbox import Outbox
from .runs import Runs
from .traits import Traits
from .transactions import Transactions


class Database:
    """Every table the worker keeps, each behind its own part.

    Over the engine each call is its own transaction; over a dry run's connection every
    part shares that connection, whose transaction the caller rolls back.
    """

    def __init__(self, engine: Engine, *, connection: Connection | None = None) -> None:
        self.engine = engine
        tx = self._tx = Transactions(engine, connection)
        self.runs = Runs(tx)
        # A scan's set of seen keys is sized for the list's last full scan from the start.
        self.members = Members(tx, size_hint=self.runs.last_size)
        self.outbox = Outbox(tx)
        self.traits = Traits(tx)
        self.audiences = Audiences(tx)
        self.audience_reports = AudienceReports(tx)
        self.activity = ActivityLedger(tx)

    @property
    def writes_in_parallel(self) -> bool:
        """Whether a thread beside the scan may write while the scan writes (PostgreSQL)."""
        return self._tx.writes_in_parallel

    @functools.cached_property
    def locks(self) -> Locks:
        """Per-list locks, held on their own connections or files, outside any transaction."""
        return list_locks(self.engine)
