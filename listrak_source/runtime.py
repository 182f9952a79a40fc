"""What a run is handed (Runtime) and what it gives back (RunResult)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from .config import Settings
from .ledger import Ledger
from .models import Page
from .segment import Emitter
from .store import Store

COUNT_FIELDS = (
    "scanned",
    "subscribed",
    "unsubscribed",
    "user_id_changed",
    "rejected",
    "delivered",
    "failed",
)


class PageSource(Protocol):
    """The part of the Listrak client a run needs."""

    def iter_pages(
        self,
        list_id: int,
        *,
        subscribed: bool = True,
        field_ids: Sequence[int] = (),
        page_size: int = 5000,
        start_date: datetime | None = None,
        use_original_subscribe_date: bool | None = None,
    ) -> Iterator[Page]: ...


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _uuid() -> str:
    return str(uuid.uuid4())


@dataclass
class Runtime:
    """Everything a run touches, wired by the CLI; tests hand in their own clock and ids."""

    settings: Settings
    store: Store
    ledger: Ledger | None  # None for a dry run: no lease, no run history
    listrak: PageSource
    emitter: Emitter
    holder: str
    clock: Callable[[], datetime] = _utcnow
    new_id: Callable[[], str] = _uuid
    stop: threading.Event = field(default_factory=threading.Event)
    on_progress: Callable[[str, int], None] | None = None
    # Called after each stored page; a run uses it to start parallel delivery.
    after_page: Callable[[RunResult], None] | None = None


@dataclass
class RunResult:
    """The outcome of one run, as stored in `runs` and shown by status and metrics."""

    list_id: int
    kind: str
    started_at: datetime
    run_id: int = 0
    status: str = "running"
    finished_at: datetime | None = None
    error: str | None = None
    exit_code: int = 0
    scanned: int = 0
    subscribed: int = 0
    unsubscribed: int = 0
    user_id_changed: int = 0
    rejected: int = 0
    delivered: int = 0
    failed: int = 0
    full_scan: bool = True
    dead: int = 0
    pending: int = 0

    def counts(self) -> dict[str, int]:
        """The counters stored with the run."""
        return {name: getattr(self, name) for name in COUNT_FIELDS}

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form for status --json and logs."""
        out = asdict(self)
        del out["exit_code"]
        for key in ("started_at", "finished_at"):
            out[key] = out[key].isoformat() if out[key] else None
        return out
