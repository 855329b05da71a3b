"""Per-call metrics (SPEC 5.7) on small timed transcripts, each expected value worked out by hand in the
comments beside it."""

from __future__ import annotations

import pytest

from services.aggregator.conversation import METRICS, CallAnalysis, Moment, analyse


def seg(speaker: str, start: float, end: float, text: str) -> dict[str, object]:
    return {"speaker": speaker, "start_s": start, "end_s": end, "text": text}


OVERLAPS = [
    seg("rep", 0, 10, "We help sales teams see what happens on their calls."),  # 10 words
    seg(
        "buyer", 8, 15, "Okay, but how is that different from what we have now?"
    ),  # 11 words, 8-10 over the rep
    seg("rep", 14, 20, "Good question. What do you use today?"),  # 7 words, 14-15 over the buyer
    seg("buyer", 21, 30, "We use the dialer recordings and nothing else."),  # 8 words
]


def test_overlapping_speech_counts_for_both_speakers() -> None:
    a = analyse(OVERLAPS)
    assert a.words == 10 + 11 + 7 + 8
    # rep: 0-10 and 14-20 = 16 s; buyer: 8-15 and 21-30 = 16 s; the overlaps count for both
    assert a.rep_speech_s == pytest.approx(16.0)
    assert a.buyer_speech_s == pytest.approx(16.0)
    assert a.metrics == {
        "rep_talk_share": pytest.approx(16 / 32),
        "longest_monologue_s": pytest.approx(10.0),  # rep turns 0-10 and 14-20
        "longest_story_s": pytest.approx(9.0),  # buyer turns 8-15 (7 s) and 21-30 (9 s)
        # turns rep, buyer, rep, buyer: 3 switches over 0-30 s, half a minute
        "interactivity": pytest.approx(6.0),
        # the one buyer -> rep change: buyer ends at 15, rep starts at 14: overlap, clipped to 0
        "patience_s": pytest.approx(0.0),
        "rep_questions": 1,  # "What do you use today?"
        "buyer_questions": 1,  # "Okay, but how is that different ...?"
        "open_questions": 1,  # "What do you use today?"
    }
    assert a.moments == (Moment("calibrated_question", "rep", 14.0, "What do you use today?"),)


def test_segments_out_of_order_give_the_same_analysis() -> None:
    assert analyse(list(reversed(OVERLAPS))) == analyse(OVERLAPS)
    shuffled = [OVERLAPS[2], OVERLAPS[0], OVERLAPS[3], OVERLAPS[1]]
    assert analyse(shuffled) == analyse(OVERLAPS)
    assert analyse(shuffled).metrics["interactivity"] == pytest.approx(6.0)


MONOLOGUE = [
    seg(
        "rep",
        0,
        20,
        "Let me walk you through how the scoring works, because it is the part most teams ask about first.",
    ),  # 19 words
    seg("buyer", 20.5, 21, "Mhm."),  # back-channel, 1 word
    seg(
        "rep",
        21,
        40,
        "Every call gets a score from talk ratio, questions and next steps, and managers see the "
        "lowest scores first.",
    ),  # 19 words
    seg("buyer", 40, 41, "Yeah, makes sense."),  # back-channel, 3 words
    seg("rep", 41, 55, "So the coaching list builds itself every Monday morning."),  # 9 words
    seg(
        "buyer", 57, 70, "That's right, that is what our managers want. How long does setup take?"
    ),  # 13 words
    seg("rep", 72, 80, "About two weeks."),  # 3 words
]


def test_back_channels_inside_a_monologue_neither_split_it_nor_switch() -> None:
    a = analyse(MONOLOGUE)
    assert a.words == 19 + 1 + 19 + 3 + 9 + 13 + 3
    # rep: 20 + 19 + 14 + 8 = 61 s; buyer: 0.5 + 1 + 13 = 14.5 s (back-channels are speech)
    assert a.rep_speech_s == pytest.approx(61.0)
    assert a.buyer_speech_s == pytest.approx(14.5)
    assert a.metrics == {
        "rep_talk_share": pytest.approx(61 / 75.5),
        "longest_monologue_s": pytest.approx(55.0),  # one rep turn 0-55 across both back-channels
        "longest_story_s": pytest.approx(13.0),  # 57-70
        "interactivity": pytest.approx(2 / (80 / 60)),  # turns rep 0-55, buyer 57-70, rep 72-80
        "patience_s": pytest.approx(2.0),  # buyer ends 70, rep starts 72
        "rep_questions": 0,
        "buyer_questions": 1,
        "open_questions": 0,
    }
    # "that's right" is no back-channel: it is a buyer turn, and a moment
    assert a.moments == (
        Moment("thats_right", "buyer", 57.0, "That's right, that is what our managers want."),
    )


