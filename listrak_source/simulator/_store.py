"""Contacts of the simulated lists, in stable-hash order, served from pre-encoded JSON."""

from __future__ import annotations

import gc
import itertools
import json
import random
import threading
import zlib
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from operator import attrgetter
from typing import NamedTuple
from zoneinfo import ZoneInfo

EASTERN = ZoneInfo("America/New_York")
# Listrak's profile field data types.
FIELD_TYPES = frozenset(
    {"Text", "Numeric", "RadioButton", "CheckBox", "CommentArea", "Date", "ContentBlock"}
)
_esc: Callable[[str], str] = json.encoder.encode_basestring_ascii
# (field id, value, its segmentationFieldValues item pre-encoded as a one-item array, which
# is what a contact with one field serves as is); tuples cost a quarter of
# a dict, times a million contacts.
Fields = tuple[tuple[int, str, bytes], ...]
_FIELD = b'[{"segmentationFieldGroupId":%d,"segmentationFieldId":%d,"value":%s}]'


def listrak_date(moment: datetime, zone: tzinfo = EASTERN) -> str:
    """Listrak's own date shape: naive wall time (US Eastern unless told) to the second."""
    return moment.astimezone(zone).strftime("%Y-%m-%dT%H:%M:%S")


def _opt(value: str | None) -> str:
    return "null" if value is None else _esc(value)


class State(NamedTuple):
    """A contact's subscription facts; whole seeds share one instance and its JSON."""

    subscribed: bool = True
    subscribe_date: str | None = None
    resubscribe_date: str | None = None
    subscribe_method: str | None = None
    unsubscribe_date: str | None = None
    unsubscribe_method: str | None = None

    def json(self) -> bytes:
        """The contact JSON after the keys, up to segmentationFieldValues; cached per state."""
        cached = _TAILS.get(self)
        if cached is None:
            cached = _TAILS[self] = (
                f'"subscriptionState":"{"Subscribed" if self.subscribed else "Unsubscribed"}",'
                f'"subscribeDate":{_opt(self.subscribe_date)},'
                f'"resubscribeDate":{_opt(self.resubscribe_date)},'
                f'"subscribeMethod":{_opt(self.subscribe_method)},'
                f'"unsubscribeDate":{_opt(self.unsubscribe_date)},'
                f'"unsubscribeMethod":{_opt(self.unsubscribe_method)},'
                '"externalContactID":null,"segmentationFieldValues":'
            ).encode()
        return cached


_TAILS: dict[State, bytes] = {}  # few distinct states: a seed shares one


class Contact:
    """One list member; `head` and `tail` are its cached JSON around the field values."""

    __slots__ = ("email", "fields", "head", "order", "raw", "state", "subscribed", "tail")

    def __init__(self, email: str, lower: str, state: State, tail: bytes = b"") -> None:
        raw = lower.encode()
        # Scan order follows a stable 64-bit hash, neither email nor date order; two CRCs
        # cost a third of an MD5, which matters a million times over.
        self.order = order = zlib.crc32(raw) << 32 | zlib.crc32(raw, 0x9E3779B9)
        key = f"{order:016x}"
        self.head = (
            f'{{"emailAddress":{_esc(email)},"emailKey":"{key}","universalEmailKey":"{key[::-1]}",'
        ).encode()
        self.email = email
        self.fields: Fields = ()
        self.raw: bytes | None = None
        self.state = state
        self.subscribed = state.subscribed
        self.tail = tail or state.json()  # a seed passes its shared tail: no per-contact hashing

    def set_state(self, state: State) -> None:
        """Change the subscription facts; `subscribed` is copied out for the hot scan loop."""
        self.state = state
        self.subscribed = state.subscribed
        self.tail = state.json()

    def field_values(self, ids: frozenset[int]) -> bytes:
        """segmentationFieldValues holding only the asked-for fields that have a value."""
        if len(self.fields) == 1:  # the common case, without a join
            fid, _, item = self.fields[0]
            return item if fid in ids else b"[]"
        return b"[%s]" % b",".join([item[1:-1] for fid, _, item in self.fields if fid in ids])

    def full(self, ids: frozenset[int]) -> bytes:
        """The whole contact object."""
        if self.raw is not None:
            return self.raw
        values = self.field_values(ids) if self.fields and ids else b"[]"
        return self.head + self.tail + values + b"}"

    def field(self, field_id: int | None) -> str | None:
        """One profile field value."""
        return next((v for f, v, _ in self.fields if f == field_id), None)


