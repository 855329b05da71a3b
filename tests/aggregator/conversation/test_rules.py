"""The examples of docs/conversations.md, each rule's catches and hard negatives, one short exchange
each: what the buyer said, then what the rep said (or the other way round for the buyer's tactics)."""

from __future__ import annotations

import pytest

from services.aggregator.conversation import analyse

BUYER_SAYS = "We've been burned by tools before, and nobody trusts the forecast anymore."

# (speaker, text, tactics found in it), said right after BUYER_SAYS (a rep line) or after REP_SAYS
REP_SAYS = "So where does that leave the forecast for this quarter?"

CASES = [
    ("rep", "Sounds like it's been a rough week.", {"label"}),
    ("rep", "Oof. Sounds like that wasn't the answer you were hoping for.", {"label"}),
    ("rep", "You sound frustrated about that.", {"label"}),
    ("rep", "Thanks for sharing that. It seems like trust is the real problem.", {"label"}),
    ("rep", "Sounds like a plan.", set()),
    ("rep", "Sounds like a good idea.", set()),
    ("rep", "Sounds like it.", set()),
    ("rep", "Looks like that works.", set()),
    ("rep", "Looks like we're out of time.", set()),
    ("rep", "Looks like we only have five minutes left.", set()),
    ("rep", "Looks like Thursday at ten is open.", set()),
    ("rep", "It looks like the renewal date is June 30th.", set()),
    ("rep", "Looks like you're on mute.", set()),
    ("rep", "Sounds like my mic is acting up.", set()),
    ("rep", "It sounds like you're in a car.", set()),
    ("rep", "It looks like everyone's joined.", set()),
    ("rep", "You sound a little quiet.", set()),
    ("rep", "Looks like I can have that to you by tonight.", set()),
    ("rep", "Let me check. It looks like your team doubled.", set()),
    ("rep", "That sounds like a great idea.", set()),
    ("rep", "Nobody trusts the forecast?", {"mirror"}),
    ("rep", "The forecast anymore?", {"mirror"}),
    ("rep", "Been burned?", set()),  # not among the buyer's last content words
    ("rep", "Right.", set()),
    ("rep", "Let's fix the forecast.", set()),
    ("rep", "What makes the numbers hard to trust?", {"calibrated_question"}),
    ("rep", "How did you hear about us?", {"calibrated_question"}),
    ("rep", "What about the rollout worries you?", {"calibrated_question"}),
    ("rep", "So, how do you run forecasts today?", {"calibrated_question"}),
    ("rep", "How many seats are you thinking?", set()),
    ("rep", "How much are you spending?", set()),
    ("rep", "How long does ramp take?", set()),
    ("rep", "What's your budget?", set()),
    ("rep", "What would a fair number look like?", set()),
    ("rep", "What time works?", set()),
    ("rep", "What day works for a demo?", set()),
    ("rep", "What's the timeline?", set()),
    ("rep", "How does Thursday look?", set()),
    ("rep", "What if we started with a pilot?", set()),
    ("rep", "How about Thursday?", set()),
    ("rep", "What about Friday?", set()),
    ("rep", "What do you say we start small?", set()),
    ("rep", "What, you're not happy with them?", set()),
    ("rep", "Why did you choose them?", set()),
    ("rep", "How come you chose them?", set()),
    ("rep", "How's your Tuesday going?", set()),
    ("rep", "How was the offsite?", set()),
    ("rep", "How are you doing today?", set()),
    ("rep", "What was that?", set()),
    ("rep", "How's my audio?", set()),
    ("rep", "What's the best email to send the recap to?", set()),
    ("rep", "How do you spell that?", set()),
    ("rep", "Tell me about the team.", set()),
    ("rep", "Would it be a bad idea to look at how two other teams solved this?", {"no_oriented_question"}),
    ("rep", "Is now a bad time for a quick question?", {"no_oriented_question"}),
    ("rep", "Have you given up on fixing it this year?", {"no_oriented_question"}),
    ("rep", "Would you be open to a demo?", set()),
    ("rep", "Is now a good time?", set()),
    ("rep", "Is it a good idea to include finance?", set()),
    ("rep", "That's not a bad idea.", set()),
    ("rep", "You're probably thinking this is another dialer pitch.", {"accusation_audit"}),
    ("rep", "This might sound paranoid, but we'd start with one team.", {"accusation_audit"}),
    ("rep", "I know this is going to sound like I don't want your business.", {"accusation_audit"}),
    ("rep", "I know you weren't expecting my call.", {"accusation_audit"}),
    ("rep", "That sounds great.", set()),
    ("rep", "Does that sound fair?", set()),
    ("rep", "You're probably right.", set()),
    ("rep", "This may sound familiar: reps spend half their day on data entry.", set()),
    (
        "rep",
        "So what I'm hearing is that your forecast rests on activity data nobody trusts, and it all lands "
        "on you at quarter end.",
        {"summary"},
    ),
    ("rep", "In other words, no budget until January?", set()),
    (
        "rep",
        "To summarize our pricing, you pay per seat, per year, with the coaching module and the forecast "
        "module both included.",
        set(),
    ),
    (
        "rep",
        "Let me make sure I have this right: you've got three regions, each with its own process, and one "
        "forecast to deliver.",
        set(),
    ),
    ("buyer", "That's right.", {"thats_right"}),
    ("buyer", "Yes, that's right.", {"thats_right"}),
    ("buyer", "That\u2019s exactly right, forty.", {"thats_right"}),
    ("buyer", "That is right.", {"thats_right"}),
    ("buyer", "Is that right?", set()),
    ("buyer", "That's right?", set()),
    ("buyer", "That's not right.", set()),
    ("buyer", "That's all right.", set()),
    ("buyer", "That's right along the lines of what I was thinking.", set()),
    ("buyer", "I'm not sure that's right.", set()),
    ("buyer", "You're right, it's the least urgent piece.", {"youre_right"}),
    ("buyer", "It did, you're right.", {"youre_right"}),
    ("buyer", "You're probably right that they need to see it.", {"youre_right"}),
    ("buyer", "You're right on time.", set()),
    ("buyer", "You're right?", set()),
    ("buyer", "If you're right about the savings, we should talk.", set()),
    ("buyer", "I'm not sure you're right.", set()),
]


