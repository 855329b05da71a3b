"""A demo call's transcript: rep and buyer lines of `devstack.demo.dialogue`, combined by the rep's
talking style (`TalkStyle`) and timed like speech. Pure and deterministic: the same random generator
state gives the same transcript.

A call opens, alternates discovery (the rep asks, the buyer answers with a pain, the rep labels,
mirrors or acknowledges it) and pitches (the rep talks, the buyer says "Mhm." now and then, then asks
or objects), may end in a summary the buyer confirms ("That's right."), and closes with next steps.
Each segment keeps the tactics its line was written as (`Segment.tactics`): what the analysis should
find in it, so tests can check that the planted structure is really in the words.
"""

from __future__ import annotations

import math
import random
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from devstack.demo import dialogue as d

Speaker = Literal["rep", "buyer"]
BODY_LINES = 90  # lines before the close at most: with it, a call stays near 120 segments at most
CLOSING_S = 35.0  # about what the summary and the goodbyes take: the body stops that much earlier
SENTENCE_S = 6.0  # about what a sentence of a pitch takes to say
LONG_PITCH = 8  # a style whose pitches run to this many sentences opens them as a monologue
REP_SECONDS_PER_WORD = 0.36
BUYER_SECONDS_PER_WORD = 0.4
SUMMARY_MIN_WORDS = 20


@dataclass(frozen=True, slots=True)
class Segment:
    speaker: Speaker
    start_s: float
    end_s: float
    text: str
    tactics: tuple[str, ...] = ()  # the Voss tactics (SPEC 5.7) the line was written as

    def wire(self) -> dict[str, Any]:
        """The segment as BuyerEvent transcripts carry it."""
        return {"speaker": self.speaker, "start_s": self.start_s, "end_s": self.end_s, "text": self.text}


@dataclass(frozen=True)
class TalkStyle:
    """How a rep runs a call. Chances are per opportunity: `label` per pain the buyer names, etc."""

    pitch: tuple[int, int]  # sentences in one pitch, fewest and most
    discovery: float  # once the rep has pitched: chance the next step is a question, not a pitch
    calibrated: float  # share of the rep's questions that are calibrated (how / what)
    label: float  # chance a pain is answered with a label ...
    mirror: float  # ... else with a mirror
    dig: float  # chance of a calibrated follow-up once the buyer opened up, and in mid-pitch
    summary: float  # chance of a summary before the close, once a pain was heard
    audit: float  # chance of an accusation audit before the first pitch
    no_oriented: float  # chance of a no-oriented question to open and to close with
    patience_s: float  # the typical pause before answering the buyer


NORMAL = TalkStyle((2, 4), 0.7, 0.45, 0.2, 0.12, 0.1, 0.25, 0.1, 0.15, 0.6)
# Talks in long monologues, hardly asks, never labels, mirrors or summarises.
MONOLOGUE = TalkStyle((9, 14), 0.15, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.2)
# Asks calibrated questions, labels and mirrors what the buyer says, summarises and hears "that's right".
LABELLER = TalkStyle((4, 5), 0.65, 0.85, 0.65, 0.5, 0.6, 0.9, 0.4, 0.5, 0.8)


def styles(
    rep_ids: Iterable[str], *, monologuer: str, labeller: str, plain: Collection[str], seed: int
) -> dict[str, TalkStyle]:
    """Every rep's style: the two planted ones, NORMAL for `plain` reps, and for everybody else NORMAL
    varied a little (most chances within about a third of the norm; how much they pitch, less)."""
    rng = random.Random(f"salesloop-demo-talk:{seed}")
    out = {}
    for rep_id in sorted(rep_ids):
        vary = [math.exp(rng.gauss(0, 0.3)) for _ in range(7)]
        longest = NORMAL.pitch[1] + rng.randint(-1, 1)
        if rep_id == monologuer:
            out[rep_id] = MONOLOGUE
        elif rep_id == labeller:
            out[rep_id] = LABELLER
        elif rep_id in plain:
            out[rep_id] = NORMAL
        else:
            n = NORMAL
            out[rep_id] = replace(
                n,
                pitch=(n.pitch[0], longest),
                discovery=min(0.85, max(0.5, n.discovery * math.sqrt(vary[6]))),
                calibrated=min(0.9, n.calibrated * vary[0]),
                label=min(0.9, n.label * vary[1]),
                mirror=min(0.9, n.mirror * vary[2]),
                summary=min(0.9, n.summary * vary[3]),
                audit=min(0.9, n.audit * vary[4]),
                patience_s=n.patience_s * vary[5],
            )
    return out


@dataclass
class _Line:
    speaker: Speaker
    text: str
    tactics: tuple[str, ...] = ()
    backchannel: bool = False


