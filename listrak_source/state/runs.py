"""Run history, each list's scan progress, and the status read of a list."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from ..privacy import contact_ref
from ..records import DID_ITS_JOB, SUCCESS_STATUSES, ListState, RunKind, RunStatus, Waiting
from .rows import carrying_message
from .schema import list_state, members, rejects, runs
from .transactions import Transactions


class Runs:
    """Runs and list progress; every method is its own short transaction."""

    def __init__(self, tx: Transactions) -> None:
        self.tx = tx

    def start_run(
        self, list_id: int, kind: RunKind, started_at: datetime, *, full_scan: bool
    ) -> int:
        """Record a run as running and return its id."""
        with self.tx.begin() as conn:
            result = conn.execute(
                insert(runs).values(
                    list_id=list_id,
                    kind=kind,
                    full_scan=full_scan,
                    started_at=started_at,
                    status=RunStatus.RUNNING,
                )
            )
            return int(result.inserted_primary_key[0])  # type: ignore[index]

    def finish_run(
        self,
        run_id: int,
        status: RunStatus,
        finished_at: datetime,
        counts: Mapping[str, int],
        error: str | None = None,
        *,
        note: str | None = None,
        last_stamp: datetime | None = None,
    ) -> None:
        """Close a run with its outcome, counts, what it worked around, and the latest
        timestamp it gave a message."""
        values = {"error": error, "note": note, "last_stamp": last_stamp, **counts}
        with self.tx.begin() as conn:
            conn.execute(
                update(runs)
                .where(runs.c.id == run_id)
                .values(status=status, finished_at=finished_at, **values)
            )

    def fail_stale_runs(self, list_id: int, now: datetime) -> None:
        """Runs left 'running' by a killed process are closed as failed once we hold the list."""
        with self.tx.begin() as conn:
            conn.execute(
                update(runs)
                .where(runs.c.list_id == list_id, runs.c.status == RunStatus.RUNNING)
                .values(
                    status=RunStatus.FAILED,
                    finished_at=now,
                    error="process stopped before the run finished",
                )
            )

    def last_started(self, list_id: int) -> datetime | None:
        """When the list's newest run that did its job started, whoever ran it.

        A stopped, failed or killed run did not scan the list, so it must not make the
        list wait. Newest by id, not by start: a start recorded before the clock went back
        would otherwise stay the newest until the clock caught up.
        """
        with self.tx.read() as conn:
            return conn.execute(
                select(runs.c.started_at)
                .where(runs.c.list_id == list_id, runs.c.status.in_(DID_ITS_JOB))
                .order_by(runs.c.id.desc())
                .limit(1)
            ).scalar()

    def list_state(self, list_id: int) -> ListState:
        """When and by which run the list was last fully scanned, and its high-water mark."""
        c = list_state.c
        with self.tx.read() as conn:
            row = conn.execute(
                select(c.last_full_scan_at, c.high_water_mark, c.last_full_run).where(
                    c.list_id == list_id
                )
            ).first()
        if row is None:
            return ListState()
        mark = row.high_water_mark.replace(tzinfo=None) if row.high_water_mark else None
        return ListState(row.last_full_scan_at, mark, row.last_full_run)

    def save_list_state(self, list_id: int, state: ListState) -> None:
        """Record a completed scan's progress."""
        # The mark is Listrak's naive wall clock; the column wants an aware value, so it
        # is stored labelled UTC and the label is dropped again on the way out.
        mark = state.high_water_mark.replace(tzinfo=UTC) if state.high_water_mark else None
        values = {
            "last_full_scan_at": state.last_full_scan_at,
            "high_water_mark": mark,
            "last_full_run": state.last_full_run,
        }
        with self.tx.begin() as conn:
            updated = conn.execute(
                update(list_state).where(list_state.c.list_id == list_id).values(**values)
            ).rowcount
            if not updated:
                conn.execute(insert(list_state).values(list_id=list_id, **values))

    def status(self, list_id: int) -> dict[str, Any]:
        """Last run, pending and dead counts, and the newest dead rows with their errors."""
        with self.tx.read() as conn:
            last = (
                conn.execute(
                    select(runs)
                    .where(runs.c.list_id == list_id)
                    .order_by(runs.c.id.desc())
                    .limit(1)
                )
                .mappings()
                .first()
            )
            subscribed = conn.execute(
                select(func.count()).where(
                    members.c.list_id == list_id, members.c.desired_subscribed.is_(True)
                )
            ).scalar_one()
            pending, dead_count = _backlog(conn, list_id)
            waiting = _waiting(conn, list_id, 10) if pending else []
            dead = conn.execute(
                select(members.c.email_key, members.c.attempts, members.c.last_error)
                .where(*carrying_message(list_id), members.c.dead.is_(True))
                .order_by(members.c.email_key)
                .limit(20)
            ).all()
            skipped = conn.execute(
                select(rejects.c.email, rejects.c.reason)
                .where(
                    rejects.c.list_id == list_id, rejects.c.run_id == (last["id"] if last else -1)
                )
                .order_by(rejects.c.id)
                .limit(20)
            ).all()
        return {
            "list_id": list_id,
            "last_run": _run_dict(dict(last)) if last else None,
            "subscribed": int(subscribed),
            "pending": pending,
            "dead": dead_count,
            # Why pending rows wait, and when the first of each reason is due again.
            "waiting": [
                {"reason": w.reason, "rows": w.rows, "next_attempt_at": _iso(w.next_attempt_at)}
                for w in waiting
            ],
            # Contacts by reference, never by address: status output travels.
            "dead_rows": [
                {"contact": contact_ref(key), "attempts": a, "last_error": err}
                for key, a, err in dead
            ],
            "rejects": [
                {"contact": contact_ref(e) if e else None, "reason": r} for e, r in skipped
            ],
        }

    def contact(self, list_id: int, email: str) -> dict[str, Any]:
        """What the state holds for one address the operator supplied: its row, and why
        the list's scans last skipped it."""
        key = email.strip().lower()
        c = members.c
        with self.tx.read() as conn:
            row = (
                conn.execute(
                    select(
                        c.desired_subscribed,
                        c.sent_subscribed,
                        c.message_id,
                        c.dead,
                        c.attempts,
                        c.last_error,
                        c.next_attempt_at,
                        c.last_seen_run,
                    ).where(c.list_id == list_id, c.email_key == key)
                )
                .mappings()
                .first()
            )
            skipped = _last_skip(conn, list_id, key, row["last_seen_run"] if row else None)
        return {
            "list_id": list_id,
            "contact": contact_ref(key),
            "row": _lookup_row(dict(row)) if row else None,
            "skipped": {"reason": skipped.reason, "run_id": skipped.run_id} if skipped else None,
        }

    def backlog(self, list_id: int) -> tuple[int, int]:
        """(pending, dead) rows of a list; cheap, as it reads only rows that carry a message."""
        with self.tx.read() as conn:
            return _backlog(conn, list_id)

    def waiting(self, list_id: int, limit: int = 10) -> list[Waiting]:
        """Pending rows grouped by why they wait, the largest groups first."""
        with self.tx.read() as conn:
            return _waiting(conn, list_id, limit)

    def last_size(self, list_id: int) -> int:
        """Contacts the list's last complete full scan read; 0 before the first."""
        with self.tx.read() as conn:
            size = conn.execute(
                select(runs.c.scanned)
                .where(
                    runs.c.list_id == list_id,
                    runs.c.full_scan.is_(True),
                    runs.c.status.in_(sorted(SUCCESS_STATUSES)),
                )
                .order_by(runs.c.id.desc())
                .limit(1)
            ).scalar()
        return int(size or 0)

    def has_rows(self, list_id: int) -> bool:
        """Whether the state holds anything of the list: a first sync sends everyone as new."""
        return self.last_size(list_id) > 0 or self.status(list_id)["subscribed"] > 0

    def last_success(self, list_id: int) -> datetime | None:
        """When the list last finished a run without failures."""
        with self.tx.read() as conn:
            return conn.execute(
                select(func.max(runs.c.finished_at)).where(
                    runs.c.list_id == list_id, runs.c.status.in_(sorted(SUCCESS_STATUSES))
                )
            ).scalar()

    def history(self, list_id: int, limit: int) -> list[dict[str, Any]]:
        """The list's newest runs, newest first, JSON-ready."""
        with self.tx.read() as conn:
            rows = conn.execute(
                select(runs)
                .where(runs.c.list_id == list_id)
                .order_by(runs.c.id.desc())
                .limit(limit)
            ).mappings()
            return [_run_dict(dict(row)) for row in rows]

    def reserve_stamps(self, run_id: int, until: datetime) -> None:
        """Record that the run may stamp messages up to `until` (ListRun._reserve); its
        end records the latest it gave."""
        with self.tx.begin() as conn:
            conn.execute(update(runs).where(runs.c.id == run_id).values(last_stamp=until))

    def latest_moment(self) -> datetime | None:
        """The latest start, end or message stamp any run recorded: no message of those
        runs was stamped later (a run killed before it ended recorded, before using them,
        the stamps it gave ahead of its clock: ListRun._reserve). Every list's runs count,
        not only the list's own: a trait name one list gave up may be another's now, and
        Segment orders a profile's traits by stamp whichever list sent them."""
        c = runs.c
        latest = (func.max(c.started_at), func.max(c.finished_at), func.max(c.last_stamp))
        with self.tx.read() as conn:
            found = conn.execute(select(*latest)).one()
        moments = [_aware(m) for m in found]
        return max((m for m in moments if m is not None), default=None)

    def last_full(self, list_id: int, *, before: int) -> tuple[int, RunStatus] | None:
        """(id, outcome) of the list's last full run before run `before`; None if none."""
        c = runs.c
        query = (
            select(c.id, c.status)
            .where(c.list_id == list_id, c.full_scan.is_(True), c.id < before)
            .order_by(c.id.desc())
            .limit(1)
        )
        with self.tx.read() as conn:
            found = conn.execute(query).first()
        return None if found is None else (int(found[0]), RunStatus(found[1]))

    def last_ok(self, list_id: int) -> datetime | None:
        """When the list's last run with everything done (`ok`) finished."""
        with self.tx.read() as conn:
            return _aware(
                conn.execute(
                    select(func.max(runs.c.finished_at)).where(
                        runs.c.list_id == list_id, runs.c.status == RunStatus.OK
                    )
                ).scalar()
            )

    def known_lists(self) -> list[int]:
        """Every list the state has runs of, configured or not (rows come only from runs)."""
        with self.tx.read() as conn:
            return sorted(int(i) for i in conn.execute(select(runs.c.list_id).distinct()).scalars())


