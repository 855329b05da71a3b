"""The rep's questions that open with a question word: SPEC 5.7's open questions ("how", "what",
"tell me", "walk me through", "help me understand", after a lead-in such as "So, "), and the how / what
ones that calibrated questions are drawn from. Found in one pass over the rep's folded script."""

from __future__ import annotations

import re

from services.aggregator.conversation.phrases import QUESTION_LEAD
from services.aggregator.conversation.text import SENTENCE_END, SENTENCE_REACH

_WORD = r"(?P<word>how|what|tell me|walk me through|help me understand)\b"
# A sentence starts a run (after the line break that opens each run of a Script) or follows a sentence
# end; beginning with that character lets the regex engine skip ahead between them.
_OPENING = re.compile(rf"[.!?\n](?:(?<=\n)|[\"\u201d')\]]*\s) *(?P<sentence>){QUESTION_LEAD}{_WORD}")


# (sentence, word, end, how_or_what): where the question starts in the script, where its question word
# starts, where it ends (after its "?"), whether that word is how or what. A tuple: a call has dozens.
Opening = tuple[int, int, int, bool]


def question_openings(text: str) -> list[Opening]:
    """The questions (sentences ending in "?") of `text` opening with a question word."""
    found: list[Opening] = []
    search_end = SENTENCE_END.search
    for m in _OPENING.finditer(text):
        after = m.end()
        reach = min(len(text), after + SENTENCE_REACH)
        line_end = text.find("\n", after, reach)
        stop = reach if line_end < 0 else line_end
        if text.find("?", after, stop) < 0:  # its sentence end holds no "?": no question
            continue
        close = search_end(text, after, stop)
        if close is not None and text.find("?", close.start(), close.end()) >= 0:
            word = m.start("word")
            found.append((m.start("sentence"), word, close.end(), text.startswith(("how", "what"), word)))
    return found
