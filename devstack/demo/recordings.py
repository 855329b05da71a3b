"""The demo's transcripts: which calls and meetings were recorded, and how their transcripts arrive.

Conversation intelligence was switched on `plant.transcribed_from` (TRANSCRIBED_DAYS before the end).
Since then:

- a share of the connected phone calls (of a minute and a half or more) were transcribed: the
  transcript arrives a few minutes after the call as a canonical `call.transcribed` naming it
  (`call_event_id`), as a transcription service posts it (phone systems' call webhooks carry none);
- a share of the held meetings were video calls recorded by Fathom: the Fathom webhook posts the
  recording, transcript included, as a `call.completed` of its own (docs/vendors/fathom.md).

Each transcript is written in the rep's style (devstack.demo.transcripts) from a generator seeded by
the organisation's seed and the call's event id: pure, the same every time, and independent of
every other event's randomness.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING

from devstack.demo import dialogue
from devstack.demo.transcripts import fitted, in_whole_seconds, write

if TYPE_CHECKING:
    from devstack.demo.model import Organisation
    from devstack.demo.simulate import DemoEvent

TRANSCRIBED_SHARE = 0.5  # of connected phone calls ...
MIN_TRANSCRIBED_S = 90  # ... that lasted this long: shorter ones are not worth transcribing
RECORDED_SHARE = 0.6  # of held meetings
MEETING_MEDIAN_S = 900.0  # a recorded discovery meeting's talk
TRANSCRIPTION_DELAY_S = (90, 900)
BUYER_DOMAIN = "buyer.example"


def recordings(org: Organisation, activity: Iterable[DemoEvent]) -> list[DemoEvent]:
    """The transcript events of the organisation's recorded calls and meetings, in the activity's order."""
    return [t for e in activity if e.occurred_at.date() >= org.plant.transcribed_from for t in _of(org, e)]


def _of(org: Organisation, e: DemoEvent) -> Iterator[DemoEvent]:
    if e.rep_id is None or not (
        (e.type == "call.completed" and e.outcome == "connected") or e.type == "meeting.held"
    ):
        return
    rng = random.Random(f"salesloop-demo-transcript:{org.seed}:{e.event_id}")
    if e.type == "call.completed" and rng.random() < TRANSCRIBED_SHARE:
        if (e.duration_s or 0) >= MIN_TRANSCRIBED_S:
            yield from _transcribed(org, e, rng)
    elif e.type == "meeting.held" and rng.random() < RECORDED_SHARE:
        yield _recorded(org, e, rng)


def _transcribed(org: Organisation, call: DemoEvent, rng: random.Random) -> Iterator[DemoEvent]:
    rep = org.rep(call.rep_id or "")
    buyer = rng.choice(dialogue.BUYER_NAMES)
    length = call.duration_s or 0
    written = write(org.styles[rep.rep_id], rng, rep=rep.name, buyer=buyer, target_s=length, meeting=False)
    segments = fitted(written, length)
    at = call.occurred_at + timedelta(seconds=rng.randint(*TRANSCRIPTION_DELAY_S))
    if at >= org.end:
        return  # still being transcribed when the data ends
    yield replace(
        call,
        event_id=f"demo-{org.namespace}-transcript-{_digest(call.event_id)}",
        type="call.transcribed",
        occurred_at=at,
        via="api",
        direction=None,
        outcome=None,
        duration_s=None,
        call_event_id=call.event_id,
        transcript=tuple(segments),
        ref=None,
        extra={},
    )


def _recorded(org: Organisation, meeting: DemoEvent, rng: random.Random) -> DemoEvent:
    """The Fathom recording of a held meeting: a connected call without direction, its transcript
    timed as Fathom times it, the buyer known by the invitee's address."""
    rep = org.rep(meeting.rep_id or "")
    buyer = rng.choice(dialogue.BUYER_NAMES)
    target = rng.lognormvariate(math.log(MEETING_MEDIAN_S), 0.3)
    written = write(org.styles[rep.rep_id], rng, rep=rep.name, buyer=buyer, target_s=target, meeting=True)
    segments, length = in_whole_seconds(written, tail_s=rng.randint(5, 40))
    recording_id = org.namespace * 10**12 + int(_digest(meeting.event_id), 16) % 10**12
    buyer_email = f"{meeting.contact_id}@{BUYER_DOMAIN}".lower()
    return replace(
        meeting,
        event_id=f"fathom:{recording_id}",
        type="call.completed",
        via="fathom",
        contact_id=buyer_email,
        outcome="connected",
        duration_s=length,
        transcript=tuple(segments),
        ref=str(recording_id),
        extra={"rep_name": rep.name, "rep_email": rep.email, "buyer_name": buyer, "buyer_email": buyer_email},
    )


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
