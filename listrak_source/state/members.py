"""The scan side of the members table: a page's rows, the sweep, backfill's re-queue.

Each public method is one transaction. A page is read, and only what changed is written:
the keys a scan has seen are kept in memory (state/seen.py), and the sweep takes the
list's subscribed rows less those.
"""

from __future__ import annotations

import heapq
import logging
import threading
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Connection,
    case,
    update,
)
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from ..records import Change, PageDiff, PageKeys, Stored, subscription_mark
from . import page_sql
from .ahead import Ahead, Cancelled
from .engine import describe_db_error
from .locks import HeldLock
from .rows import chunks, listed, one_of, renew_keys, requeue_subscribed
from .schema import members
from .transactions import Transactions

if TYPE_CHECKING:
    # numpy loads with the first scan: `status` and `check` never need it.
    from .digests import DigestIndex
    from .seen import SeenKeys

    # The marks of the rows found by them, the digest table of the others, and how many
    # rows were read.
    _Current = tuple[SeenKeys, DigestIndex | None, int]

log = logging.getLogger(__name__)

# A scan's page from which unchanged contacts are found by their marks (see _unchanged),
# unless it was told it is a pass over the whole list (see whole_pass).
_CURRENT_FROM_PAGE = 3


@dataclass(slots=True)
class _Scan:
    """What one run's scan has stored so far."""

    run_id: int
    seen: SeenKeys
    # How many of the seen keys have desired-subscribed rows: the list's subscribed rows
    # less these are the ones the scan missed, counted without reading them.
    subscribed: int = 0
    # New rows the scan stored: whether the planner must learn the list's size again.
    inserted: int = 0
    pages: int = 0
    # The page from which the scan finds unchanged contacts by their marks and digests.
    current_from: int = _CURRENT_FROM_PAGE
    # The subscription marks of the list's desired-subscribed rows, read at the page
    # `current_from` names (see Members._unchanged).
    current: SeenKeys | None = None
    # The list had no row when the scan began: every row is then one this scan stored,
    # of a key it saw before (a first sync reads no row of its own pages).
    fresh: bool = False
    # Keys whose row this scan unsubscribed: not seen (only subscribed contacts are), so a
    # later page may hold them again, and their mark may be older than their row.
    dropped: set[str] = field(default_factory=set)
    # The same keys' hashes, as the seen set takes them.
    dropped_codes: set[int] = field(default_factory=set)
    # The list's desired-subscribed rows that carry a digest, read with `current` (which
    # then holds the marks of the others only).
    known: DigestIndex | None = None
    # How many desired-subscribed rows the list has now, where known: counted by the read
    # of `current`, and kept by each write this scan makes after it (see `_count_writes`).
    # The sweep's count of the unseen then reads no row. Unknown (None) when the scan
    # wrote rows before it had the read's result (a read begun ahead may or may not
    # include them) or removed unseen rows since.
    rows: int | None = None
    # Whether the scan has written a row of the list.
    wrote: bool = False
    # The read of `current` and `known`, begun on a thread of its own (see read_ahead),
    # and what it was asked for: (user_ids, digests).
    ahead: Ahead[_Current] | None = None
    ahead_for: tuple[bool, bool] = (False, False)
    # The keys the run's current pass has seen, from its second pass on (see `begin_pass`):
    # a key twice in one pass is a duplicate, and one a later pass meets again is news.
    pass_seen: SeenKeys | None = None


