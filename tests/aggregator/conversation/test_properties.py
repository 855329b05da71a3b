"""Properties of the analysis over generated transcripts: any order of the same segments gives the same
analysis, metrics stay within their bounds, moments belong to the speaker and segment they name, and no
text breaks it."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from services.aggregator.conversation import METRICS, TACTICS, analyse
from tests.aggregator.conversation.labelled import DIALOGUES

BUYER_TACTICS = {"thats_right", "youre_right"}
_SAID = sorted({text for dialogue in DIALOGUES for _, text, _ in dialogue})
_TEXT = st.one_of(
    st.sampled_from(_SAID),
    st.sampled_from(["Mhm.", "Yeah.", "Right?", "That's right.", "okay okay", "", "...", "uh-huh, got it"]),
    st.text(max_size=40),
)


@st.composite
def segments(draw: st.DrawFn) -> list[dict[str, object]]:
    found = []
    for _ in range(draw(st.integers(0, 16))):
        start = draw(st.integers(0, 1200)) / 10  # tenths of a second within 2 minutes: overlaps, some ties
        length = draw(st.integers(0, 600)) / 10
        speaker = draw(st.sampled_from(["rep", "buyer"]))
        found.append({"speaker": speaker, "start_s": start, "end_s": start + length, "text": draw(_TEXT)})
    return found


@settings(max_examples=60, deadline=None)
@given(segments(), st.randoms(use_true_random=False))
def test_the_order_of_the_segments_does_not_matter(transcript: list[dict[str, object]], rnd: object) -> None:
    shuffled = list(transcript)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert analyse(shuffled) == analyse(transcript)


@settings(max_examples=100, deadline=None)
@given(segments())
def test_metrics_stay_within_bounds(transcript: list[dict[str, object]]) -> None:
    a = analyse(transcript)
    m = a.metrics
    assert set(m) == set(METRICS)
    spoken = [s for s in transcript if any(c.isalnum() for c in str(s["text"]))]
    if a.words == 0:
        assert all(v is None for v in m.values())
        assert a.moments == ()
        return
    assert a.words == sum(len(str(s["text"]).split()) for s in spoken)
    span = max(float(s["end_s"]) for s in spoken) - min(float(s["start_s"]) for s in spoken)  # type: ignore[arg-type]
    share = m["rep_talk_share"]
    assert share is None or 0.0 <= share <= 1.0
    assert 0.0 <= a.rep_speech_s <= span + 1e-6
    assert 0.0 <= a.buyer_speech_s <= span + 1e-6
    for key in ("longest_monologue_s", "longest_story_s"):
        assert 0.0 <= m[key] <= span + 1e-6  # type: ignore[operator]
    if not any(s["speaker"] == "buyer" for s in spoken):
        assert m["longest_story_s"] == 0.0
    assert m["interactivity"] is None or (m["interactivity"] >= 0 and math.isfinite(m["interactivity"]))
    assert m["patience_s"] is None or 0.0 <= m["patience_s"] <= 5.0
    assert 0 <= m["open_questions"] <= m["rep_questions"]  # type: ignore[operator]
    assert m["buyer_questions"] >= 0  # type: ignore[operator]


@settings(max_examples=100, deadline=None)
@given(segments())
def test_moments_name_their_speaker_segment_and_words(transcript: list[dict[str, object]]) -> None:
    moments = analyse(transcript).moments
    assert [m.start_s for m in moments] == sorted(m.start_s for m in moments)
    for m in moments:
        assert m.tactic in TACTICS
        assert m.speaker == ("buyer" if m.tactic in BUYER_TACTICS else "rep")
        mine = [s for s in transcript if s["speaker"] == m.speaker]
        assert m.start_s in {float(s["start_s"]) for s in mine}  # type: ignore[arg-type]
        assert m.text
        assert all(any(word in str(s["text"]) for s in mine) for word in m.text.split())
