"""Segments -> runs -> turns (SPEC 5.7).

A run is what one speaker says between two things the other says: consecutive segments of one speaker.
A back-channel ("mhm", "yeah, right") is a run of at most 4 acknowledgement words. A turn is a run with
the back-channels set aside: the runs of one speaker on either side of the other's back-channels form
one turn, so turns alternate speakers and every boundary between them is a switch.

Talk metrics are measured on turns. Moments are found in runs: a back-channel does end what the rep was
saying ("A red line?" - "Mhm." is a mirror the buyer answered), though it is no switch.

Segments and turns are plain tuples: a call has hundreds of them, and a tuple costs a tenth of an
object to make. Runs are kept beside each speaker's Script (script.py), which finds them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from services.aggregator.conversation.text import HAS_WORD, LINE_BREAKS

SPEAKERS = ("rep", "buyer")

# (start_s, end_s, speaker, text, words): sorting compares start, then end, speaker, text
Segment = tuple[float, float, str, str, int]
# (speaker, start_s, end_s): its first segment's start, the latest end of its segments
Turn = tuple[str, float, float]


def parse_segments(transcript: Sequence[Mapping[str, Any]]) -> list[Segment]:
    """The segments that carry words, sorted by start (ties by end, speaker, text: any input order of the
    same segments gives the same list), with their number of words. A segment ending before it starts is
    taken to end at its start; a speaker other than rep or buyer (the wire format admits none) is left
    out."""
    segments = []
    has_word = HAS_WORD.search
    for raw in transcript:
        speaker, text = raw.get("speaker"), raw.get("text")
        if speaker not in SPEAKERS or not isinstance(text, str):
            continue
        if not text[:1].isalnum() and has_word(text) is None:  # the first character is the usual word
            continue
        if text.isprintable():  # so its only whitespace is " ": single spaces separate its words
            text = text.strip()
            words = text.count(" ") + 1 if "  " not in text else len(text.split())
        else:  # line breaks separate runs in a Script (script.py)
            text = text.translate(LINE_BREAKS).strip()
            words = len(text.split())
        start, end = float(raw.get("start_s") or 0.0), float(raw.get("end_s") or 0.0)
        segments.append((start, end if end > start else start, speaker, text, words))
    segments.sort()
    return segments


def merge_turns(
    speakers: Sequence[str], spans: Sequence[tuple[float, float]], backchannels: Sequence[bool]
) -> list[Turn]:
    """The turns of the runs (in time order, as parallel sequences of each run's speaker, its
    (start_s, end_s) and whether it is a back-channel): the back-channels left out, consecutive runs of
    one speaker merged."""
    turns: list[Turn] = []
    last = ""  # the speaker of the last turn
    for speaker, (start, end), backchannel in zip(speakers, spans, backchannels, strict=True):
        if backchannel:
            continue
        if speaker != last:
            turns.append((speaker, start, end))
            last = speaker
        elif end > turns[-1][2]:
            turns[-1] = (speaker, turns[-1][1], end)
    return turns