class Members:
    """What the scan writes: new desired values and their message ids, rejects; and the
    keys each list's running scan has seen."""

    def __init__(self, tx: Transactions, size_hint: Callable[[int], int] | None = None) -> None:
        self.tx = tx
        # Rows inserted since the planner last learnt the table's size, and that size.
        self._grown = 0
        self._known = 0
        # list id -> the scan of its running run.
        self._scans: dict[int, _Scan] = {}
        self._size_hint = size_hint or (lambda _list_id: 0)
        # Whether a pass over a whole list reads its rows on a thread of its own, beside
        # its first request (read_ahead): on PostgreSQL, where that read is the server's
        # work. SQLite's is the worker's own CPU, which on two cores only moved time from
        # the wait for the read to the pages beside it, and a second connection's page
        # cache cost the worker 10-25 MB more at 1 M; nor is a dry run's one connection
        # for two threads.
        self.reads_ahead = tx.writes_in_parallel

    def save_page(
        self,
        list_id: int,
        run_id: int,
        keys: PageKeys,
        differ: Callable[[Mapping[str, Stored], Collection[str]], PageDiff],
        detected_at: datetime,
        *,
        posting: bool = False,
        recognizing: bool = False,
        lock: HeldLock | None = None,
        verify_unwritten: bool = False,
    ) -> PageDiff:
        """Read the page's rows, diff them, and write the changes with their message ids,
        in one transaction: together or not at all. Its subscribed contacts count as seen
        by the run once that transaction is committed; a page with no change writes nothing.

        `differ` is given the stored rows and the keys of contacts known unchanged, which
        it leaves out: their rows are not read. `posting`: the changes go to Segment as soon
        as this commits, so their rows are in doubt from now on (see members.in_doubt),
        before anything is posted. The page's contacts recognized by their digests are not
        in it: `take` counted them as seen. `recognizing`: the scan looks contacts up by
        digest, so only rows without a digest are found by their marks. `lock`: the page's
        writes are made only while it is held, and a page that writes nothing checks it too
        when `verify_unwritten` or the lock is due a check.
        """
        scan = self._scan(list_id, run_id)
        codes = scan.seen.codes(keys.subscribed)
        earlier = self._earlier(scan.seen, keys, codes)
        in_pass = scan.pass_seen
        pass_codes = [] if in_pass is None else in_pass.codes(keys.subscribed)
        repeated = earlier if in_pass is None else self._earlier(in_pass, keys, pass_codes)
        same = self._unchanged(scan, list_id, keys, earlier, recognizing=recognizing)
        wanted = _to_read(scan, keys, earlier, same)
        with _lost_lock_named(lock), self.tx.read_then_write() as conn:
            stored = self._load(conn, list_id, run_id, wanted, repeated)
            page = differ(stored, same)
            writes = page_sql.PageWrites(conn)
            self._record(writes, list_id, run_id, page, detected_at, posting=posting)
            page_sql.stamp_digests(writes, list_id, _stamps(keys, stored, same, earlier, page))
            if writes:
                writes.flush(lock)
            elif lock is not None and (verify_unwritten or lock.due()):
                lock.verify()
        scan.seen.insert(codes)
        if in_pass is not None:
            in_pass.insert(pass_codes)
        was, now = _subscribed_rows(stored, page.changes)
        _count_writes(scan, page.changes, was, now)
        # Seen subscribed by an earlier pass, unsubscribed by this one: no longer counted.
        scan.subscribed -= len((earlier - repeated) & was - now)
        dropped = [c.key for c in page.changes if not c.subscribed]
        scan.dropped.update(dropped)
        scan.dropped_codes.update(scan.seen.codes(dropped))
        scan.subscribed += len(same)
        scan.subscribed += _newly_subscribed(keys.subscribed, was, now, earlier)
        inserted = sum(1 for c in page.changes if c.is_new)
        scan.inserted += inserted
        self._track_growth(inserted)
        return page

    def _unchanged(
        self, scan: _Scan, list_id: int, keys: PageKeys, earlier: set[str], *, recognizing: bool
    ) -> frozenset[str]:
        """The page's subscribed contacts whose stored row says what Listrak says now.

        Most of a re-sync's contacts: found by their mark in the scan's set, they are
        neither read nor diffed. The set is one read of the list's subscribed rows, taken at
        the first page of a pass over the whole list (`whole_pass`) and at any other scan's
        third page, so a run of a page or two (an incremental one) never pays for it; on
        a pass over the whole list it may be begun beside the first request (`read_ahead`).
        A key this scan saw before, or twice in the page, or also unsubscribed in it, goes
        the stored rows' way, where the diff refuses the duplicate; so does one whose row
        this scan has unsubscribed since.
        """
        scan.pages += 1
        if keys.marks is None or scan.fresh or scan.pages < scan.current_from:
            return frozenset()  # on a fresh list every stored row is one seen earlier
        current = self._current(scan, list_id, user_ids=keys.user_ids, digests=recognizing)
        marked = [(k, m) for k, m in zip(keys.subscribed, keys.marks, strict=True) if m]
        hits = current.present(current.codes(m for _, m in marked))
        same = {k for (k, _), hit in zip(marked, hits, strict=True) if hit}
        if len(set(keys.subscribed)) != len(keys.subscribed):
            same -= {k for k, n in Counter(keys.subscribed).items() if n > 1}
        return frozenset(same - earlier - scan.dropped - set(keys.unsubscribed))

    def recognize(
        self, list_id: int, run_id: int, digests: Sequence[int], *, user_ids: bool
    ) -> list[int]:
        """For each digest of a page's contacts, the hash of the key whose row holds it, or
        0: the contact is decoded and diffed. So is one whose row this scan unsubscribed,
        or that the page holds twice, as `_unchanged` would have it; one seen before is
        found by `take`. The digests are read with the marks (see `_unchanged`); `user_ids`
        as in PageKeys."""
        scan = self._scan(list_id, run_id)
        if not self.recognizes(list_id, run_id):
            return [0] * len(digests)
        self._current(scan, list_id, user_ids=user_ids, digests=True)
        if scan.known is None:  # the marks were read first, without the digests
            return [0] * len(digests)
        codes = scan.known.find(digests)
        refused = {code for code, n in Counter(codes).items() if n > 1} | scan.dropped_codes
        return [0 if code in refused else code for code in codes] if refused else codes

    def recognizes(self, list_id: int, run_id: int) -> bool:
        """Whether `recognize` looks digests up for the run's next page; asked from the
        reader thread, so it reads only, and may answer no a page late (the page is then
        decoded, as every page may be)."""
        scan = self._scans.get(list_id)
        return (
            scan is not None
            and scan.run_id == run_id
            and not scan.fresh
            and scan.pages + 1 >= scan.current_from
        )

    def take(self, list_id: int, run_id: int, codes: Sequence[int]) -> list[bool]:
        """Count the keys of contacts recognized unchanged as seen by the scan now; for
        each, False if the scan saw it before (the contact is then decoded after all, and
        the diff refuses it as the duplicate it is). Nothing is written for them, so they
        need no transaction to be committed first. Each new one is a subscribed row seen,
        counted here as the seen set takes it: the two agree even when the page fails to
        store after this, and `count_unseen` says what `unseen` names."""
        scan = self._scan(list_id, run_id)
        new = scan.seen.insert(codes)
        scan.subscribed += sum(new)
        return new

    def codes_of(self, list_id: int, run_id: int, keys: Sequence[str]) -> list[int]:
        """The keys' hashes as `recognize` answers them."""
        return self._scan(list_id, run_id).seen.codes(keys)

    def begin_pass(self, list_id: int, run_id: int) -> None:
        """The run begins another pass over the list (an incremental run's Unsubscribed
        scan, Listrak's report of unsubscribes): what it says of a contact an earlier pass
        saw is the newer fact, not a duplicate, which only a key twice in this pass is."""
        scan = self._scan(list_id, run_id)
        if scan.pages:
            from .seen import SeenKeys  # noqa: PLC0415 - loaded by the first pass already

            scan.pass_seen = SeenKeys()

    def whole_pass(self, list_id: int, run_id: int) -> None:
        """A pass over the whole list is about to begin: it recognizes its contacts from its
        first page on, not its third. Said before its first request, so that the reader
        asks `recognizes` of that page after this.

        The read `_current` makes costs the same at any page of such a pass, and the pages
        before the third are then recognized rather than decoded, looked up and diffed: a
        no-change re-sync of 1 M took 4.31 s against 4.56 on PostgreSQL and 3.92 against
        4.05 on SQLite, and of 100 k 1.00 against 1.25 s on PostgreSQL (medians of four and
        five, alternating). On a list empty when the scan began nothing is read or
        recognized.
        """
        scan = self._scan(list_id, run_id)
        if not scan.fresh:
            scan.current_from = 1

    def decode_next(self, list_id: int, run_id: int) -> None:
        """The scan's next page is decoded and diffed, not recognized: its list has no
        high-water mark, and no page so far gave a date that may set one (a recognized
        contact's dates are not read). The reader may have prepared that page for
        recognition already; `recognize` then finds nothing, and the page is decoded."""
        scan = self._scan(list_id, run_id)
        scan.current_from = max(scan.current_from, scan.pages + 2)

    def read_ahead(self, list_id: int, run_id: int, *, user_ids: bool, digests: bool) -> None:
        """Begin the read `_current` makes on a thread of its own, where `reads_ahead` says:
        a pass over the whole list has sent its first request, and the page that needs the
        read (its first, after `whole_pass`, else its third) takes it from there; where no
        thread may read, that page makes the read itself.

        What the pass writes cannot make the read wrong: every row a scan writes is of a
        key it has counted as seen, or has unsubscribed, before its next page is
        recognized, and such keys are never taken by their marks or digests (`_unchanged`,
        `recognize`, `take`); no other run writes the list's rows while this one holds its
        lock, and Segment's answers touch no column read here. Not on a list empty when the
        scan began, which reads no row.
        """
        if not self.reads_ahead:
            return
        scan = self._scan(list_id, run_id)
        if scan.fresh or scan.current is not None or scan.ahead is not None:
            return
        size, codes = self._size_hint(list_id), scan.seen.codes

        def work(cancelled: threading.Event) -> _Current:
            return self._read_current(
                list_id, size, codes, user_ids=user_ids, digests=digests, cancelled=cancelled
            )

        scan.ahead = Ahead(work, name=f"rows-{list_id}")
        scan.ahead_for = (user_ids, digests)

    def _current(self, scan: _Scan, list_id: int, *, user_ids: bool, digests: bool) -> SeenKeys:
        """The marks of the list's desired-subscribed rows, as they are now; with `digests`,
        those of the rows without a digest, and the others' digests in scan.known (a scan
        that recognizes no contact, an audience list's, marks them all). Read once a scan,
        by `read_ahead`'s thread when it was asked for the same."""
        if scan.current is not None:
            return scan.current
        if scan.ahead is not None and scan.ahead_for == (user_ids, digests):
            ahead, scan.ahead = scan.ahead, None
            scan.current, scan.known, rows = ahead.result()
        else:
            _stop_ahead(scan)
            size = self._size_hint(list_id)
            scan.current, scan.known, rows = self._read_current(
                list_id, size, scan.seen.codes, user_ids=user_ids, digests=digests
            )
        scan.rows = None if scan.wrote else rows
        return scan.current

    def _read_current(
        self,
        list_id: int,
        size: int,
        codes: Callable[[Iterable[str]], list[int]],
        *,
        user_ids: bool,
        digests: bool,
        cancelled: threading.Event | None = None,
    ) -> _Current:
        """What `_current` reads: the marks and, with `digests`, the digest table, whose
        keys are hashed by `codes`, as the scan's seen set hashes them."""
        from .digests import DigestIndex  # noqa: PLC0415 - loads numpy
        from .seen import SeenKeys  # noqa: PLC0415 - loads numpy

        current = SeenKeys(0 if digests else size)
        known = DigestIndex(size) if digests else None
        rows = 0
        # A second connection reads half of PostgreSQL's table beside the first.
        beside = self.tx.read if self.tx.writes_in_parallel else None
        # The walk is closed on the way out, not when collected: one in two halves then
        # stops its other half and gives its connection back (a Cancelled raised below
        # would keep the walk alive in its traceback).
        with (
            self.tx.read() as conn,
            closing(
                page_sql.subscribed_columns(
                    conn, list_id, digested_without_user_id=digests, size=size, beside=beside
                )
            ) as chunks_,
        ):
            for columns in chunks_:
                if cancelled is not None and cancelled.is_set():
                    raise Cancelled("the scan no longer needs the list's rows")
                rows += len(columns[0])
                keys, ids = columns[:2] if known is None else _index_digests(codes, known, columns)
                marks = map(subscription_mark, keys, ids if user_ids else [None] * len(keys))
                current.insert(current.codes(marks))
        return current, known, rows

    def _scan(self, list_id: int, run_id: int) -> _Scan:
        """This run's scan; it has seen nobody until its first page is stored (a new run of
        the list drops the last one's)."""
        scan = self._scans.get(list_id)
        if scan is None or scan.run_id != run_id:
            from .seen import SeenKeys  # noqa: PLC0415 - loads numpy

            if scan is not None:
                _stop_ahead(scan)

            scan = _Scan(run_id, SeenKeys(self._size_hint(list_id)))
            with self.tx.read() as conn:
                scan.fresh = not page_sql.has_rows(conn, list_id)
            self._scans[list_id] = scan
        return scan

    def forget_digests(self, list_id: int) -> None:
        """The scan's planned passes are over: let its digest table go (18 MB at 1 M rows)
        before the confirmation, the sweep and the delivery that follow; a page stored
        after this is decoded whole, as a page that recognizes nothing is."""
        scan = self._scans.get(list_id)
        if scan is not None:
            scan.known = None
            _stop_ahead(scan)

    def end_scan(self, list_id: int) -> None:
        """The run is over: free the keys its scan saw."""
        scan = self._scans.pop(list_id, None)
        if scan is not None:
            _stop_ahead(scan)

    @property
    def _on_postgres(self) -> bool:
        return self.tx.engine.dialect.name == "postgresql"

    def _track_growth(self, inserted: int) -> None:
        """On PostgreSQL, re-analyze each time the table has doubled since the last time.

        A first sync fills an empty table whose statistics say it is empty, and the
        planner then reads a page's 5,000 keys and the delivered message ids by scanning
        the whole table: quadratic, 365 s instead of about 60 at 1 M contacts. Analyzing at
        5 k, 10 k, 20 k, ... rows costs a few dozen sampled reads; SQLite needs none (its
        planner uses the key indexes without statistics).
        """
        self._grown += inserted
        if self._grown < max(self._known, 5000) or not self._on_postgres:
            return
        self._known += self._grown
        self._grown = 0
        self.refresh_statistics()

    @staticmethod
    def _earlier(seen: SeenKeys, keys: PageKeys, codes: Sequence[int]) -> set[str]:
        """The page's keys this run has stored before: the same contact twice in one scan."""
        earlier = {k for k, hit in zip(keys.subscribed, seen.present(codes), strict=True) if hit}
        if keys.unsubscribed:
            hits = seen.present(seen.codes(keys.unsubscribed))
            earlier.update(k for k, hit in zip(keys.unsubscribed, hits, strict=True) if hit)
        return earlier

    @staticmethod
    def _load(
        conn: Connection, list_id: int, run_id: int, wanted: list[str], earlier: set[str]
    ) -> dict[str, Stored]:
        """These keys' stored rows; one this run has seen already carries its run id, which
        makes the contact a duplicate to the diff."""
        rows = page_sql.load_rows(conn, list_id, wanted) if wanted else []
        return {
            # Positional: a million of these per re-sync, and keywords cost twice as much.
            key: Stored(
                bool(sub),
                uid,
                run_id if key in earlier else None,
                None if sent is None else bool(sent),
                sent_uid,
                bool(doubt),
                email,
                digest,
            )
            for key, sub, uid, sent, sent_uid, doubt, email, digest in rows
        }

    @staticmethod
    def _record(
        writes: page_sql.PageWrites,
        list_id: int,
        run_id: int,
        page: PageDiff,
        at: datetime,
        *,
        posting: bool,
    ) -> None:
        new = [c for c in page.changes if c.is_new]
        page_sql.insert_new(writes, list_id, new, at, posting=posting, run_id=run_id)
        changed = [c for c in page.changes if not c.is_new]
        page_sql.update_changed(writes, list_id, changed, at, posting=posting, run_id=run_id)
        page_sql.insert_rejects(writes, list_id, run_id, page.rejects, at)

    def _unseen(
        self,
        conn: Connection,
        list_id: int,
        run_id: int,
        *,
        with_email: bool = False,
        keys: Sequence[str] | None = None,
        missed_by: int | None = None,
    ) -> Iterator[tuple[Any, ...]]:
        """(key,) or (key, email) of the subscribed rows this run's scan has not seen; of
        these keys, or also missed by that run. The rows stream through a chunk at a time."""
        seen = self._scan(list_id, run_id).seen
        walk = keys is None and self._walks(conn, list_id)
        chunks_ = page_sql.subscribed_rows(
            conn, list_id, with_email=with_email, keys=keys, missed_by=missed_by, walk=walk
        )
        for rows in chunks_:
            hits = seen.present(seen.codes([row[0] for row in rows]))
            yield from (tuple(row) for row, hit in zip(rows, hits, strict=True) if not hit)

    def refresh_statistics(self) -> None:
        """Let the query planner know how the table's rows are spread over lists.

        Without statistics SQLite answers "every subscribed row of list L" through the
        (list_id, email_key) index: a million random row look-ups, 3.7 s at 1 M rows,
        against 0.25 s for reading the table in order. ANALYZE (0.2 s at 1 M) tells it the
        average list's share of the table, all its statistics hold: so a list of a tenth of
        the table or more is walked whatever the plan (page_sql.walks_table), and with many
        small lists a small one keeps the index. Postgres analyzes on its own schedule;
        doing it here after a bulk load helps it too. A dry run skips it: inside its long
        transaction, ANALYZE's table lock would hold up every other list's ANALYZE until
        the dry run ends.
        """
        if not self.tx.keeps_writes:
            return
        with self.tx.begin() as conn:
            conn.exec_driver_sql("ANALYZE members")

    def refresh_statistics_after_scan(
        self, list_id: int, run_id: int, *, first: bool = False
    ) -> None:
        """After a complete scan, before the reads of the whole list that follow; `first`:
        the list's first complete full scan.

        Both analyze after the first, and after a scan that stored new rows amounting to
        a tenth of the subscribers it saw (a list that grew by a tenth): a first sync cut
        short stored most of its rows in runs that never got here. PostgreSQL
        re-analyzes a table itself once a tenth of its rows have changed (autovacuum),
        but may not have got to it yet. SQLite's statistics change only when ANALYZE
        runs, and its plans for those reads depend on how the table's rows spread over
        lists, so it also analyzes once the table holds a tenth more rows than its
        statistics say (lists that grew a little at a time). Otherwise a re-sync saves
        ANALYZE's time: 0.05-0.07 s at 1 M rows on SQLite, 0.2 s on PostgreSQL.
        """
        if first or self._grew(self._scan(list_id, run_id)) or self._statistics_behind():
            self.refresh_statistics()

    def _statistics_behind(self) -> bool:
        """On SQLite, whether the table outgrew its statistics by a tenth (or has none)."""
        if self._on_postgres:
            return False
        with self.tx.read() as conn:
            return page_sql.statistics_behind(conn)

    def vacuum_after_growth(self, list_id: int, run_id: int) -> None:
        """On PostgreSQL, once a scan that stored a tenth of the list anew (a first sync)
        has been delivered: VACUUM the table.

        Each row such a scan stored was written again when Segment accepted its message
        (its sent mark, which also takes the message id out of the partial index), so the
        table then holds a dead version of every row it stored, and the partial index a
        dead entry. Until autovacuum gets to them, the planner reads the whole table for
        the rows that carry a message, which each run asks for several times: 55-95 ms
        a query at 1 M rows, against well under a millisecond after VACUUM (about 1 s).
        """
        scan = self._scans.get(list_id)
        if scan is None or scan.run_id != run_id or not self._grew(scan):
            return
        if not self.tx.writes_in_parallel:  # SQLite, or a dry run's one connection
            return
        try:
            # On PostgreSQL, a connection that commits each statement by itself: VACUUM
            # runs outside any transaction.
            with self.tx.read_then_write() as conn:
                conn.exec_driver_sql("VACUUM members")
        except SQLAlchemyError as exc:
            # Housekeeping, which autovacuum also does in its own time: the run stands.
            log.warning("VACUUM after the list grew did not finish: %s", describe_db_error(exc))

    @staticmethod
    def _grew(scan: _Scan) -> bool:
        """Whether the scan stored new rows amounting to a tenth of the subscribers it saw."""
        return 10 * scan.inserted >= max(scan.subscribed, 1)

    def count_unseen(
        self,
        list_id: int,
        run_id: int,
        *,
        keys: Sequence[str] | None = None,
        missed_by: int | None = None,
    ) -> tuple[int, int]:
        """(subscribed rows a complete scan did not see, all desired-subscribed rows).

        The total is only needed to judge a removal, so a scan that saw everyone skips it.
        Of all the list's rows, the number is every subscribed row less those the scan
        saw (one count, not a million keys read): it only chooses how the unseen are
        confirmed, and whatever confirms or removes them names them row by row.
        """
        scan = self._scan(list_id, run_id)
        with self.tx.begin() as conn:
            if keys is None and missed_by is None:
                subscribed = self._count_subscribed(conn, scan, list_id)
                missing = subscribed - scan.subscribed
                if missing >= 0:
                    return missing, subscribed if missing else 0
            unseen = self._unseen(conn, list_id, run_id, keys=keys, missed_by=missed_by)
            missing = sum(1 for _ in unseen)
            return missing, self._count_subscribed(conn, scan, list_id) if missing else 0

    def _count_subscribed(self, conn: Connection, scan: _Scan, list_id: int) -> int:
        """The list's desired-subscribed rows: as the scan counted them, or counted now."""
        if scan.rows is not None:
            return scan.rows
        return page_sql.count_subscribed(conn, list_id, walk=self._walks(conn, list_id))

    def _walks(self, conn: Connection, list_id: int) -> bool:
        """Whether reads of all the list's subscribed rows walk the table (SQLite)."""
        if self._on_postgres:
            return False
        return page_sql.walks_table(conn, list_id, self._size_hint(list_id))

    def unseen(
        self, list_id: int, run_id: int, limit: int, *, keys: Sequence[str] | None = None
    ) -> list[tuple[str, str]]:
        """(email key, email) of at most `limit` subscribers the scan did not see, by key;
        of these keys only, when given (their rows are then read, not the list's)."""
        with self.tx.read() as conn:
            unseen = self._unseen(conn, list_id, run_id, with_email=True, keys=keys)
            return [(key, email) for key, email in heapq.nsmallest(limit, unseen)]

    def mark_missed(self, list_id: int, run_id: int) -> int:
        """Note that this full scan missed every subscriber it did not see."""
        with self.tx.begin() as conn:
            keys = [row[0] for row in self._unseen(conn, list_id, run_id)]
            _set_missed_run(conn, list_id, keys, run_id)
            return len(keys)

    def unmark_seen(self, list_id: int, run_id: int, missed_by: int) -> int:
        """Rows that full scan missed and this run's scan has seen since lose that mark:
        Listrak has listed them since, which is the newer fact, so a next full scan that
        misses them is their first miss, not their second. Returns how many."""
        seen = self._scan(list_id, run_id).seen
        with self.tx.begin() as conn:
            walk = self._walks(conn, list_id)
            rows = page_sql.subscribed_rows(conn, list_id, missed_by=missed_by, walk=walk)
            keys = [row[0] for chunk in rows for row in chunk]
            hits = seen.present(seen.codes(keys))
            listed_now = [key for key, hit in zip(keys, hits, strict=True) if hit]
            _set_missed_run(conn, list_id, listed_now, None)
            return len(listed_now)

    def remove_unseen(
        self,
        list_id: int,
        run_id: int,
        detected_at: datetime,
        new_id: Callable[[], str],
        *,
        keys: Sequence[str] | None = None,
        missed_by: int | None = None,
    ) -> int:
        """Unsubscribe the unseen rows Listrak confirmed gone: these keys, or missed twice."""
        # Counted again when next asked: the scan's count holds only what it wrote itself.
        self._scan(list_id, run_id).rows = None
        with self.tx.begin() as conn:
            unseen = self._unseen(conn, list_id, run_id, keys=keys, missed_by=missed_by)
            gone = [row[0] for row in unseen]
            return renew_keys(
                conn,
                list_id,
                gone,
                detected_at,
                new_id,
                desired_subscribed=False,
                digest=None,
                **_REMOVAL_USER_ID,
            )

    def requeue_all(self, list_id: int, detected_at: datetime, new_id: Callable[[], str]) -> int:
        """Backfill: every subscribed row pending again, each under a fresh message id."""
        with self.tx.begin() as conn:
            return requeue_subscribed(conn, list_id, detected_at, new_id)