@pytest.mark.parametrize(("speaker", "text", "tactics"), CASES, ids=[c[1][:48] for c in CASES])
def test_each_documented_example(speaker: str, text: str, tactics: set[str]) -> None:
    before = ("buyer", BUYER_SAYS) if speaker == "rep" else ("rep", REP_SAYS)
    transcript = [
        {"speaker": before[0], "start_s": 0.0, "end_s": 5.0, "text": before[1]},
        {"speaker": speaker, "start_s": 6.0, "end_s": 9.0, "text": text},
    ]
    found = {(m.tactic, m.start_s) for m in analyse(transcript).moments}
    assert found == {(tactic, 6.0) for tactic in tactics}


def test_a_label_must_answer_a_buyer_turn() -> None:
    first = [{"speaker": "rep", "start_s": 0.0, "end_s": 3.0, "text": "Sounds like a busy week."}]
    assert analyse(first).moments == ()
    after_backchannel = [
        {"speaker": "rep", "start_s": 0.0, "end_s": 3.0, "text": "We score every call."},
        {"speaker": "buyer", "start_s": 3.0, "end_s": 4.0, "text": "Mhm."},
        {"speaker": "rep", "start_s": 4.0, "end_s": 7.0, "text": "Sounds like a busy week."},
    ]
    assert analyse(after_backchannel).moments == ()


def test_a_mirror_answered_by_a_back_channel_is_still_a_mirror() -> None:
    transcript = [
        {"speaker": "buyer", "start_s": 0.0, "end_s": 4.0, "text": "And that's a red line for us."},
        {"speaker": "rep", "start_s": 4.5, "end_s": 5.5, "text": "A red line?"},
        {"speaker": "buyer", "start_s": 5.5, "end_s": 6.0, "text": "Mhm."},
        {"speaker": "rep", "start_s": 6.0, "end_s": 9.0, "text": "Tell me more about where that comes from."},
    ]
    a = analyse(transcript)
    assert [(m.tactic, m.start_s, m.text) for m in a.moments] == [("mirror", 4.5, "A red line?")]
    assert a.metrics["longest_monologue_s"] == pytest.approx(4.5)  # one rep turn, 4.5-9
