"""What an erased contact and an erased transcript look like where salesloop stores them (SPEC 5.7).

Pure: no I/O. The API's contact erasure, the aggregator's erasure of new events and its transcript
retention all write through these rules (their SQL: services/core/privacy_sql.py and the modules
that call it).

- A contact id becomes its **pseudonym**: `erased:` and 32 hex digits of a keyed BLAKE2b hash (a
  MAC) under the tenant's random pseudonym key. Not reversible, and stable: every row of the contact
  gets the same one, so leads, deals and first touches still join, and a later event of the contact
  is recognised (its pseudonym is in the register) and stored erased. In ids that embed the contact
  id as one of their `:`-separated parts (HubSpot's and Salesforce's event ids do), that part is
  replaced too, the same way for a redelivery, which therefore still finds the archived event. (An
  analysed call, which nothing joins by contact, keeps no contact id at all once erased.)
- Why a key kept in the database rather than one derived from SALESLOOP_SECRET_KEY: rotating that
  secret would change every pseudonym, and the contacts erased before would no longer be recognised.
- An erased contact's events lose their `attributes` (free-form: they may hold phone numbers, e-mail
  addresses, the vendor's contact id).
- An erased **transcript** keeps its segments' speakers and times with empty text, and its analysis
  as it was when erased, under `transcript_erased: {at, analysis}`. The conversation fold takes that
  analysis instead of analysing empty text, so every count and metric stays, also after a rebuild.
  `analysis` is null for a transcript whose analysis no longer counted (a later one of the call won).
- A moment keeps its tactic, speaker and start with `text` null.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import orjson

PSEUDONYM_PREFIX = "erased:"
ERASED = "transcript_erased"  # the payload key an erased transcript carries
KEY_BYTES = 32

# The analysis an erased transcript keeps: what the conversation fold needs to count it again.
ANALYSIS_FIELDS = ("words", "metrics", "moments", "rep_speech_s", "buyer_speech_s")
MOMENT_FIELDS = ("tactic", "speaker", "start_s")

_PSEUDONYM = re.compile(re.escape(PSEUDONYM_PREFIX) + "[0-9a-f]{32}")


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def pseudonym(key: bytes, contact_id: str) -> str:
    """The contact's stable stand-in: `erased:` + 128 bits of BLAKE2b keyed with `key`, in hex."""
    return PSEUDONYM_PREFIX + hashlib.blake2b(contact_id.encode(), key=key, digest_size=16).hexdigest()


def is_pseudonym(value: str | None) -> bool:
    """Whether a contact id is an erased contact's pseudonym."""
    return value is not None and _PSEUDONYM.fullmatch(value) is not None


def replace_part(text: str, old: str, new: str) -> str:
    """`text` with every `:`-separated part (or run of parts) equal to `old` replaced by `new`."""
    if text == old:
        return new
    if old not in text:
        return text
    return re.sub(rf"(?<![^:]){re.escape(old)}(?![^:])", lambda _: new, text)


def blank_transcript(segments: list[Any]) -> list[Any]:
    """The segments with their text emptied (speakers and times kept)."""
    return [{**s, "text": ""} if isinstance(s, dict) else s for s in segments]


def has_kept_text(data: Mapping[str, Any]) -> bool:
    """Whether an event carries a transcript whose text was not erased."""
    return isinstance(data.get("transcript"), list) and ERASED not in data


def erase_transcript(data: dict[str, Any], analysis: Mapping[str, Any] | None, at: datetime) -> bool:
    """Empty the transcript's text in place, keeping `analysis`; False if there was none to erase."""
    if not has_kept_text(data):
        return False
    data["transcript"] = blank_transcript(data["transcript"])
    data[ERASED] = {"at": at.isoformat(), "analysis": None if analysis is None else dict(analysis)}
    return True


def erase_contact(data: dict[str, Any], contact_id: str, alias: str) -> None:
    """Replace the contact's id by its pseudonym `alias` in an event (in place) and drop its attributes."""
    if data.get("contact_id") == contact_id:
        data["contact_id"] = alias
    for name in ("event_id", "call_event_id"):
        if isinstance(data.get(name), str):
            data[name] = replace_part(data[name], contact_id, alias)
    data.pop("attributes", None)


def erase_update(data: dict[str, Any], contact_id: str, alias: str) -> None:
    """The same for a CRM update message (services/core/crm.py): the contact's own record, or a deal's
    `contact` property naming it."""
    if data.get("entity") == "contact" and data.get("entity_id") == contact_id:
        data["entity_id"] = alias
    if data.get("property") == "contact" and data.get("value") == contact_id:
        data["value"] = alias
    if isinstance(data.get("update_id"), str):
        data["update_id"] = replace_part(data["update_id"], contact_id, alias)


def erased_moments(moments: Iterable[Any]) -> list[Any]:
    """Moments as stored (`call_analyses.moments`) without their text."""
    return [{**m, "text": None} if isinstance(m, dict) else m for m in moments]


def analysis_of_row(row: Mapping[str, Any], metrics: Iterable[str]) -> dict[str, Any]:
    """The analysis to keep, from a stored `call_analyses` row (its `moments` decoded)."""
    return {
        "words": row["words"],
        "metrics": {m: row[m] for m in metrics},
        "moments": [{k: m.get(k) for k in MOMENT_FIELDS} for m in row["moments"] if isinstance(m, dict)],
        "rep_speech_s": row["rep_speech_s"],
        "buyer_speech_s": row["buyer_speech_s"],
    }


def message_contacts(value: bytes) -> set[str]:
    """The contact ids a Kafka message (a BuyerEvent or CRM update, as `failed_events` keeps it) names."""
    data = _json_object(value)
    if data is None:
        return set()
    named = {data.get("contact_id")}
    if data.get("entity") == "contact":
        named.add(data.get("entity_id"))
    if data.get("property") == "contact":
        named.add(data.get("value"))
    return {c for c in named if isinstance(c, str) and c}


def erase_message(value: bytes, contact_id: str, alias: str, at: datetime) -> bytes:
    """A dead letter's message with the contact erased: the event's (or update's) ids, its attributes
    and its transcript's text (no analysis: a dead letter was never analysed). A message that is no
    JSON object has the contact id replaced where it stands as a JSON string."""
    data = _json_object(value)
    if data is None:
        token, replacement = orjson.dumps(contact_id), orjson.dumps(alias)
        return value.replace(token, replacement)
    if "entity" in data:
        erase_update(data, contact_id, alias)
    else:
        erase_contact(data, contact_id, alias)
        erase_transcript(data, None, at)
    return orjson.dumps(data)


def erase_message_key(key: bytes | None, tenant: str | None, contact_id: str, alias: str) -> bytes | None:
    """A message key `{tenant}:{contact id}` (SPEC 2; CRM updates: `{tenant}:{entity id}`) with the
    contact's pseudonym; other keys unchanged."""
    if key is None or tenant is None or key != f"{tenant}:{contact_id}".encode():
        return key
    return f"{tenant}:{alias}".encode()


def _json_object(value: bytes) -> dict[str, Any] | None:
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None
