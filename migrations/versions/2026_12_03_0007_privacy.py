"""privacy

Erasure of contacts' personal data (SPEC 5.7): `contact_pseudonym_keys` (one random key per tenant, the
key of its contacts' pseudonyms) and `contact_erasures` (the erased contacts, by pseudonym), and the
indexes erasure and transcript retention look rows up by: a call's later transcripts, transcripts
whose text is still kept, and a contact's CRM updates.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "contact_pseudonym_keys",
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("key", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant"],
            ["tenants.slug"],
            name=op.f("fk_contact_pseudonym_keys_tenant_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant", name=op.f("pk_contact_pseudonym_keys")),
    )
    op.create_table(
        "contact_erasures",
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("pseudonym", sa.String(length=200), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column(
            "last_requested_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["tenant"], ["tenants.slug"], name=op.f("fk_contact_erasures_tenant_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("tenant", "pseudonym", name=op.f("pk_contact_erasures")),
    )
    op.create_index(
        "ix_events_tenant_call_event_id",
        "events",
        ["tenant", sa.text("(payload ->> 'call_event_id')")],
        postgresql_where=sa.text("type = 'call.transcribed'"),
    )
    op.create_index(
        "ix_events_kept_transcripts_occurred_at",
        "events",
        ["occurred_at"],
        postgresql_where=sa.text(
            "jsonb_typeof(payload -> 'transcript') = 'array' AND NOT payload ? 'transcript_erased'"
        ),
    )
    op.create_index("ix_crm_updates_tenant_entity_id", "crm_updates", ["tenant", "entity_id"])
    op.create_index(
        "ix_crm_updates_tenant_contact_value",
        "crm_updates",
        ["tenant", "value"],
        postgresql_where=sa.text("property = 'contact'"),
    )


def downgrade() -> None:
    op.drop_index("ix_crm_updates_tenant_contact_value", table_name="crm_updates")
    op.drop_index("ix_crm_updates_tenant_entity_id", table_name="crm_updates")
    op.drop_index("ix_events_kept_transcripts_occurred_at", table_name="events")
    op.drop_index("ix_events_tenant_call_event_id", table_name="events")
    op.drop_table("contact_erasures")
    op.drop_table("contact_pseudonym_keys")