@dataclass(frozen=True, slots=True)
class PageQuery:
    """One Contact page request, already validated."""

    subscribed: bool = True
    after: int | None = None
    count: int = 1000
    field_ids: frozenset[int] = frozenset()
    start: str | None = None
    end: str | None = None
    use_original: bool = True
    offset: int | None = None  # set: skip this many matches instead of resuming after `after`

    def matches(self, c: Contact) -> bool:
        """Whether the contact is in this scan's state and date window."""
        if c.subscribed is not self.subscribed:
            return False
        if c.raw is not None or (self.start is None and self.end is None):
            return True
        date = self._date_of(c)
        if date is None:
            return False
        return (self.start is None or date >= self.start) and (self.end is None or date < self.end)

    def _date_of(self, c: Contact) -> str | None:
        s = c.state
        if not self.subscribed:
            return s.unsubscribe_date
        if self.use_original or s.resubscribe_date is None or s.subscribe_date is None:
            return s.subscribe_date or s.resubscribe_date
        return max(s.subscribe_date, s.resubscribe_date)


class ListData:
    """One list: contacts by lower-cased email, and their scan order, kept incrementally."""

    def __init__(self, list_id: int, name: str, group_id: int, created: str) -> None:
        self.list_id = list_id
        self.name = name
        self.group_id = group_id
        self.created = created
        self.field_ids: list[int] = []
        self.field_types: dict[int, str] = {}
        self.field_names: dict[int, str] = {}
        self.contacts: dict[str, Contact] = {}
        self.raws: list[Contact] = []
        # Hostile values served in place of a contact's own keys; kept here, not on Contact,
        # so a million plain contacts pay nothing for them.
        self.overrides: dict[Contact, dict[str, object]] = {}
        # Field values an import applied to emails that are not contacts yet.
        self.parked: dict[str, dict[int, str | None]] = {}
        self.seeded = 0
        self._keys = array("Q")
        self._recs: list[Contact] = []

    def add_fields(self, ids: Iterable[int]) -> None:
        """Make these profile fields part of the list."""
        self.field_ids.extend(i for i in ids if i not in self.field_ids)

    def field_type(self, field_id: int) -> str:
        """The field's dataType; fields made without one are Text."""
        return self.field_types.get(field_id, "Text")

    def find(self, email_or_key: str) -> Contact | None:
        """A contact by its email (any case) or, failing that, by its emailKey."""
        found = self.contacts.get(email_or_key.strip().lower())
        if found is None and "@" not in email_or_key:
            key = email_or_key.strip().lower()
            found = next((c for c in self.contacts.values() if f"{c.order:016x}" == key), None)
        return found

    def full(self, c: Contact, ids: frozenset[int]) -> bytes:
        """The whole contact object, with its overrides."""
        body = c.full(ids)
        extra = self.overrides.get(c)
        if extra is None:
            return body
        doc = json.loads(body)
        doc.update(extra)
        return json.dumps(doc, separators=(",", ":")).encode()

    def resort(self) -> None:
        """Rebuild the scan order from scratch, after a bulk load."""
        recs = sorted(itertools.chain(self.contacts.values(), self.raws), key=attrgetter("order"))
        self._recs = recs
        self._keys = array("Q", [c.order for c in recs])

    def insert(self, c: Contact) -> None:
        """Place one new contact without a full re-sort."""
        i = bisect_right(self._keys, c.order)
        self._keys.insert(i, c.order)
        self._recs.insert(i, c)

    def drop(self, c: Contact) -> None:
        """Take one contact out of the scan order."""
        i = bisect_left(self._keys, c.order)
        while self._recs[i] is not c:
            i += 1  # equal keys (a 64-bit collision) sit side by side
        del self._keys[i]
        del self._recs[i]

    def select(self, q: PageQuery) -> tuple[list[Contact], bool]:
        """The contacts of one page, and whether any match remains after them."""
        if q.offset is not None:
            return self._select_offset(q, q.offset)
        keys, recs = self._keys, self._recs
        i = 0 if q.after is None else bisect_right(keys, q.after)
        n = len(recs)
        picked: list[Contact] = []
        want, matches = q.subscribed, q.matches
        plain = q.start is None and q.end is None
        while len(picked) < q.count and i < n:
            chunk = recs[i : i + q.count - len(picked)]
            i += len(chunk)
            # The plain state test inlined: full scans are what benchmarks time.
            picked += (
                [c for c in chunk if c.subscribed is want] if plain else filter(matches, chunk)
            )
        return picked, any(matches(recs[j]) for j in range(i, n))

    def _select_offset(self, q: PageQuery, offset: int) -> tuple[list[Contact], bool]:
        """Offset paging over the contacts matching now: a change before the offset shifts it."""
        matches = [c for c in self._recs if q.matches(c)]
        picked = matches[offset : offset + q.count]
        return picked, offset + len(picked) < len(matches)

    def encode(self, picked: list[Contact], ids: frozenset[int]) -> bytes:
        """The page's JSON array, joined from cached pieces by C-level slice assignment."""
        if not picked:
            return b"[]"
        if self.raws or self.overrides:
            return b"[" + b",".join([self.full(c, ids) for c in picked]) + b"]"
        parts = [b"},"] * (4 * len(picked))
        parts[0::4] = [c.head for c in picked]
        parts[1::4] = [c.tail for c in picked]
        if ids:
            parts[2::4] = [c.field_values(ids) if c.fields else b"[]" for c in picked]
        else:
            parts[2::4] = [b"[]"] * len(picked)
        parts[-1] = b"}]"
        return b"[" + b"".join(parts)


