"""Response body of `DELETE /v1/contacts/{contact_id}` (SPEC 5.7: erasing a contact's personal data)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from services.api.kit.answers import example


class ContactErasureOut(BaseModel):
    model_config = example(
        {
            "contact_id": "hs-contact-5501",
            "erased_at": "2026-12-03T15:20:00Z",
            "rows": {
                "events": 14,
                "transcripts": 2,
                "crm_updates": 3,
                "crm_entities": 2,
                "leads": 1,
                "deal_facts": 1,
                "call_analyses": 2,
                "failed_events": 0,
            },
        }
    )

    contact_id: str = Field(description="The contact id as given; salesloop keeps it nowhere")
    erased_at: datetime = Field(
        description="When the contact was first erased: its later events are stored erased since"
    )
    rows: dict[str, int] = Field(
        description="Rows this request erased, per table: `events` (the contact's and its calls'), "
        "`transcripts` (whose text went, their analysis kept), `crm_updates`, `crm_entities`, `leads`, "
        "`deal_facts`, `call_analyses` (contact id and moments' text), `failed_events` (dead letters), "
        "and every other table that names contacts; zeros when repeated"
    )