def _backlog(conn: Connection, list_id: int) -> tuple[int, int]:
    pending, dead = conn.execute(
        select(
            func.count().filter(members.c.dead.is_(False)),
            func.count().filter(members.c.dead.is_(True)),
        ).where(*carrying_message(list_id))
    ).one()
    return int(pending), int(dead)


def _waiting(conn: Connection, list_id: int, limit: int) -> list[Waiting]:
    c = members.c
    rows = conn.execute(
        select(c.last_error, func.count(), func.min(c.next_attempt_at))
        .where(*carrying_message(list_id), c.dead.is_(False))
        .group_by(c.last_error)
        .order_by(func.count().desc())
        .limit(limit)
    ).all()
    return [Waiting(error or "not yet sent", int(n), _aware(when)) for error, n, when in rows]


def _last_skip(conn: Connection, list_id: int, key: str, seen_in: int | None) -> Any:
    """Why the list's scans last skipped the contact, unless it is old news: a later scan
    read the contact, or a later full scan of the list no longer skipped it."""
    state = conn.execute(
        select(list_state.c.last_full_run).where(list_state.c.list_id == list_id)
    ).scalar()
    newer = max(seen_in or 0, state or 0)
    return conn.execute(
        select(rejects.c.reason, rejects.c.run_id)
        .where(
            rejects.c.list_id == list_id,
            func.lower(rejects.c.email) == key,
            rejects.c.run_id >= newer,
        )
        .order_by(rejects.c.id.desc())
        .limit(1)
    ).first()


def _lookup_row(row: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["next_attempt_at"] = _iso(_aware(out["next_attempt_at"]))
    return out


def _aware(moment: datetime | None) -> datetime | None:
    """An aggregate bypasses the column type, so SQLite hands back a naive UTC value."""
    if moment is None:
        return None
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _run_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for key in ("started_at", "finished_at"):
        if out.get(key) is not None:
            out[key] = out[key].isoformat()
    return out
