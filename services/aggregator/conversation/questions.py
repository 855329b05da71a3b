"""The rep's questions that open with a question word: SPEC 5.7's open questions ("how", "what",
"tell me", "walk me through", "help me understand", after a lead-in such as "So, "), and the how / what
ones that calibrated questions are drawn from. Found in one pass over the rep's folded script."""

from __future__ import annotations

import re
from dataclasses import dataclass

from services.aggregator.conversation.phrases import QUESTION_LEAD
from services.aggregator.conversation.text import SENTENCE_END, SENTENCE_REACH

_WORD = r"(?P<word>how|what|tell me|walk me through|help me understand)\b"
# A sentence starts a run (after the line break that opens each run of a Script) or follows a sentence
# end; beginning with that character lets the regex engine skip ahead between them.
_OPENING = re.compile(rf"[.!?\n](?:(?<=\n)|[\"\u201d')\]]*\s) *(?P<sentence>){QUESTION_LEAD}{_WORD}")


@dataclass(frozen=True, slots=True)
class Opening:
    sentence: int  # where the question starts in the script
    word: int  # where its question word starts
    end: int  # where it ends (after its "?")
    how_or_what: bool


def question_openings(text: str) -> list[Opening]:
    """The questions (sentences ending in "?") of `text` opening with a question word."""
    found = []
    for m in _OPENING.finditer(text):
        reach = min(len(text), m.end() + SENTENCE_REACH)
        line_end = text.find("\n", m.end(), reach)
        close = SENTENCE_END.search(text, m.end(), reach if line_end < 0 else line_end)
        if close is not None and "?" in close.group():
            word = m.group("word")
            found.append(Opening(m.start("sentence"), m.start("word"), close.end(), word in ("how", "what")))
    return found
