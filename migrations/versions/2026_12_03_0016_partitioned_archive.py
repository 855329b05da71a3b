"""partitioned archive

The event archive becomes a table partitioned by month of `occurred_at` (UTC), so that retention
drops whole months (services/aggregator/archive_partitions.py). A unique index of a partitioned table
must hold the partition key: the archive's primary key becomes (tenant, event_id, occurred_at), and
the dedupe key (tenant, event_id) is kept unique in `event_keys`, one row per archived event. A
trigger keeps a key's event id equal to its archived row's when an erasure rewrites it.
`archive_horizon` says where the kept months start once retention dropped older ones.

The rows are moved: the old table is renamed, the partitioned one created with a partition for every
month the archive holds (and the next ones), the rows and their keys copied, the old table dropped.
The downgrade moves them back into one table.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 22:00:00.000000
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0016"
down_revision: str | Sequence[str] | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = "tenant, event_id, type, occurred_at, received_at, folded_at, source, rep_id, contact_id, payload"
# (name, definition) of the archive's secondary indexes, as 0001, 0003 and 0007 made them.
INDEXES: tuple[tuple[str, str], ...] = (
    ("ix_events_tenant_occurred_at", "(tenant, occurred_at)"),
    ("ix_events_tenant_contact_id_occurred_at", "(tenant, contact_id, occurred_at)"),
    (
        "ix_events_tenant_call_event_id",
        "(tenant, (payload ->> 'call_event_id')) WHERE type = 'call.transcribed'",
    ),
    (
        "ix_events_kept_transcripts_occurred_at",
        "(occurred_at) WHERE jsonb_typeof(payload -> 'transcript') = 'array'"
        " AND NOT payload ? 'transcript_erased'",
    ),
)
MONTHS_AHEAD = 3

# A partition per month from the oldest archived event's to MONTHS_AHEAD after the current one's.
CREATE_PARTITIONS = f"""
DO $$
DECLARE m timestamptz;
BEGIN
  FOR m IN
    SELECT DISTINCT date_trunc('month', occurred_at, 'UTC') FROM events_unpartitioned
    UNION
    SELECT generate_series(date_trunc('month', now(), 'UTC'),
                           date_trunc('month', now(), 'UTC') + interval '{MONTHS_AHEAD} months',
                           interval '1 month')
  LOOP
    EXECUTE format(
      'CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)',
      'events_p' || to_char(m AT TIME ZONE 'UTC', 'YYYYMM'),
      m, (m AT TIME ZONE 'UTC' + interval '1 month') AT TIME ZONE 'UTC'
    );
  END LOOP;
END $$
"""
# An erasure rewrites the archived event's id (services/api/contacts/queries.py); its key follows,
# so a later delivery of the event, stored erased under the same id, is still recognised.
KEY_FOLLOWS = """
CREATE FUNCTION event_keys_follow_event_id() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE event_keys SET event_id = NEW.event_id WHERE tenant = OLD.tenant AND event_id = OLD.event_id;
  RETURN NULL;
END $$
"""
KEY_TRIGGER = """
CREATE TRIGGER event_keys_follow_event_id AFTER UPDATE OF event_id ON events
FOR EACH ROW WHEN (OLD.event_id IS DISTINCT FROM NEW.event_id)
EXECUTE FUNCTION event_keys_follow_event_id()
"""


def _columns(pk: sa.PrimaryKeyConstraint) -> list[sa.Column[Any] | sa.PrimaryKeyConstraint]:
    return [
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("folded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("rep_id", sa.String(length=200), nullable=True),
        sa.Column("contact_id", sa.String(length=200), nullable=True),
        sa.Column("payload", postgresql.JSONB(), nullable=False),
        pk,
    ]


def _set_aside_old_table() -> None:
    op.rename_table("events", "events_unpartitioned")
    op.execute("ALTER TABLE events_unpartitioned RENAME CONSTRAINT pk_events TO pk_events_unpartitioned")
    for name, _ in INDEXES:
        op.execute(f"ALTER INDEX {name} RENAME TO {name}_unpartitioned")


def _create_indexes() -> None:
    for name, definition in INDEXES:
        op.execute(f"CREATE INDEX {name} ON events {definition}")


def upgrade() -> None:
    _set_aside_old_table()
    pk = sa.PrimaryKeyConstraint("tenant", "event_id", "occurred_at", name=op.f("pk_events"))
    op.create_table("events", *_columns(pk), postgresql_partition_by="RANGE (occurred_at)")
    _create_indexes()
    op.create_table(
        "event_keys",
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "event_id", name=op.f("pk_event_keys")),
    )
    op.create_table(
        "archive_horizon",
        sa.Column("table_name", sa.String(length=63), nullable=False),
        sa.Column("kept_from", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("table_name", name=op.f("pk_archive_horizon")),
    )
    op.execute(CREATE_PARTITIONS)
    op.execute(f"INSERT INTO events ({COLUMNS}) SELECT {COLUMNS} FROM events_unpartitioned")
    op.execute(
        "INSERT INTO event_keys (tenant, event_id, occurred_at)"
        " SELECT tenant, event_id, occurred_at FROM events_unpartitioned"
    )
    op.drop_table("events_unpartitioned")
    op.execute(KEY_FOLLOWS)
    op.execute(KEY_TRIGGER)


def downgrade() -> None:
    op.execute("ALTER TABLE events RENAME TO events_partitioned")
    op.execute("ALTER TABLE events_partitioned RENAME CONSTRAINT pk_events TO pk_events_partitioned")
    for name, _ in INDEXES:
        op.execute(f"ALTER INDEX {name} RENAME TO {name}_partitioned")
    pk = sa.PrimaryKeyConstraint("tenant", "event_id", name=op.f("pk_events"))
    op.create_table("events", *_columns(pk))
    _create_indexes()
    # One row per key: were an event id archived twice (not possible while event_keys is unique),
    # the first folded stays.
    op.execute(
        f"INSERT INTO events ({COLUMNS}) SELECT DISTINCT ON (tenant, event_id) {COLUMNS}"
        " FROM events_partitioned ORDER BY tenant, event_id, folded_at"
    )
    op.execute("DROP TABLE events_partitioned")  # and its partitions and trigger
    op.execute("DROP FUNCTION event_keys_follow_event_id()")
    op.drop_table("archive_horizon")
    op.drop_table("event_keys")
