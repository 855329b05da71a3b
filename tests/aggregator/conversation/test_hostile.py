"""Text chosen to make regular expressions backtrack (runs of "?", ambiguous fillers, one phrase repeated
through a 100,000-character segment, the wire's longest) is analysed in linear time, and the moments it
yields stay bounded by the text."""

from __future__ import annotations

import pytest

from services.aggregator.conversation import analyse

N = 100_000  # SPEC: a segment's text is at most 100,000 characters

HOSTILE = {
    "question marks": "?" * N + "x",
    "alternating ?!": "?!" * (N // 2) + "x",
    "quotes after stops": '."' * (N // 2) + "x",
    "mm-hmm before a label": "mm-hmm " * (N // 7) + "x",
    "uh-huh before a label": "uh-huh " * (N // 7) + "x",
    "one question word after another": "how " * (N // 4),
    "a phrase through one long sentence": "is it a bad idea " * (N // 17),
    "a phrase in every sentence": "that's right. " * (N // 14),
    "spaces": "so" + " " * N + "x",
}


@pytest.mark.timeout(30)  # each takes well under a second; a quadratic scan would take many minutes
@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_text_is_analysed_in_linear_time(text: str) -> None:
    transcript = [
        {"speaker": "buyer", "start_s": 0.0, "end_s": 1.0, "text": "We have a problem."},
        {"speaker": "rep", "start_s": 1.0, "end_s": 2.0, "text": text},
        {"speaker": "buyer", "start_s": 2.0, "end_s": 3.0, "text": text},
    ]
    a = analyse(transcript)
    assert a.words == 4 + 2 * len(text.split())
    assert sum(len(m.text) for m in a.moments) <= 2 * len(text) + 100
