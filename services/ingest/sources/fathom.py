"""Fathom webhooks: a recorded meeting, its transcript included, signed the Standard Webhooks way.

Fathom (an AI notetaker for video calls) posts its "new meeting content ready" webhook once a
recording is processed: one meeting object per delivery (`recording_id`, `recording_start_time`,
`recording_end_time`, `recorded_by`, `calendar_invitees`, `calendar_invitees_domains_type`, and the
`transcript` when the webhook includes it). Its signature is Standard Webhooks', as Fathom's own SDKs
verify it: `webhook-id`, `webhook-timestamp` (Unix seconds, within 5 minutes) and `webhook-signature`,
space-separated `v1,<base64 HMAC-SHA256>` entries over `{id}.{timestamp}.{body}`, keyed with the
webhook's secret (`whsec_<base64 key>`); one matching entry is enough.

A meeting with a buyer (Fathom's `calendar_invitees_domains_type` is `one_or_more_external`) becomes
one `call.completed`: outcome connected, no direction (a meeting is neither dialled nor answered, so it
is no dial), `occurred_at` the recording's start, `duration_s` the recording's length, event id
`fathom:{recording_id}`, the rep named by the recorder's email address (an `email` alias), the buyer
(`contact_id`) by the first external invitee's address, and the transcript with each speaker on the
rep's side or the buyer's (see `Sides`). An internal meeting is acknowledged and ignored.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from standardwebhooks.webhooks import EmptyWebhookSecretError, Webhook

from services.core import limits
from services.core.events import EventType, Source, Speaker

from .common import InboundRequest, MappingContext, Normalised, PayloadError, SignatureError
from .kit import check_signed_time, equal, header, json_object, make_event, rep_identity, required, text
from .registry import Vendor

ID, TIMESTAMP, SIGNATURE = "webhook-id", "webhook-timestamp", "webhook-signature"
SECRET_PREFIX = "whsec_"
# Fathom times each utterance's start, to the second, and not its end: an utterance lasts until the
# next one starts, but no longer than a slow speaker takes to say it (1 s a word, plus 2 s), so a
# break or a recording left running is not counted as speech.
SECONDS_PER_WORD, GRACE_S = 1.0, 2.0
_OFFSET = re.compile(r"([0-9]{1,4}):([0-5][0-9]):([0-5][0-9])(?:\.([0-9]{1,6}))?")
_ID_CHECK = limits.identity(limits.MAX_ID_LEN)
_MAX_ATTRIBUTE = 500  # characters kept of the title and URL
_NAMES = {
    "event_id": "recording_id",
    "occurred_at": "recording_start_time",
    "duration_s": "recording_end_time",
}


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `v1,<base64>` entry Fathom sends for `body`: the Standard Webhooks library's own signature."""
    webhook = _webhook(secret)
    if webhook is None:
        raise ValueError("not a Standard Webhooks secret")
    return webhook.sign(msg_id, datetime.fromtimestamp(timestamp, UTC), body.decode())


def verify(request: InboundRequest, secret: str, options: None = None) -> None:
    # The library's Webhook.verify would read the wall clock; adapters take the time of the request.
    msg_id = (header(request.headers, ID) or "").strip()
    entries = (header(request.headers, SIGNATURE) or "").split()
    if not msg_id:
        raise SignatureError(f"missing {ID} header")
    if not entries:
        raise SignatureError(f"missing {SIGNATURE} header")
    sent_at = check_signed_time(header(request.headers, TIMESTAMP), TIMESTAMP, request.now, unit="s")
    try:
        expected = sign(secret, msg_id, int(sent_at), request.body)
    except (ValueError, UnicodeDecodeError):  # an unusable secret; a body that is not UTF-8 text
        raise SignatureError("signature does not match") from None
    # Entries of another version or malformed ones cannot equal ours and are passed over.
    if not any(equal(expected, entry) for entry in entries):
        raise SignatureError("signature does not match")


def parse(body: bytes) -> dict[str, Any]:
    return json_object(body, "a Fathom meeting object")