@contextmanager
def _lost_lock_named(lock: HeldLock | None) -> Iterator[None]:
    """A server that ended the worker's sessions (a restart) fails a page's statement as a
    broken connection; when the run's lock went with them, the run says it lost its lock,
    as a check of the lock before the page said."""
    try:
        yield
    except DBAPIError as exc:
        if lock is not None and exc.connection_invalidated:
            lock.verify()
        raise


def _stop_ahead(scan: _Scan) -> None:
    """The scan will not use the read begun ahead (it never got to the page that needs it,
    or it is over): stop it."""
    if scan.ahead is not None:
        scan.ahead.cancel()
        scan.ahead = None


def _index_digests(
    codes: Callable[[Iterable[str]], list[int]], known: DigestIndex, columns: page_sql.Columns
) -> tuple[list[str], list[str | None]]:
    """Put the rows that carry a digest (0 for none) into the digest table; return the
    others' keys and userIds, to be found by their marks. Their keys are hashed as the
    scan's seen set hashes them (with its own salt when the hash seed is fixed), so a
    recognized key counts as seen."""
    keys, ids, digests = columns
    if not keys:
        return keys, ids
    missing = known.add_carried(digests, codes(keys))
    return [keys[i] for i in missing], [ids[i] for i in missing]


def _to_read(scan: _Scan, keys: PageKeys, earlier: set[str], same: frozenset[str]) -> list[str]:
    """The page's keys whose stored rows the diff needs: none known unchanged, and on a
    list that was empty when the scan began only those the scan stored before."""
    wanted = [*keys.subscribed, *keys.unsubscribed]
    if scan.fresh:
        return [k for k in wanted if k in earlier]
    return [k for k in wanted if k not in same] if same else wanted


