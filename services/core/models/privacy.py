"""Erasure of contacts' personal data (SPEC 5.7): the register of erased contacts and its key.

An erased contact's id is replaced everywhere by its pseudonym (services/core/privacy.py), a keyed hash
of the id under the tenant's `contact_pseudonym_keys` key: the same contact always gets the same
pseudonym, so its rows still join and later events of it are recognised and stored erased. The
register holds pseudonyms only, never a contact id.

The indexes below serve the erasure's look-ups in tables other modules declare: the transcripts of a
call (`call.transcribed` naming it), the transcripts whose text is still kept (the retention pass), and
a contact's CRM updates.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, LargeBinary, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from services.core.models.archive import CrmUpdateArchive, Event
from services.core.models.base import Base

# Where these expressions change, the partial indexes below and the statements that rely on them
# (services/core/privacy_sql.py, services/aggregator/retention.py) change together.
CALL_EVENT_ID_SQL = "(payload ->> 'call_event_id')"
KEPT_TRANSCRIPT_SQL = "jsonb_typeof(payload -> 'transcript') = 'array' AND NOT payload ? 'transcript_erased'"


class ContactPseudonymKey(Base):
    """The random key of a tenant's contact pseudonyms, made at its first erasure and never changed
    (a new key would no longer recognise the contacts erased under the old one)."""

    __tablename__ = "contact_pseudonym_keys"

    tenant: Mapped[str] = mapped_column(ForeignKey("tenants.slug", ondelete="CASCADE"), primary_key=True)
    key: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ContactErasure(Base):
    """An erased contact, by pseudonym: the aggregator stores its later events erased."""

    __tablename__ = "contact_erasures"

    tenant: Mapped[str] = mapped_column(ForeignKey("tenants.slug", ondelete="CASCADE"), primary_key=True)
    pseudonym: Mapped[str] = mapped_column(String(200), primary_key=True)
    erased_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# The transcripts of a call that arrived after it (`call.transcribed` names the call).
Index(
    "ix_events_tenant_call_event_id",
    Event.tenant,
    text(CALL_EVENT_ID_SQL),
    postgresql_where=text("type = 'call.transcribed'"),
)
# Transcripts whose text is still kept, by event time: the retention pass reads the oldest.
Index("ix_events_kept_transcripts_occurred_at", Event.occurred_at, postgresql_where=text(KEPT_TRANSCRIPT_SQL))
# A contact's own CRM updates, and the deal updates that name it as the deal's contact.
Index("ix_crm_updates_tenant_entity_id", CrmUpdateArchive.tenant, CrmUpdateArchive.entity_id)
Index(
    "ix_crm_updates_tenant_contact_value",
    CrmUpdateArchive.tenant,
    CrmUpdateArchive.value,
    postgresql_where=text("property = 'contact'"),
)
