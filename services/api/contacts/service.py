"""Erasing a contact (SPEC 5.7): the id checked, then every stored row rewritten (queries.py)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.contacts import queries
from services.api.contacts.schemas import ContactErasureOut
from services.api.kit.errors import InvalidInput
from services.core import limits
from services.core.limits import MAX_ID_LEN, Invalid

_CONTACT_ID = limits.text(MAX_ID_LEN)


async def erase_contact(engine: AsyncEngine, *, tenant: str, contact_id: str) -> ContactErasureOut:
    try:
        _CONTACT_ID(contact_id)
    except Invalid as exc:
        raise InvalidInput("contact_id", exc.reason) from None
    erasure = await queries.erase_contact(engine, tenant, contact_id)
    return ContactErasureOut(contact_id=contact_id, erased_at=erasure.erased_at, rows=erasure.rows)
