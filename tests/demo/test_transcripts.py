"""The demo's transcripts without any I/O: realistic in shape, recorded where the plan says, and the
Voss tactics the analysis finds in each call are exactly the ones its lines were written as."""

from __future__ import annotations

import random
import statistics
from collections import Counter

import pytest

from devstack.demo import dialogue, transcripts
from devstack.demo.model import TRANSCRIBED_DAYS
from devstack.demo.recordings import RECORDED_SHARE, TRANSCRIBED_SHARE
from devstack.demo.simulate import DemoEvent
from devstack.demo.transcripts import LABELLER, MONOLOGUE, NORMAL, Segment, TalkStyle
from services.aggregator.conversation import TACTICS
from services.aggregator.conversation.text import is_backchannel
from tests.demo import reference
from tests.demo.conftest import SmallOrg


def with_transcript(events: list[DemoEvent]) -> list[DemoEvent]:
    return [e for e in events if e.transcript is not None]


def planted(transcript: tuple[Segment, ...]) -> Counter[str]:
    return Counter(t for s in transcript for t in s.tactics)


def test_every_transcript_holds_exactly_the_tactics_its_lines_were_written_as(small_org: SmallOrg) -> None:
    _, events = small_org
    recorded = with_transcript(events)
    assert len(recorded) > 500
    seen: Counter[str] = Counter()
    for e in recorded:
        assert e.transcript is not None
        found = Counter(m.tactic for m in reference.analysis(e.transcript).moments)
        assert found == planted(e.transcript), e.event_id
        seen += found
    assert set(seen) == set(TACTICS)  # every tactic occurs somewhere in the organisation


@pytest.mark.parametrize("style", [NORMAL, MONOLOGUE, LABELLER])
def test_any_generated_call_keeps_its_tactics(style: TalkStyle) -> None:
    # Beyond the demo organisation: many calls, phone and video, short and long.
    for i in range(150):
        rng = random.Random(f"calls:{i}")
        target = rng.choice((60.0, 180.0, 300.0, 900.0))
        segments = transcripts.write(
            style, rng, rep="Ben Adler", buyer="Jo", target_s=target, meeting=i % 3 == 0
        )
        if i % 2:
            segments, _ = transcripts.in_whole_seconds(segments, tail_s=10)
        found = Counter(m.tactic for m in reference.analysis(tuple(segments)).moments)
        assert found == planted(tuple(segments)), (i, target)


def test_transcripts_look_like_calls(small_org: SmallOrg) -> None:
    _, events = small_org
    calls = {e.event_id: e for e in events if e.type == "call.completed"}
    sizes = []
    for e in with_transcript(events):
        segments = e.transcript or ()
        sizes.append(len(segments))
        assert [s.start_s for s in segments] == sorted(s.start_s for s in segments)
        assert all(0 <= s.start_s <= s.end_s for s in segments)
        assert {s.speaker for s in segments} == {"rep", "buyer"}
        assert segments[0].speaker == "rep"
        backchannels = [s for s in segments if is_backchannel(s.text)]
        assert all(s.speaker == "buyer" for s in backchannels)
        words = sum(len(s.text.split()) for s in segments)
        span = segments[-1].end_s - segments[0].start_s
        assert 1.0 <= words / span <= 3.6  # people say 2-3 words a second, and pause
        call = calls[e.call_event_id or e.event_id]
        assert segments[-1].end_s <= (call.duration_s or 0)  # the transcript fits in its call
    assert 40 <= statistics.median(sizes) <= 90
    assert max(sizes) <= 125


def test_phone_calls_are_transcribed_later_and_meetings_recorded_by_fathom(small_org: SmallOrg) -> None:
    org, events = small_org
    calls = {e.event_id: e for e in events if e.type == "call.completed"}
    since = org.plant.transcribed_from
    assert (org.last_day - since).days + 1 == TRANSCRIBED_DAYS
    transcribed = [e for e in events if e.type == "call.transcribed"]
    for t in transcribed:
        call = calls[t.call_event_id or ""]
        assert call.via in ("twilio", "aircall")
        assert call.outcome == "connected"
        assert call.transcript is None
        assert (t.via, t.rep_id) == ("api", call.rep_id)
        assert call.occurred_at < t.occurred_at < org.end
        assert call.occurred_at.date() >= since
    connected = [
        c
        for c in calls.values()
        if c.outcome == "connected" and c.direction and c.occurred_at.date() >= since
    ]
    assert len(transcribed) == pytest.approx(TRANSCRIBED_SHARE * len(connected), rel=0.15)

    recorded = [e for e in events if e.via == "fathom"]
    held = [e for e in events if e.type == "meeting.held" and e.occurred_at.date() >= since]
    assert len(recorded) == pytest.approx(RECORDED_SHARE * len(held), rel=0.2)
    for e in recorded:
        assert (e.type, e.outcome, e.direction) == ("call.completed", "connected", None)
        segments = e.transcript or ()
        # Fathom times an utterance's start in whole seconds and derives its end.
        assert all(s.start_s == int(s.start_s) for s in segments)
        assert segments[-1].end_s <= (e.duration_s or 0)
        assert e.contact_id == e.extra["buyer_email"]


def test_summaries_are_long_enough_and_confirmed() -> None:
    rng = random.Random(3)
    for gist in (p.gist for p in dialogue.PAINS):
        assert len(transcripts.summary(rng, [gist]).split()) >= transcripts.SUMMARY_MIN_WORDS
    for i in range(200):
        rng = random.Random(f"labeller:{i}")
        segments = transcripts.write(
            LABELLER, rng, rep="Ines Haas", buyer="Sam", target_s=300.0, meeting=False
        )
        summaries = [i for i, s in enumerate(segments) if "summary" in s.tactics]
        for at in summaries:
            assert "thats_right" in segments[at + 1].tactics  # the buyer confirms: "That's right."


def test_the_same_seed_writes_the_same_transcripts(small_org: SmallOrg) -> None:
    _, events = small_org
    rng = random.Random("same")
    first = transcripts.write(NORMAL, rng, rep="A B", buyer="C", target_s=240.0, meeting=False)
    again = transcripts.write(
        NORMAL, random.Random("same"), rep="A B", buyer="C", target_s=240.0, meeting=False
    )
    assert first == again
    ids = [e.event_id for e in with_transcript(events)]
    assert len(ids) == len(set(ids))