def to_events(payload: dict[str, Any], ctx: MappingContext, options: None = None) -> Normalised:
    recording_id = required(payload, "recording_id")
    invitees = _invitees(payload.get("calendar_invitees"))
    if not _with_buyer(payload, invitees):
        return Normalised(events=[], ignored=1)
    started = _time(payload, "recording_start_time")
    if started is None:
        raise PayloadError("recording_start_time", "is required")
    ended = _time(payload, "recording_end_time")
    duration_s = None if ended is None else (ended - started).total_seconds()
    if duration_s is not None and duration_s < 0:
        raise PayloadError("recording_end_time", "must not be before recording_start_time")
    recorder = _object(payload, "recorded_by")
    sides = Sides.of(recorder, invitees)
    transcript, unmatched = _transcript(payload.get("transcript"), sides, duration_s)
    attributes = {
        "fathom_title": _short(payload.get("meeting_title")) or _short(payload.get("title")),
        "fathom_url": _short(payload.get("url")),
        "fathom_unmatched_segments": unmatched or None,
    }
    event = make_event(
        ctx,
        names=_NAMES,
        rep_alias=rep_identity("email", _email(recorder.get("email"))),
        event_id=f"fathom:{recording_id}",
        type=EventType.CALL_COMPLETED,
        occurred_at=started,
        outcome="connected",
        duration_s=duration_s,
        contact_id=_contact(invitees, sides.rep_domain),
        transcript=transcript,
        attributes={k: v for k, v in attributes.items() if v is not None},
    )
    return Normalised(events=[event], ignored=0)


@dataclass(frozen=True)
class Sides:
    """Who speaks for the seller: the recorder and the internal invitees, by address or by name.

    A speaker Fathom matched to an invitee's address takes that invitee's side (an address of the
    recorder's domain that is no invitee's counts as the seller's too); one without an address is the
    seller's when the name is the recorder's or an internal invitee's. Everyone else is the buyer's:
    in a meeting with external invitees, a voice the invitation does not name is most likely one of
    the buyer's colleagues, and BuyerEvent transcripts know only `rep` and `buyer`. Such a guess (a
    speaker neither address nor name places) is counted in the attribute `fathom_unmatched_segments`.
    """

    rep_emails: frozenset[str]
    buyer_emails: frozenset[str]
    rep_names: frozenset[str]
    buyer_names: frozenset[str]
    rep_domain: str | None

    @classmethod
    def of(cls, recorder: Mapping[str, Any], invitees: Sequence[Mapping[str, Any]]) -> Sides:
        recorder_email = _email(recorder.get("email"))
        domain = _domain(text(recorder.get("email_domain")) or recorder_email)
        internal = [i for i in invitees if not _external(i, domain)]
        external = [i for i in invitees if _external(i, domain)]
        emails = [recorder_email, *(_email(i.get("email")) for i in internal)]
        return cls(
            rep_emails=frozenset(e for e in emails if e),
            buyer_emails=frozenset(e for e in (_email(i.get("email")) for i in external) if e),
            rep_names=_names(internal) | _names([recorder]),
            buyer_names=_names(external),
            rep_domain=domain,
        )

    def side(self, speaker: Mapping[str, Any]) -> tuple[Speaker, bool]:
        """The speaker's side, and whether it is a guess (no address or name of the meeting's)."""
        email = _email(speaker.get("matched_calendar_invitee_email"))
        if email is not None:
            ours = email in self.rep_emails or (email not in self.buyer_emails and self._ours(email))
            return ("rep" if ours else "buyer"), False
        name = _name(speaker.get("display_name"))
        if name in self.rep_names:
            return "rep", False
        return "buyer", name not in self.buyer_names

    def _ours(self, email: str) -> bool:
        return self.rep_domain is not None and _domain(email) == self.rep_domain


def _names(people: Sequence[Mapping[str, Any]]) -> frozenset[str]:
    """The names people go by in the meeting: as invited, and as Fathom matched them to a speaker."""
    names = (_name(p.get(key)) for p in people for key in ("name", "matched_speaker_display_name"))
    return frozenset(name for name in names if name)


def _transcript(
    value: Any, sides: Sides, duration_s: float | None
) -> tuple[list[dict[str, Any]] | None, int]:
    """The BuyerEvent transcript (None when the delivery has none) and how many segments' speakers
    were guessed. Segments are sorted by start; blank ones are left out."""
    if value is None:
        return None, 0
    if not isinstance(value, list):
        raise PayloadError("transcript", "must be a list of transcript items")
    if len(value) > limits.MAX_TRANSCRIPT_SEGMENTS:
        raise PayloadError("transcript", f"must have at most {limits.MAX_TRANSCRIPT_SEGMENTS} items")
    segments: list[dict[str, Any]] = []
    guessed = 0
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise PayloadError(f"transcript.{i}", "must be a transcript item")
        speaker = item.get("speaker")
        if not isinstance(speaker, dict):
            raise PayloadError(f"transcript.{i}.speaker", "must be an object")
        words = _words(item.get("text"), f"transcript.{i}.text")
        start_s = _offset(item.get("timestamp"), f"transcript.{i}.timestamp")
        if not words.strip():
            continue
        side, guess = sides.side(speaker)
        guessed += guess
        segments.append({"speaker": side, "start_s": start_s, "end_s": start_s, "text": words})
    segments.sort(key=lambda s: s["start_s"])
    # Each segment's next start; after the last (of none, nothing), the recording's end.
    for segment, after in zip(segments, [*(s["start_s"] for s in segments[1:]), duration_s], strict=False):
        said = segment["start_s"] + GRACE_S + SECONDS_PER_WORD * len(segment["text"].split())
        end_s = said if after is None else min(after, said)
        segment["end_s"] = max(segment["start_s"], min(end_s, limits.MAX_SECONDS))
    return segments, guessed


