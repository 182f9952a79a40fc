"""What the activity pipeline needs of Listrak and of a pass in hand; no adapter is imported."""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any, Protocol, runtime_checkable

from ..config import ListSettings
from ..delivery.context import ListRun, RunContext
from ..delivery.courier import Courier
from ..records import Page
from ..tracking.records import (
    ActivityOutcome,
    ActivityPage,
    Clicker,
    Link,
    MessageInfo,
    TrackEvent,
)


@runtime_checkable
class ActivitySource(Protocol):
    """The Listrak routes an activity pass reads."""

    def get_list(self, list_id: int) -> dict[str, Any]: ...

    def iter_messages(
        self, list_id: int, *, start: datetime | None = None, end: datetime | None = None
    ) -> Iterator[MessageInfo]: ...

    def get_message_details(self, list_id: int, message_id: int) -> dict[str, Any]: ...

    def get_campaigns(self, list_id: int) -> dict[int, str]: ...

    def iter_activity(
        self, list_id: int, message_id: int, *, page_size: int = 5000, acted_only: bool = False
    ) -> Iterator[ActivityPage]: ...

    def get_links(self, list_id: int, message_id: int) -> list[Link]: ...

    def iter_clickers(
        self, list_id: int, message_id: int, link_id: int, *, start: datetime | None
    ) -> Iterator[list[Clicker]]: ...

    def iter_pages(
        self,
        list_id: int,
        *,
        subscribed: bool = True,
        page_size: int = 5000,
        start_date: datetime | None = None,
    ) -> Iterator[Page]: ...


class Mode(enum.StrEnum):
    """What a pass is for: a sync's re-read, a backfill's sends, a baseline's adoption."""

    SYNC = "sync"
    BACKFILL = "backfill"
    BASELINE = "baseline"


class BudgetSpent(Exception):
    """The pass has made every request its budget allows; the rest waits for the next."""


@dataclass
class Pass:
    """One list's activity pass: what it reads with, from when, and what it did so far."""

    run: ListRun
    source: ActivitySource
    mode: Mode
    since: datetime  # aware: messages sent from then on are read
    where: tzinfo
    key_hash: str
    outcome: ActivityOutcome
    common: dict[str, Any] = field(default_factory=dict)  # the list's properties
    requests: int = 0
    # Posts each page's new events while the pass reads on (none in a baseline).
    courier: Courier[TrackEvent] | None = None

    @property
    def ctx(self) -> RunContext:
        """The run context the pass was handed."""
        return self.run.ctx

    @property
    def cfg(self) -> ListSettings:
        """The list's settings."""
        return self.run.cfg

    def spend(self) -> None:
        """Count one request; a sync's pass stops at `[activity] max_requests` (a backfill or a
        baseline reads on: it is asked for once, and resumes where it stopped)."""
        limit = self.ctx.settings.activity.max_requests
        if self.mode == Mode.SYNC and self.requests >= limit:
            raise BudgetSpent
        if self.ctx.stop.is_set():
            # A stop signal: what was read is recorded; the rest waits like a spent budget.
            raise BudgetSpent
        self.requests += 1
