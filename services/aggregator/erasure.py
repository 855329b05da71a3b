"""Erased contacts stay erased (SPEC 5.7): the batch's events and CRM updates of contacts erased
before (`DELETE /v1/contacts/{id}`) are stored erased, and the conversation fold counts an erased
transcript by the analysis it kept. The rules are services/core/privacy.py's, the SQL they share with
the API services/core/privacy_sql.py's.

`erase_new` runs in the batch transaction before the archive (commit.py), under the rebuild lock the
batch holds shared and an erasure takes exclusively, so it reads a register that no erasure changes
meanwhile. For each event or update of a tenant that has erased contacts:

- naming an erased contact (its `contact_id`; for CRM updates the contact's record or a deal's
  `contact`): the contact id becomes its pseudonym (also in ids that embed it, so a redelivery of an
  archived event is still recognised as one), the attributes go, and a transcript is analysed now
  and stored with its analysis and without its text;
- a `call.transcribed` whose call is an erased contact's (archived, or in the batch): its transcript
  likewise;
- an erased contact's call whose transcripts were archived before the call named the contact: those
  transcripts are erased now, with the moments of the call.

A tenant that never erased a contact costs one indexed look-up per batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from services.aggregator.conversation import CallAnalysis, Moment, analyse
from services.core.crm import CrmUpdate
from services.core.events import EventType
from services.core.privacy import (
    ERASED,
    erase_contact,
    erase_transcript,
    erase_update,
    has_kept_text,
    is_pseudonym,
    pseudonym,
)
from services.core.privacy_sql import erase_transcripts
from services.core.wire import Event, entity_of

CALL_COMPLETED: str = EventType.CALL_COMPLETED.value
CALL_TRANSCRIBED: str = EventType.CALL_TRANSCRIBED.value

REGISTER_SIZES = """
SELECT k.tenant, k.key, (SELECT count(*) FROM contact_erasures r WHERE r.tenant = k.tenant) AS size
FROM contact_pseudonym_keys k WHERE k.tenant = any($1::text[])
"""
REGISTER = "SELECT pseudonym FROM contact_erasures WHERE tenant = $1"
# Of these archived calls, those of erased contacts.
ERASED_CALLS = """
SELECT e.tenant, e.event_id
FROM unnest($1::text[], $2::text[]) AS u(tenant, event_id)
JOIN events e ON e.tenant = u.tenant AND e.event_id = u.event_id
JOIN contact_erasures r ON r.tenant = e.tenant AND r.pseudonym = e.contact_id
"""
# The archived transcripts of these calls that arrived before them.
TRANSCRIPTS_OF_CALL = """
SELECT event_id FROM events
WHERE tenant = $1 AND type = 'call.transcribed' AND (payload ->> 'call_event_id') = any($2::text[])
"""


async def erase_new(conn: asyncpg.Connection, events: Sequence[Event], updates: Sequence[CrmUpdate]) -> None:
    """Store the batch's events and updates of erased contacts erased (in place, before the archive)."""
    registers = await _registers(conn, {e.tenant for e in events} | {u.tenant for u in updates})
    if not registers:
        return
    aliases: dict[tuple[str, str], str] = {}  # (tenant, erased contact's id) -> its pseudonym
    for tenant, contact in _contacts(events, updates):
        register = registers.get(tenant)
        if register is not None and (named := pseudonym(register.key, contact)) in register.pseudonyms:
            aliases[(tenant, contact)] = named
    now = datetime.now(UTC)
    calls: dict[str, list[str]] = {}  # tenant -> its erased contacts' calls in this batch
    for e in events:
        alias = aliases.get((e.tenant, e.contact_id or ""))
        if alias is not None:
            _erase_event(e, alias, now)
            if e.type == CALL_COMPLETED:
                calls.setdefault(e.tenant, []).append(e.event_id)
    await _erase_call_transcripts(conn, [e for e in events if e.tenant in registers], calls, now)
    for u in updates:
        _erase_update(u, aliases)


@dataclass(frozen=True)
class Register:
    key: bytes
    pseudonyms: frozenset[str]


# The registers of erased contacts by tenant, as last read: a register only grows, so one whose size
# is unchanged is the same. Read inside the batch transaction, under the lock erasures take
# exclusively, so the size cannot change until the batch commits.
_REGISTERS: dict[str, Register] = {}


async def _registers(conn: asyncpg.Connection, tenants: set[str]) -> dict[str, Register]:
    """The registers of those of `tenants` that erased contacts (one indexed look-up when none did)."""
    found: dict[str, Register] = {}
    for row in await conn.fetch(REGISTER_SIZES, sorted(tenants)):
        tenant, key = row["tenant"], bytes(row["key"])
        held = _REGISTERS.get(tenant)
        if held is None or held.key != key or len(held.pseudonyms) != row["size"]:
            names = frozenset(r["pseudonym"] for r in await conn.fetch(REGISTER, tenant))
            held = _REGISTERS[tenant] = Register(key, names)
        found[tenant] = held
    return found


