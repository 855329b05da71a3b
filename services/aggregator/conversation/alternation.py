"""A pattern of phrases opening with different words, matched at the speed Python's re finds a literal.

re skips quickly to where a pattern's literal prefix is ("would "), but a pattern whose alternatives open
with different words only has a set of first letters to skip to, and tries a match at every one of them:
in a rep's script, one position in four. So such a pattern is kept as one pattern per opening literal,
each scanned at a literal's speed, and `finditer` merges their matches into exactly the matches of the
whole alternation: the leftmost first, each search going on where the last match ended.

That holds as no two parts can match at one position: each part opens with its literal and no literal
is the start of another (checked when built), so at a position the one part whose literal is there
decides, trying its alternatives in their order as the whole pattern would.
"""

from __future__ import annotations

import re
from collections.abc import Iterator


class Alternation:
    def __init__(self, *parts: tuple[str, str], after: str = "") -> None:
        """`parts` are (literal, rest): the alternation `literal(?:rest)` | ..., each followed by `after`."""
        literals = [literal for literal, _ in parts]
        for literal in literals:
            if not literal or any(other != literal and other.startswith(literal) for other in literals):
                raise ValueError(f"{literal!r} is empty or starts another literal")
        sources = [f"{re.escape(literal)}(?:{rest})" for literal, rest in parts]
        self.pattern = re.compile(f"(?:{'|'.join(sources)}){after}")  # the whole, as one pattern
        self._parts = [re.compile(f"{source}{after}") for source in sources]

    def finditer(self, text: str) -> Iterator[re.Match[str]]:
        """`self.pattern.finditer(text)`, faster."""
        searches = [part.search for part in self._parts]
        found = [search(text) for search in searches]  # each part's next match
        at = 0  # where the last match ended
        while True:
            first = None
            for i, m in enumerate(found):
                if m is not None and m.start() < at:  # it overlaps the last match: look again after it
                    m = found[i] = searches[i](text, at)
                if m is not None and (first is None or m.start() < first.start()):
                    first = m
            if first is None:
                return
            yield first
            at = first.end()