def test_that_s_right_alone_is_a_turn_and_a_switch() -> None:
    a = analyse(
        [
            seg("rep", 0, 10, "So the forecast is the real problem for you."),
            seg("buyer", 10, 11, "That's right."),  # a buyer turn, not a back-channel
            seg("rep", 12, 20, "Then let me show you the forecast view."),
        ]
    )
    # 2 switches over 20 s; one buyer -> rep pause of 1 s
    assert a.metrics["interactivity"] == pytest.approx(6.0)
    assert a.metrics["patience_s"] == pytest.approx(1.0)
    assert a.metrics["longest_monologue_s"] == pytest.approx(10.0)
    assert [m.tactic for m in a.moments] == ["thats_right"]


def test_a_call_without_buyer_speech() -> None:
    a = analyse(
        [
            seg(
                "rep", 0, 30, "Hi, this is Priya from Tallyline returning your call about the pilot."
            ),  # 12 words
            seg("rep", 31, 45, "Call me back when you have a minute. How does Thursday look?"),  # 12 words
        ]
    )
    # 0-30 and 31-45: 30 + 14 s
    assert a.words == 24
    assert a.rep_speech_s == pytest.approx(44.0)
    assert a.buyer_speech_s == 0.0
    assert a.metrics == {
        "rep_talk_share": 1.0,
        "longest_monologue_s": pytest.approx(45.0),  # one turn, 0-45
        "longest_story_s": 0.0,  # SPEC: no buyer speech
        "interactivity": 0.0,  # no switch in 45 s
        "patience_s": None,  # no buyer -> rep change
        "rep_questions": 1,
        "buyer_questions": 0,
        "open_questions": 1,  # "How does Thursday look?" opens with how ...
    }
    assert a.moments == ()  # ... but asks for a time: no calibrated question


def test_a_buyer_who_only_back_channels_tells_no_story() -> None:
    a = analyse(
        [
            seg("rep", 0, 30, "Our platform scores every call and shows managers where to coach."),
            seg("buyer", 30, 31, "Mm-hmm."),
            seg("rep", 31, 50, "And the scores roll up into a weekly report for the team."),
            seg("buyer", 50, 51, "Okay."),
        ]
    )
    # the buyer's 2 s are speech, but no turn: one rep turn 0-50, no switch over 51 s
    assert a.buyer_speech_s == pytest.approx(2.0)
    assert a.metrics["longest_story_s"] == 0.0
    assert a.metrics["longest_monologue_s"] == pytest.approx(50.0)
    assert a.metrics["interactivity"] == 0.0
    assert a.metrics["patience_s"] is None


def test_patience_is_the_median_of_clipped_pauses() -> None:
    a = analyse(
        [
            seg("buyer", 0, 5, "We have a problem with our forecast."),
            seg("rep", 6, 10, "Tell me more about it."),  # pause 1
            seg("buyer", 10, 20, "Deals slip every quarter."),
            seg("rep", 23, 30, "Which deals slip the most?"),  # pause 3
            seg("buyer", 30, 40, "The big ones, always."),
            seg("rep", 49, 55, "The big ones."),  # pause 9, clipped to 5
            seg("buyer", 55, 60, "Yes, every one of them slips."),
            seg("rep", 58, 65, "Let me show you something."),  # starts 2 s before the buyer ends: 0
        ]
    )
    # pauses 1, 3, 5, 0 -> sorted 0, 1, 3, 5 -> median (1 + 3) / 2
    assert a.metrics["patience_s"] == pytest.approx(2.0)