def _stamps(
    keys: PageKeys,
    stored: Mapping[str, Stored],
    same: Collection[str],
    earlier: set[str],
    page: PageDiff,
) -> list[tuple[str, int]]:
    """(key, digest) for the rows this page leaves holding what their contact's bytes say
    but under another digest, or none: a key's first contact in the page, a subscription,
    neither changed (a change carries its digest) nor refused nor seen before this page."""
    if not any(keys.digests.values()):
        return []
    left_out = earlier | {c.key for c in page.changes}
    left_out.update(r.email.lower() for r in page.rejects if r.email is not None)
    return [
        (key, digest)
        for key, digest in keys.digests.items()
        if digest is not None
        and key not in left_out
        and (key in same or (key in stored and stored[key].digest != digest))
    ]


def _set_missed_run(conn: Connection, list_id: int, keys: Sequence[str], run: int | None) -> None:
    """The run that last missed these rows (None: none since Listrak listed them)."""
    c = members.c
    stmt = (
        update(members)
        .where(c.list_id == list_id, one_of(conn, c.email_key, "keys"))
        .values(missed_run=run)
    )
    for chunk in chunks(keys):
        conn.execute(stmt, {"keys": listed(conn, chunk)})


def _subscribed_rows(
    stored: Mapping[str, Stored], changes: Sequence[Change]
) -> tuple[set[str], set[str]]:
    """The page's keys with desired-subscribed rows before its changes and after them.
    Set operations, not a loop a contact."""
    was = {key for key, row in stored.items() if row.desired_subscribed}
    now = (was | {c.key for c in changes if c.subscribed}) - {
        c.key for c in changes if not c.subscribed
    }
    return was, now


def _count_writes(scan: _Scan, changes: Sequence[Change], was: set[str], now: set[str]) -> None:
    """Keep the scan's count of the list's desired-subscribed rows by what a page wrote
    (`_subscribed_rows`): a row subscribed now and not before adds one, one unsubscribed
    now takes one away; a row the page did not change is in both sets or in neither."""
    if not changes:
        return
    scan.wrote = True
    if scan.rows is not None:
        scan.rows += len(now) - len(was)


def _newly_subscribed(keys: Sequence[str], was: set[str], now: set[str], earlier: set[str]) -> int:
    """How many more seen keys have desired-subscribed rows after this page (`was` and
    `now` as `_subscribed_rows` gives them).

    A key is counted once: a duplicate of a key seen earlier with a subscribed row is left
    as it was, and is counted already. A key seen earlier without a row (an unreadable
    contact on the list) and stored now counts now.
    """
    page = set(keys)
    return len(page & now) - len(page & earlier & was)


# A removal carries the userId Segment accepted with the `true` (as the diff's does).
_REMOVAL_USER_ID = {
    "desired_user_id": case(
        (members.c.sent_subscribed.is_(True), members.c.sent_user_id),
        else_=members.c.desired_user_id,
    )
}