def _generate(
    lst: ListData, count: int, *, field_id: int | None, ratio: float, seed: int, now: str
) -> list[str]:
    """The seeding loop, kept tight: it runs a million times for the benchmarks."""
    emails: list[str] = []
    contacts, rand = lst.contacts, random.Random(seed).random
    state = State(subscribe_date=now, subscribe_method="Import")
    tail = state.json()
    ratio = ratio if field_id is not None else -1.0
    field_id = field_id or 0
    item = _FIELD.replace(b"%s", b'"%%s"') % (lst.group_id, field_id)
    while len(emails) < count:
        start = lst.seeded
        lst.seeded += count - len(emails)
        for i in range(start, lst.seeded):
            lower = f"user{i:06d}@example.com"
            if lower in contacts:
                continue
            email = f"User{i:06d}@Example.com" if rand() < 0.1 else lower
            c = contacts[lower] = Contact(email, lower, state, tail)
            if rand() < ratio:
                value = f"cust-{i:06d}"
                c.fields = ((field_id, value, item % (value.encode(),)),)
            emails.append(email)
    return emails


class Store:
    """Every list's data behind one lock shared by the test thread and the server threads."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.lists: dict[int, ListData] = {}
        self._raw_seq = 0
        self._frozen: datetime | None = None
        # The zone of Listrak's naive dates; a test may set another.
        self.zone: tzinfo = EASTERN

    def now(self) -> datetime:
        """The simulator's current time (aware UTC): real time unless set_now() froze it."""
        return self._frozen or datetime.now(UTC)

    def set_now(self, moment: datetime | None) -> None:
        """Freeze the clock at an aware moment; None returns to real time."""
        if moment is not None and moment.tzinfo is None:
            raise ValueError("set_now() needs an aware datetime, e.g. tzinfo=UTC")
        self._frozen = moment

    def advance(self, delta: timedelta) -> None:
        """Move the clock forward, freezing it first if it runs."""
        self._frozen = self.now() + delta

    def get(self, list_id: int) -> ListData:
        """The list, or a KeyError that says what to do."""
        try:
            return self.lists[list_id]
        except KeyError:
            raise KeyError(f"list {list_id} does not exist: call add_list() first") from None

    def add_list(self, list_id: int, name: str = "", field_ids: Iterable[int] = ()) -> None:
        """Create the list, or add fields (and a new name) to an existing one."""
        with self.lock:
            lst = self.lists.get(list_id)
            if lst is None:
                created = listrak_date(self.now(), self.zone)
                group = 1000 + len(self.lists)
                lst = ListData(list_id, name or f"List {list_id}", group, created)
                self.lists[list_id] = lst
            lst.name = name or lst.name
            lst.add_fields(field_ids)

    def add_field(
        self, list_id: int, field_id: int, data_type: str = "Text", name: str = ""
    ) -> None:
        """Give the list a profile field of this dataType (CheckBox, Numeric, ...)."""
        if data_type not in FIELD_TYPES:
            raise ValueError(f"unknown dataType {data_type!r}; one of {sorted(FIELD_TYPES)}")
        with self.lock:
            lst = self.get(list_id)
            lst.add_fields([field_id])
            lst.field_types[field_id] = data_type
            if name:
                lst.field_names[field_id] = name

    def remove_field(self, list_id: int, field_id: int) -> None:
        """Delete a profile field from the list, as an Engage user may after `check` passed:
        the bulk route then refuses any body that sets it."""
        with self.lock:
            lst = self.get(list_id)
            lst.field_ids.remove(field_id)
            lst.field_types.pop(field_id, None)

    def seed(
        self,
        list_id: int,
        count: int,
        *,
        field_id: int | None = None,
        field_ratio: float = 0.5,
        seed: int = 0,
    ) -> list[str]:
        """Add `count` generated subscribed contacts (about a tenth in mixed case)."""
        now = listrak_date(self.now(), self.zone)
        paused = gc.isenabled()
        gc.disable()  # a million new objects would trigger hundreds of pointless collections
        try:
            with self.lock:
                lst = self.get(list_id)
                lst.add_fields([] if field_id is None else [field_id])
                emails = _generate(
                    lst, count, field_id=field_id, ratio=field_ratio, seed=seed, now=now
                )
                lst.resort()
        finally:
            if paused:
                gc.enable()
        return emails

    def subscribe(self, list_id: int, email: str, fields: Mapping[int, str] | None = None) -> None:
        """A new contact, or a re-subscribe of an unsubscribed one; fields merge in."""
        now = listrak_date(self.now(), self.zone)
        with self.lock:
            lst = self.get(list_id)
            key = email.strip().lower()
            c = lst.contacts.get(key)
            values: dict[int, str | None] = dict(fields or {})
            if c is None:
                c = lst.contacts[key] = Contact(email, key, State(True, now, None, "API"))
                lst.insert(c)
                values = {**lst.parked.pop(key, {}), **values}
            elif not c.subscribed:
                c.set_state(c.state._replace(subscribed=True, resubscribe_date=now))
            for field_id, value in values.items():
                self._set_field(lst, c, field_id, value)

    def unsubscribe(self, list_id: int, email: str, method: str = "Unsubscribe") -> None:
        """Keep the contact in the list, as Unsubscribed."""
        now = listrak_date(self.now(), self.zone)
        with self.lock:
            c = self._contact(list_id, email)
            change = {"unsubscribe_date": now, "unsubscribe_method": method}
            c.set_state(c.state._replace(subscribed=False, **change))

    def set_field(self, list_id: int, email: str, field_id: int, value: str | None) -> None:
        """Set or clear (None) one profile field value."""
        with self.lock:
            self._set_field(self.get(list_id), self._contact(list_id, email), field_id, value)

    def remove(self, list_id: int, email: str) -> None:
        """Delete the contact from the list entirely."""
        with self.lock:
            c = self._contact(list_id, email)
            lst = self.get(list_id)
            del lst.contacts[email.strip().lower()]
            lst.overrides.pop(c, None)
            lst.drop(c)

    def override(self, list_id: int, email: str, fields: Mapping[str, object]) -> None:
        """Serve these raw JSON values in place of the contact's own keys, wherever it is
        served (hostile-input tests); its real state still decides which scan serves it."""
        json.dumps(fields)  # refuse what could not be served, here rather than mid-scan
        with self.lock:
            lst = self.get(list_id)
            c = self._contact(list_id, email)
            lst.overrides[c] = {**lst.overrides.get(c, {}), **fields}

    def clear_override(self, list_id: int, email: str) -> None:
        """Serve the contact as it really is again."""
        with self.lock:
            self.get(list_id).overrides.pop(self._contact(list_id, email), None)

    def contact_json(self, list_id: int, email_or_key: str, ids: frozenset[int]) -> bytes | None:
        """One contact as the single-contact route serves it, whatever its state."""
        with self.lock:
            lst = self.get(list_id)
            c = lst.find(email_or_key)
            return None if c is None else lst.full(c, ids)

    def apply_values(
        self, list_id: int, email: str, values: Mapping[int, str | None], *, park: bool, unsub: bool
    ) -> str:
        """Profile values an import sets (None clears); never a subscription change.

        `park`: keep values for a non-member until it subscribes; `unsub`: update an
        unsubscribed contact. Returns what happened to the email.
        """
        with self.lock:
            lst = self.get(list_id)
            key = email.strip().lower()
            c = lst.contacts.get(key)
            if c is None:
                if park:
                    lst.parked[key] = {**lst.parked.get(key, {}), **values}
                return "parked" if park else "skipped: not a contact"
            if not (c.subscribed or unsub):
                return "skipped: unsubscribed"
            for field_id, value in values.items():
                self._set_field(lst, c, field_id, value)
            return "updated"

    def add_raw(self, list_id: int, raw: Mapping[str, object]) -> None:
        """Serve an arbitrary object as-is in Subscribed scans (malformed-contact tests)."""
        with self.lock:
            lst = self.get(list_id)
            self._raw_seq += 1
            body = json.dumps(raw, separators=(",", ":"))
            c = Contact("", f"\0raw{self._raw_seq}:{body}", State())
            c.raw = body.encode()
            lst.raws.append(c)
            lst.insert(c)

    def truth(self, list_id: int, user_id_field: int | None = None) -> dict[str, dict[str, object]]:
        """lower-cased email -> {email, user_id} of every subscribed (non-raw) contact."""
        with self.lock:
            return {
                key: {"email": c.email.strip(), "user_id": c.field(user_id_field)}
                for key, c in self.get(list_id).contacts.items()
                if c.subscribed
            }

    def page(self, list_id: int, q: PageQuery) -> tuple[bytes, int | None, int]:
        """A page as a JSON array, where the next page starts (the order key to resume after,
        or the next offset; None: done), and its size."""
        with self.lock:
            lst = self.get(list_id)
            picked, more = lst.select(q)
            after = None
            if picked and more:
                after = picked[-1].order if q.offset is None else q.offset + len(picked)
            return lst.encode(picked, q.field_ids), after, len(picked)

    def _set_field(self, lst: ListData, c: Contact, field_id: int, value: str | None) -> None:
        kept = tuple(x for x in c.fields if x[0] != field_id)
        if value is not None:
            lst.add_fields([field_id])
            item = _FIELD % (lst.group_id, field_id, _esc(value).encode())
            kept += ((field_id, value, item),)
        c.fields = kept

    def _contact(self, list_id: int, email: str) -> Contact:
        try:
            return self.get(list_id).contacts[email.strip().lower()]
        except KeyError:
            raise KeyError(f"{email!r} is not in list {list_id}") from None