def test_a_speaker_s_own_overlapping_segments_count_once() -> None:
    a = analyse(
        [
            seg("rep", 0, 10, "First part of a sentence that"),
            seg("rep", 5, 12, "a second recogniser heard again"),  # 5-10 twice: union 0-12
            seg("buyer", 20, 25, "Got it, thanks for that."),
        ]
    )
    assert a.rep_speech_s == pytest.approx(12.0)
    assert a.metrics["rep_talk_share"] == pytest.approx(12 / 17)
    assert a.metrics["longest_monologue_s"] == pytest.approx(12.0)


@pytest.mark.parametrize(
    "transcript",
    [
        [],
        [seg("rep", 0, 5, ""), seg("buyer", 5, 9, "   "), seg("rep", 9, 10, "... ?")],  # no word anywhere
    ],
    ids=["no segments", "no words"],
)
def test_a_transcript_without_words_has_null_metrics_and_no_moments(
    transcript: list[dict[str, object]],
) -> None:
    assert analyse(transcript) == CallAnalysis(
        words=0, metrics=dict.fromkeys(METRICS), moments=(), rep_speech_s=0.0, buyer_speech_s=0.0
    )


def test_a_transcript_of_one_instant_has_no_rate_and_no_share() -> None:
    a = analyse([seg("rep", 5, 5, "Hello there."), seg("buyer", 5, 5, "Hi.")])
    assert a.words == 3
    assert a.metrics["rep_talk_share"] is None  # 0 s of speech on either side
    assert a.metrics["interactivity"] is None  # a span of 0 s
    assert a.metrics["longest_monologue_s"] == 0.0
    assert a.metrics["longest_story_s"] == 0.0


def test_a_segment_ending_before_it_starts_ends_at_its_start() -> None:
    a = analyse([seg("rep", 10, 4, "We can start next week."), seg("buyer", 12, 20, "That works for us.")])
    # rep 10-10: 0 s; buyer 12-20: 8 s; span 10-20
    assert a.rep_speech_s == 0.0
    assert a.buyer_speech_s == pytest.approx(8.0)
    assert a.metrics["interactivity"] == pytest.approx(1 / (10 / 60))


def test_questions_are_sentences_ending_in_a_question_mark() -> None:
    a = analyse(
        [
            seg("rep", 0, 10, "So, how do you run forecasts today? Is it weekly?! We charge 3.5 per seat?"),
            seg("buyer", 10, 12, "Right?"),  # a back-channel, and a question
            seg("rep", 12, 20, "Walk me through your last forecast call? Tell me about the team. Why?"),
        ]
    )
    # rep: "how do you...?", "Is it weekly?!", "We charge 3.5 per seat?", "Walk me through...?", "Why?"
    assert a.metrics["rep_questions"] == 5
    assert a.metrics["buyer_questions"] == 1
    # open: "So, how do you run forecasts today?" and "Walk me through your last forecast call?";
    # "Tell me about the team." ends in "." and is no question
    assert a.metrics["open_questions"] == 2


def test_seconds_and_rates_are_rounded_to_six_decimals() -> None:
    # Differences of these float times are 13.399999999999999, 5.600000000000001 and
    # 0.8000000000000007 before rounding: the metrics are the transcript's tenths, exactly.
    a = analyse(
        [
            seg("rep", 0.0, 0.3, "Hi, thanks for taking the call."),
            seg("buyer", 0.3, 13.7, "Sure. We lost two quarters of forecast to deals nobody saw slipping."),
            seg("rep", 14.5, 20.1, "What made you look at this now?"),
        ]
    )
    assert a.rep_speech_s == 5.9  # 0.3 + 5.6
    assert a.buyer_speech_s == 13.4
    assert a.metrics["longest_story_s"] == 13.4  # 13.7 - 0.3
    assert a.metrics["longest_monologue_s"] == 5.6  # 20.1 - 14.5
    assert a.metrics["patience_s"] == 0.8  # 14.5 - 13.7
    assert a.metrics["rep_talk_share"] == 0.305699  # 5.9 / 19.3 = 0.3056994...
    assert a.metrics["interactivity"] == 5.970149  # 2 switches * 60 / 20.1 s = 5.9701492...
