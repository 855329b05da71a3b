"""Contacts (SPEC 5.7): `DELETE /v1/contacts/{contact_id}` erases a contact's personal data."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from starlette.convertors import Convertor, register_url_convertor

from services.api.auth import require_scope
from services.api.contacts import service
from services.api.contacts.schemas import ContactErasureOut
from services.api.kit.routing import EngineDep, error_responses
from services.core.tenancy import KeyInfo

router = APIRouter(prefix="/v1", tags=["contacts"])


class _AnyText(Convertor[str]):
    """A path parameter of any characters, '/' and line breaks included: whatever contact id the
    archive can hold can be erased (sent percent-encoded)."""

    regex = r"[\s\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("anytext", _AnyText())

AdminKey = Annotated[KeyInfo, Depends(require_scope("admin"))]
ContactId = Annotated[str, Path(description="The contact's id as events carry it in `contact_id`")]


@router.delete(
    "/contacts/{contact_id:anytext}",
    summary="Erase a contact's personal data",
    description="Erases the contact's transcript text, its calls' moments' text and its id everywhere "
    "salesloop stores them: the event archive, CRM records, leads, deals, analysed calls and "
    "dead-lettered messages. The id becomes a pseudonym that no one can turn back into it, the same in "
    "every table, so every count and metric stays as it was (also after `salesloop rebuild`). The "
    "contact stays erased: its events delivered later, redeliveries included, are stored erased. "
    "Answers what this request erased per table; repeating it (or erasing a contact salesloop has "
    "never seen, which still registers it) answers zeros. Needs `admin`. Waits for the aggregator's "
    "batch in flight; 503 if a rebuild holds the archive for more than 10 s.",
    responses=error_responses(401, 403, 422, 503),
)
async def erase_contact(key: AdminKey, contact_id: ContactId, engine: EngineDep) -> ContactErasureOut:
    return await service.erase_contact(engine, tenant=key.tenant, contact_id=contact_id)
