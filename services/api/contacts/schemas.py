"""Response body of `DELETE /v1/contacts/{contact_id}` (SPEC 5.7: erasing a contact's personal data)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from services.api.kit.answers import example


class ErasedRows(BaseModel):
    events: int = Field(
        description="Archived events of the contact (and of its calls' transcripts) rewritten"
    )
    transcripts: int = Field(description="Transcripts whose text was erased (the analysis kept)")
    crm_updates: int = Field(
        description="Archived CRM updates of the contact, or naming it as a deal's contact"
    )
    crm_entities: int = Field(description="CRM records (the contact's, its deals') rewritten")
    leads: int = Field(description="Lead rows of the contact")
    deal_facts: int = Field(description="Deal facts naming the contact")
    call_analyses: int = Field(
        description="Analysed calls of the contact: contact id and moments' text erased"
    )
    failed_events: int = Field(description="Dead-lettered messages of the contact")


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
    rows: ErasedRows = Field(description="Rows this request erased, per table; zeros when repeated")
