"""Table definitions for SQLAlchemy Core; the migrations create them, a test keeps both in step."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    false,
    text,
    true,
)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC and always returns tz-aware values, on SQLite (which drops tz) as on Postgres."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()

members = Table(
    "members",
    metadata,
    Column("list_id", BigInteger, primary_key=True),
    Column("email_key", String(320), primary_key=True),
    Column("email", String(320), nullable=False),
    Column("desired_subscribed", Boolean, nullable=False),
    Column("desired_user_id", Text),
    Column("sent_subscribed", Boolean),
    Column("sent_user_id", Text),
    Column("message_id", String(36)),
    Column("detected_at", UTCDateTime),
    Column("attempts", Integer, nullable=False, default=0, server_default="0"),
    Column("next_attempt_at", UTCDateTime),
    Column("last_error", Text),
    Column("dead", Boolean, nullable=False, default=False, server_default=false()),
    # The last run that wrote the row from a scan (a new or changed contact); `lookup` reads
    # it. The sweep does not: a scan keeps the keys it has seen in memory (state/seen.py),
    # so a re-sync with no change writes no row.
    Column("last_seen_run", Integer),
    Column("missed_run", Integer),
    # Segment may hold something other than sent_*: one of the row's messages was posted
    # without an answer that it was accepted, or a rename or backfill changed what Segment
    # must hold. Set before the post, cleared when Segment accepts one. While it is set, a
    # change back to sent_* is still sent: only a message never posted may be dropped.
    Column("in_doubt", Boolean, nullable=False, default=False, server_default=false()),
    # The digest of the bytes Listrak sent for the contact whose parse set the desired
    # values (listrak/pieces.py): a scan that meets the same bytes again recognizes the
    # contact unchanged without decoding it. Written with the desired values, only for a
    # subscription, and cleared by every other write of them.
    Column("digest", BigInteger),
)
# Only rows that carry a message (pending or dead) are indexed: delivery pages through
# them by message id, and a list's backlog is counted from them, however large the list.
_CARRYING = text("message_id IS NOT NULL")
Index(
    "ix_members_list_message",
    members.c.list_id,
    members.c.message_id,
    sqlite_where=_CARRYING,
    postgresql_where=_CARRYING,
)

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("list_id", BigInteger, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("full_scan", Boolean, nullable=False, default=True, server_default=true()),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("status", String(16), nullable=False),
    Column("scanned", Integer, nullable=False, default=0, server_default="0"),
    Column("subscribed", Integer, nullable=False, default=0, server_default="0"),
    Column("unsubscribed", Integer, nullable=False, default=0, server_default="0"),
    Column("user_id_changed", Integer, nullable=False, default=0, server_default="0"),
    Column("rejected", Integer, nullable=False, default=0, server_default="0"),
    Column("delivered", Integer, nullable=False, default=0, server_default="0"),
    Column("failed", Integer, nullable=False, default=0, server_default="0"),
    Column("error", Text),
    Column("note", Text),
    # The latest timestamp the run gave a message (ListRun.detected): the list's next run
    # stamps after it, though this host's clock went back.
    Column("last_stamp", UTCDateTime),
)
Index("ix_runs_list_started", runs.c.list_id, runs.c.started_at)

rejects = Table(
    "rejects",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("list_id", BigInteger, nullable=False),
    Column("run_id", Integer, nullable=False),
    Column("email", String(320)),
    Column("reason", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)
Index("ix_rejects_list_run", rejects.c.list_id, rejects.c.run_id)

list_state = Table(
    "list_state",
    metadata,
    Column("list_id", BigInteger, primary_key=True),
    Column("last_full_scan_at", UTCDateTime),
    Column("high_water_mark", UTCDateTime),
    Column("last_full_run", Integer),
    Column("trait", String(255)),
    Column("retired_trait", Text),
)

# The audience direction: Segment's membership events, coalesced into one desired
# profile-field value per (list, field, contact), pushed to Listrak and read back.

# Every membership event kept, by messageId: a copy is counted and dropped, and `explain`
# shows an email's recent events. Rows older than the retention are pruned.
audience_inbox = Table(
    "audience_inbox",
    metadata,
    Column("message_id", String(255), primary_key=True),
    Column("received_at", UTCDateTime, nullable=False),
    Column("list_id", BigInteger, nullable=False),
    Column("field_id", BigInteger, nullable=False),
    Column("email_key", String(320), nullable=False),
    Column("member", Boolean, nullable=False),
    Column("event_us", BigInteger, nullable=False),
)
Index("ix_audience_inbox_received", audience_inbox.c.received_at)
Index("ix_audience_inbox_email", audience_inbox.c.email_key)

# desired: the newest event's membership, ranked by (event_us, event_id): its timestamp in
# microseconds since the epoch, then its messageId. sent: what Listrak last accepted (or
# what the read-back found it holds). pending: desired differs from sent.
audience_values = Table(
    "audience_values",
    metadata,
    Column("list_id", BigInteger, primary_key=True),
    Column("field_id", BigInteger, primary_key=True),
    Column("email_key", String(320), primary_key=True),
    Column("email", String(320), nullable=False),
    Column("desired", Boolean, nullable=False),
    Column("event_us", BigInteger, nullable=False),
    Column("event_id", String(255), nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("sent", Boolean),
    Column("sent_at", UTCDateTime),
    Column("pending", Boolean, nullable=False),
    Column("attempts", Integer, nullable=False, default=0, server_default="0"),
    Column("next_attempt_at", UTCDateTime),
    Column("last_error", Text),
    Column("dead", Boolean, nullable=False, default=False, server_default=false()),
    Column("readback", Boolean),
    Column("readback_at", UTCDateTime),
    Column("mismatch", Boolean, nullable=False, default=False, server_default=false()),
    # Read-backs in a row that found Listrak not showing what it accepted; at
    # push.max_mismatches the value is dead.
    Column("mismatches", Integer, nullable=False, default=0, server_default="0"),
)
# Only pending rows are indexed: a push reads them by email, however large the list. SQLite
# uses a partial index only for a query that repeats its condition, which SQLAlchemy
# writes as `pending = 1` there; PostgreSQL reads `pending = true` as `pending`.
Index(
    "ix_audience_values_pending",
    audience_values.c.list_id,
    audience_values.c.email_key,
    sqlite_where=text("pending = 1"),
    postgresql_where=text("pending"),
)

# Durable totals of what the receiver took in: received, duplicates, superseded, and
# ignored items by reason ("ignored:unmapped", ...).
audience_counters = Table(
    "audience_counters",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

audience_pushes = Table(
    "audience_pushes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("list_id", BigInteger, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("status", String(16), nullable=False),
    Column("accepted", Integer, nullable=False, default=0, server_default="0"),
    Column("rejected", Integer, nullable=False, default=0, server_default="0"),
    Column("held", Integer, nullable=False, default=0, server_default="0"),
    Column("requests", Integer, nullable=False, default=0, server_default="0"),
    Column("error", Text),
)
Index("ix_audience_pushes_list", audience_pushes.c.list_id, audience_pushes.c.id)

# Boxes unchecked by accepted requests, by field and time: the mass-flip guard judges the
# unchecks of the last push.flip_window together, so a mass exit trickling in is held too.
audience_unchecks = Table(
    "audience_unchecks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("list_id", BigInteger, nullable=False),
    Column("field_id", BigInteger, nullable=False),
    Column("sent_at", UTCDateTime, nullable=False),
    Column("count", Integer, nullable=False),
)
Index(
    "ix_audience_unchecks_field",
    audience_unchecks.c.list_id,
    audience_unchecks.c.field_id,
    audience_unchecks.c.sent_at,
)

# The activity direction: Listrak's cumulative rows as last seen, and the ledger of the
# track events they owed, each sent once (sent := true only for what Segment accepted).

# The messages of each activity list: what their events carry, and how far reads got.
activity_messages = Table(
    "activity_messages",
    metadata,
    Column("list_id", BigInteger, primary_key=True),
    Column("message_id", BigInteger, primary_key=True),
    Column("send_date", String(40)),  # Listrak's raw, naive string
    Column("sent_at", UTCDateTime),
    Column("properties", Text, nullable=False),
    Column("read_at", UTCDateTime),  # the last pass that read every row
    Column("deferred", Boolean, nullable=False, default=False, server_default=false()),
    Column("clicks_mark", String(40)),  # the newest clickDate read, raw
    Column("backfilled", Boolean, nullable=False, default=False, server_default=false()),
)
Index("ix_activity_messages_sent", activity_messages.c.list_id, activity_messages.c.sent_at)

activity_rows = Table(
    "activity_rows",
    metadata,
    Column("list_id", BigInteger, primary_key=True),
    Column("message_id", BigInteger, primary_key=True),
    Column("email_key", String(320), primary_key=True),
    Column("send_date", String(40)),
    Column("opened", Boolean, nullable=False, default=False, server_default=false()),
    Column("bounced", Boolean, nullable=False, default=False, server_default=false()),
    Column("abused", Boolean, nullable=False, default=False, server_default=false()),
    Column("order_total", Float, nullable=False, default=0.0, server_default="0"),
    Column("click_count", Integer, nullable=False, default=0, server_default="0"),
)

# One row per fact, by the messageId made from the fact and the write key.
activity_events = Table(
    "activity_events",
    metadata,
    Column("message_id", String(36), primary_key=True),
    Column("list_id", BigInteger, nullable=False),
    Column("event", String(40), nullable=False),
    Column("fact", Text, nullable=False),
    Column("email_key", String(320), nullable=False),
    Column("email", String(320), nullable=False),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("properties", Text, nullable=False),
    Column("detected_at", UTCDateTime, nullable=False),
    Column("sent", Boolean, nullable=False, default=False, server_default=false()),
    Column("sent_at", UTCDateTime),
    Column("attempts", Integer, nullable=False, default=0, server_default="0"),
    Column("next_attempt_at", UTCDateTime),
    Column("last_error", Text),
    Column("dead", Boolean, nullable=False, default=False, server_default=false()),
)
# Only unsent events are indexed: delivery pages through them by id, however long the ledger.
Index(
    "ix_activity_events_unsent",
    activity_events.c.list_id,
    activity_events.c.message_id,
    sqlite_where=text("sent = 0"),
    postgresql_where=text("sent = false"),
)
Index("ix_activity_events_email", activity_events.c.email_key)

# Each activity list's last pass, and the unsubscribe mark (Listrak's raw date).
activity_lists = Table(
    "activity_lists",
    metadata,
    Column("list_id", BigInteger, primary_key=True),
    Column("last_pass_at", UTCDateTime),
    Column("status", String(16)),
    Column("error", Text),
    Column("open_messages", Integer, nullable=False, default=0, server_default="0"),
    Column("deferred", Integer, nullable=False, default=0, server_default="0"),
    Column("unsub_mark", String(40)),
)