@dataclass
class _Call:
    """The lines of one call, written in order."""

    style: TalkStyle
    rng: random.Random
    rep: str
    buyer: str
    lines: list[_Line] = field(default_factory=list)
    pains: list[d.Pain] = field(default_factory=list)  # named by the buyer so far
    seconds: float = 0.0  # about how long the lines take to say

    def say(self, speaker: Speaker, text: str, *tactics: str) -> None:
        switch = bool(self.lines) and self.lines[-1].speaker != speaker
        self.lines.append(_Line(speaker, text, tactics))
        pace = REP_SECONDS_PER_WORD if speaker == "rep" else BUYER_SECONDS_PER_WORD
        pause = self.style.patience_s if switch and speaker == "rep" else 0.5
        self.seconds += len(text.split()) * pace + pause

    def nod(self) -> None:
        self.lines.append(_Line("buyer", self.rng.choice(d.BACKCHANNELS), backchannel=True))
        self.seconds += 0.8

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def fresh_pain(self) -> d.Pain:
        heard = {id(p) for p in self.pains}
        left = [p for p in d.PAINS if id(p) not in heard]
        pain = self.rng.choice(left or d.PAINS)
        self.pains.append(pain)
        return pain

    @property
    def long_pitches(self) -> bool:
        return self.style.pitch[1] >= LONG_PITCH


def write(
    style: TalkStyle, rng: random.Random, *, rep: str, buyer: str, target_s: float, meeting: bool
) -> list[Segment]:
    """A call of about `target_s` seconds between a rep and a buyer (their first names are used)."""
    call = _Call(style, rng, rep=rep.split()[0], buyer=buyer.split()[0])
    _opening(call, meeting)
    pitched = False
    # A step may be a whole pitch: the body stops when that might no longer fit.
    step_s = SENTENCE_S * sum(style.pitch) / 2
    while call.seconds + step_s < target_s - CLOSING_S and len(call.lines) < BODY_LINES:
        if pitched and not call.chance(style.discovery):
            _pitch(call, first=False)
        elif call.chance(style.calibrated):
            call.say("rep", rng.choice(d.CALIBRATED), "calibrated_question")
            _pain(call)
        else:
            question, answer = rng.choice(d.CLOSED)
            call.say("rep", question)
            call.say("buyer", answer)
            if call.chance(0.5):
                call.say("buyer", rng.choice(d.CONTEXT))
        if not pitched and len(call.lines) > 6:
            if call.chance(style.audit):
                call.say("rep", rng.choice(d.AUDITS), "accusation_audit")
                call.say("buyer", rng.choice(d.AUDIT_REPLIES))
            _pitch(call, first=True)
            pitched = True
    _close(call)
    return _timed(call.lines, rng, style.patience_s)


def _opening(call: _Call, meeting: bool) -> None:
    rng, names = call.rng, {"rep": call.rep, "buyer": call.buyer}
    if meeting:
        call.say("rep", rng.choice(d.MEETING_OPENINGS).format(**names))
        call.say("buyer", "Of course, glad we could make it work.")
        call.say("rep", rng.choice(d.MEETING_REASONS))
        return
    call.say("rep", rng.choice(d.OPENINGS).format(**names))
    if call.chance(call.style.no_oriented):
        call.say("rep", rng.choice(d.NO_ORIENTED_OPENINGS), "no_oriented_question")
        call.say("buyer", "No, go ahead, I have a few minutes.")
        call.say("rep", rng.choice(d.REASONS))
    else:
        call.say("rep", rng.choice(d.REASONS))
        call.say("buyer", rng.choice(d.BUYER_GREETINGS))


def _pain(call: _Call, *, objection: bool = False) -> None:
    """The buyer names a pain; the rep labels it, mirrors it, or acknowledges it and moves on."""
    pain, style, rng = call.fresh_pain(), call.style, call.rng
    if not objection and call.chance(0.8):
        call.say("buyer", rng.choice(d.CONTEXT))
    call.say("buyer", pain.said)
    if call.chance(style.label):
        call.say("rep", pain.label, "label")
        if objection and call.chance(0.3):
            call.say("buyer", f"{rng.choice(d.YOURE_RIGHT)} {pain.more}", "youre_right")
        else:
            call.say("buyer", f"{rng.choice(d.LABEL_REPLIES)} {pain.more}")
    elif call.chance(style.mirror):
        call.say("rep", pain.mirror, "mirror")
        call.say("buyer", pain.more)
    else:
        call.say("rep", rng.choice(d.ACKNOWLEDGE))
        return
    if call.chance(style.dig):
        question, answer = rng.choice(d.FOLLOW_UPS)
        call.say("rep", question, "calibrated_question")
        call.say("buyer", answer)