def _contacts(events: Sequence[Event], updates: Sequence[CrmUpdate]) -> set[tuple[str, str]]:
    found = {(e.tenant, e.contact_id) for e in events if e.contact_id is not None}
    for u in updates:
        if u.entity == "contact":
            found.add((u.tenant, u.entity_id))
        if u.property == "contact" and u.value is not None:
            found.add((u.tenant, u.value))
    return found


def _erase_event(e: Event, alias: str | None, now: datetime) -> None:
    """Erase the event in place: the contact (when `alias` is given) and its transcript's text."""
    data = orjson.loads(e.payload)
    if alias is not None and e.contact_id is not None:
        erase_contact(data, e.contact_id, alias)
    if has_kept_text(data):
        erase_transcript(data, analysis_json(analyse(data["transcript"])), now)
    e.payload = orjson.dumps(data).decode()
    e.event_id, e.contact_id, e.call_event_id = (
        data["event_id"],
        data.get("contact_id"),
        data.get("call_event_id"),
    )
    if e.attribution is not None:
        e.entity = entity_of(e)


async def _erase_call_transcripts(
    conn: asyncpg.Connection, events: Sequence[Event], calls: dict[str, list[str]], now: datetime
) -> None:
    """Transcripts of erased contacts' calls that do not name the contact themselves."""
    transcribed = [e for e in events if e.type == CALL_TRANSCRIBED and e.call_event_id is not None]
    asked = sorted({(e.tenant, e.call_event_id) for e in transcribed if e.call_event_id is not None})
    archived = await conn.fetch(ERASED_CALLS, [t for t, _ in asked], [c for _, c in asked]) if asked else []
    erased_calls = {(r["tenant"], r["event_id"]) for r in archived}
    erased_calls.update((t, c) for t, ids in calls.items() for c in ids)
    for e in transcribed:
        if (e.tenant, e.call_event_id) in erased_calls:
            _erase_event(e, None, now)
    for tenant, ids in sorted(calls.items()):
        earlier = [r["event_id"] for r in await conn.fetch(TRANSCRIPTS_OF_CALL, tenant, sorted(ids))]
        await erase_transcripts(conn, tenant, earlier, now, lambda t: analysis_json(analyse(t)))


def _erase_update(u: CrmUpdate, aliases: Mapping[tuple[str, str], str]) -> None:
    contact = u.entity_id if u.entity == "contact" else u.value if u.property == "contact" else None
    alias = aliases.get((u.tenant, contact or ""))
    if alias is None or contact is None:
        return
    data: dict[str, Any] = {"entity": u.entity, "entity_id": u.entity_id, "property": u.property,
                            "value": u.value, "update_id": u.update_id}  # fmt: skip
    erase_update(data, contact, alias)
    u.entity_id, u.value, u.update_id = data["entity_id"], data["value"], data["update_id"]


# -- what the conversation fold reads -------------------------------------------------------------


def analysis_json(a: CallAnalysis) -> dict[str, Any]:
    """The analysis an erased transcript keeps (services/core/privacy.py, ANALYSIS_FIELDS)."""
    return {
        "words": a.words,
        "metrics": dict(a.metrics),
        "moments": [{"tactic": m.tactic, "speaker": m.speaker, "start_s": m.start_s} for m in a.moments],
        "rep_speech_s": a.rep_speech_s,
        "buyer_speech_s": a.buyer_speech_s,
    }


def analysis_of(payload: str) -> tuple[CallAnalysis, bool]:
    """For the conversation fold: the analysis of an event's transcript, and whether its text was
    erased. An erased transcript counts by the analysis it kept (its moments' text empty); one whose
    analysis was not kept (it had lost to a later transcript of its call) as no transcript."""
    data = orjson.loads(payload)
    kept = data.get(ERASED)
    if not isinstance(kept, dict):
        transcript = data.get("transcript")
        return analyse(transcript if isinstance(transcript, list) else []), False
    a = kept.get("analysis")
    if not isinstance(a, dict):
        return analyse([]), True
    moments = tuple(Moment(m["tactic"], m["speaker"], m["start_s"], "") for m in a["moments"])
    return CallAnalysis(a["words"], dict(a["metrics"]), moments, a["rep_speech_s"], a["buyer_speech_s"]), True


def erased_contact(tenant: str, contact_id: str | None) -> bool:
    """For the conversation fold: whether an event's contact is an erased one (its id a pseudonym:
    the batch's events of erased contacts were rewritten before the fold)."""
    return is_pseudonym(contact_id)