def _offset(value: Any, where: str) -> int | float:
    """An `HH:MM:SS` offset into the recording, in seconds."""
    match = _OFFSET.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise PayloadError(where, "must be an offset HH:MM:SS into the recording")
    hours, minutes, seconds, fraction = match.groups()
    whole = int(hours) * 3600 + int(minutes) * 60 + int(seconds)
    if whole > limits.MAX_SECONDS:
        raise PayloadError(where, f"must be at most {limits.MAX_SECONDS} seconds into the recording")
    return whole + float(f"0.{fraction}") if fraction else whole


def _words(value: Any, where: str) -> str:
    try:
        return limits.free_text(value)
    except limits.Invalid as exc:
        raise PayloadError(where, exc.reason) from None


def _invitees(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise PayloadError("calendar_invitees", "must be a list of invitees")
    for i, invitee in enumerate(value):
        if not isinstance(invitee, dict):
            raise PayloadError(f"calendar_invitees.{i}", "must be an invitee object")
    return value


def _with_buyer(payload: Mapping[str, Any], invitees: Sequence[Mapping[str, Any]]) -> bool:
    """Whether the meeting had someone from outside: Fathom's own verdict, else an external invitee."""
    kind = text(payload.get("calendar_invitees_domains_type"))
    if kind in ("only_internal", "one_or_more_external"):
        return kind == "one_or_more_external"
    return any(invitee.get("is_external") is True for invitee in invitees)


def _external(invitee: Mapping[str, Any], rep_domain: str | None) -> bool:
    flag = invitee.get("is_external")
    if isinstance(flag, bool):
        return flag is True
    domain = _domain(text(invitee.get("email_domain")) or _email(invitee.get("email")))
    return domain is not None and domain != rep_domain


def _contact(invitees: Sequence[Mapping[str, Any]], rep_domain: str | None) -> str | None:
    """The first external invitee's address, as the buyer's contact id (None if it cannot be one)."""
    for invitee in invitees:
        email = _email(invitee.get("email")) if _external(invitee, rep_domain) else None
        if email is not None:
            try:
                return str(_ID_CHECK(email))
            except limits.Invalid:
                return None
    return None


def _object(payload: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = payload.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PayloadError(name, "must be an object")
    return value


def _time(payload: Mapping[str, Any], name: str) -> datetime | None:
    value = text(payload.get(name))
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise PayloadError(name, "must be an ISO 8601 time with an offset")
    return parsed


def _email(value: Any) -> str | None:
    """An address as Fathom sends it, lower-cased (addresses are matched without regard to case)."""
    email = text(value)
    return email.lower() if email is not None and "@" in email else None


def _domain(value: str | None) -> str | None:
    return value.rpartition("@")[2].lower() or None if value else None


def _name(value: Any) -> str | None:
    name = text(value)
    return " ".join(name.casefold().split()) if name is not None else None


def _short(value: Any) -> str | None:
    item = text(value)
    return item[:_MAX_ATTRIBUTE] if item is not None and "\x00" not in item else None


@lru_cache(maxsize=256)
def _webhook(secret: str) -> Webhook | None:
    try:
        return Webhook(secret)
    except (EmptyWebhookSecretError, binascii.Error, ValueError):
        return None


def check_secret(secret: str) -> None:
    """ValueError unless the secret is a Standard Webhooks secret: base64, `whsec_` before it or not."""
    key = secret.removeprefix(SECRET_PREFIX)
    try:
        usable = bool(base64.b64decode(key + "=" * (-len(key) % 4), validate=True))
    except (binascii.Error, ValueError):
        usable = False
    if not usable:
        raise ValueError(
            "the Fathom secret is the webhook's secret (whsec_...), shown in Fathom's API Access settings"
            " when the webhook is added, or returned by Fathom's create-webhook API"
        )


def _secret_decoy() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


VENDOR = Vendor(
    Source.FATHOM, "Fathom", __doc__, verify, parse, to_events, decoy=_secret_decoy, check_secret=check_secret
)