def _pitch(call: _Call, *, first: bool) -> None:
    """The rep's pitch with the buyer's back-channels, then the buyer's question or objection."""
    style, rng = call.style, call.rng
    if first:
        call.say("rep", rng.choice(d.MONOLOGUE_LEADS if call.long_pitches else d.PITCH_LEADS))
    else:
        call.say("rep", rng.choice(d.BRIDGES))
    sentences = rng.sample(d.PITCH, rng.randint(*style.pitch))
    check_at = len(sentences) // 2 if len(sentences) > 2 and call.chance(style.dig) else -1
    for i, sentence in enumerate(sentences):
        if i == check_at:
            question, answer = rng.choice(d.PITCH_CHECKS)
            call.say("rep", question, "calibrated_question")
            call.say("buyer", answer)
        elif i and call.chance(0.35):
            call.nod()
        call.say("rep", sentence)
    if call.long_pitches and call.chance(0.5):
        question, answer = rng.choice(d.CHECK_INS)
        call.say("rep", question)
        call.say("buyer", answer)
    elif call.chance(0.5):
        asked, answer = rng.choice(d.BUYER_QUESTIONS)
        call.say("buyer", asked)
        call.say("rep", answer)
        if call.chance(0.6):
            call.say("buyer", rng.choice(d.REACTIONS))
    elif style.label == 0 and style.mirror == 0:
        call.say("buyer", call.fresh_pain().said)  # and the next pitch answers it
    else:
        _pain(call, objection=True)


def _close(call: _Call) -> None:
    style, rng = call.style, call.rng
    if call.pains and call.chance(style.summary):
        if call.lines[-1].speaker == "rep":
            call.say("buyer", rng.choice(d.WRAP_UPS))  # a summary opens what the rep says
        call.say("rep", summary(rng, [p.gist for p in call.pains[-2:]]), "summary")
        call.say("buyer", f"{rng.choice(d.THATS_RIGHT)} {rng.choice(d.AFTER_THATS_RIGHT)}", "thats_right")
    if call.chance(style.no_oriented):
        call.say("rep", rng.choice(d.NO_ORIENTED_CLOSES), "no_oriented_question")
        call.say("buyer", "No, not at all, that makes sense.")
    question, answer = rng.choice(d.CLOSES)
    call.say("rep", question)
    call.say("buyer", answer)
    goodbye, reply = rng.choice(d.GOODBYES)
    call.say("rep", goodbye.format(buyer=call.buyer))
    call.say("buyer", reply)


def summary(rng: random.Random, gists: list[str]) -> str:
    """The rep's summary of the buyer's pains: at least SUMMARY_MIN_WORDS words, as SPEC 5.7 asks."""
    opening, ending = rng.choice(d.SUMMARY_OPENINGS), rng.choice(d.SUMMARY_ENDINGS)
    text = f"{opening} {', '.join(gists)}, {ending}"
    if len(text.split()) < SUMMARY_MIN_WORDS:
        text = f"{opening} {', '.join(gists)}, and nobody on the team has the time to fix it, {ending}"
    return text


def _timed(lines: list[_Line], rng: random.Random, patience_s: float) -> list[Segment]:
    """Segments with times: each line lasts as long as its words take, the rep pauses about
    `patience_s` before answering the buyer, a back-channel falls into a short gap of the rep's."""
    out: list[Segment] = []
    clock = 0.0
    previous: _Line | None = None
    for line in lines:
        if previous is None:
            gap = 0.0
        elif line.backchannel or previous.backchannel:
            gap = rng.uniform(0.05, 0.2)
        elif line.speaker == previous.speaker:
            gap = rng.uniform(0.2, 0.6)
        elif line.speaker == "rep":
            gap = max(0.0, rng.gauss(patience_s, 0.25 * patience_s))
        else:
            gap = rng.uniform(0.2, 0.8)
        pace = REP_SECONDS_PER_WORD if line.speaker == "rep" else BUYER_SECONDS_PER_WORD
        start = clock + gap
        length = 0.5 if line.backchannel else len(line.text.split()) * pace * rng.uniform(0.85, 1.15)
        out.append(Segment(line.speaker, round(start, 2), round(start + length, 2), line.text, line.tactics))
        clock = start + length
        previous = line
    return out


def fitted(segments: list[Segment], length_s: float) -> list[Segment]:
    """The segments spoken a little faster when they would run past `length_s` (a call's length)."""
    span = segments[-1].end_s if segments else 0.0
    if span <= length_s:
        return segments
    f = length_s / span
    return [replace(s, start_s=round(s.start_s * f, 2), end_s=round(s.end_s * f, 2)) for s in segments]


def in_whole_seconds(segments: list[Segment], tail_s: int) -> tuple[list[Segment], int]:
    """The segments as a notetaker that times each utterance's start in whole seconds sees them
    (Fathom: docs/vendors/fathom.md): starts rounded up, at least a second apart; an utterance ends
    when the next starts, but at most 2 s plus 1 s a word after its own start. Returns them and the
    recording's length, `tail_s` after the last utterance."""
    starts: list[int] = []
    for s in segments:
        starts.append(max(math.ceil(s.start_s), starts[-1] + 1 if starts else 0))
    length = starts[-1] + math.ceil(segments[-1].end_s - segments[-1].start_s) + tail_s
    out = []
    for i, (s, start) in enumerate(zip(segments, starts, strict=True)):
        after = starts[i + 1] if i + 1 < len(starts) else length
        said = start + 2.0 + 1.0 * len(s.text.split())
        out.append(replace(s, start_s=float(start), end_s=float(min(after, said))))
    return out, length
