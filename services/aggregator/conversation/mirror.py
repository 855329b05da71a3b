"""Mirrors (SPEC 5.7): a rep turn of at most 6 words repeating 1-3 of the last content words of the
buyer's turn before it ("...we just don't trust the forecast." - "Don't trust the forecast?").

To be a mirror and not an answer that happens to reuse a word ("Let's do Wednesday."), every word of
the rep's turn must be the buyer's own, but for function words a repetition needs ("the", "a", "you"
for "I"), and its content words must come from the end of the buyer's turn, at least one of them from
the last three. A buyer's question is answered, not mirrored.
"""

from __future__ import annotations

import re

from services.aggregator.conversation.text import WORD, count_words

MIRROR_MAX_WORDS = 6
MIRROR_MAX_CONTENT_WORDS = 3
_LAST = 3  # at least one repeated content word among the buyer's last three ...
_WINDOW = 6  # ... and all of them among the last six
_ASCII_WORD = re.compile(r"[0-9A-Za-z]+(?:['\-][0-9A-Za-z]+)*")  # WORD where the text is ASCII, faster

# Words a mirror may add to the buyer's: articles, the other side of a pronoun, a question word,
# a leading acknowledgement.
_MAY_ADD = frozenset(
    "a an the you your yours you're you've yourself yourselves i me my we us our they them their theirs "
    "he him his she her how what oh ah hmm mm mhm wait sorry really so".split()
)
# Function words, fillers and acknowledgements: not content.
STOPWORDS = frozenset(
    """a about above after again against all also am an and any are aren't around as at be because been
    before being below between both but by can can't cannot could couldn't did didn't do does doesn't
    doing don't down during each either else even ever every few for from further get gets getting got
    had hadn't has hasn't have haven't having he he'd he'll he's her here here's hers herself him himself
    his how how's i i'd i'll i'm i've if in into is isn't it it's its itself just let's like many may me
    might mine more most much must my myself never no nor not now of off on once one's only or other
    ought our ours ourselves out over own quite rather really same shall she she'd she'll she's should
    shouldn't so some such than that that's the their theirs them themselves then there there's these
    they they'd they'll they're they've this those though through to too under until up upon us very
    was wasn't we we'd we'll we're we've were weren't what what's when when's where where's whether which
    while who who's whom why why's will with within without won't would wouldn't yet you you'd you'll
    you're you've your yours yourself yourselves actually basically honestly probably mostly usually
    definitely literally maybe perhaps pretty kind sort mm mhm hmm uh um uh-huh yeah yes yep right ok
    okay sure exactly true great oh ah well anyway also already still thing things stuff lot lots bit
    everything anything something nothing everyone anyone someone nobody anybody somebody anymore per
    via across along among toward towards onto since beyond despite except inside outside near past plus
    versus vs who'd who'll who've what'd what'll that'll there'd there'll it'd it'll how'd where'd gonna
    wanna gotta""".split()
)


def is_mirror(said_text: str, heard_text: str) -> bool:
    """Whether the rep's turn `said_text` mirrors the buyer's turn `heard_text` (both folded)."""
    if count_words(said_text) > MIRROR_MAX_WORDS:
        return False
    said = set(_words(said_text))
    repeated = said - STOPWORDS
    if not 1 <= len(repeated) <= MIRROR_MAX_CONTENT_WORDS or heard_text.rstrip().endswith("?"):
        return False
    own = said - _MAY_ADD
    if not all(w in heard_text for w in own):  # a word the buyer said is in the text: a quick no
        return False
    heard = _words(heard_text)
    if not own.issubset(heard):
        return False
    last = [w for w in heard if w not in STOPWORDS][-_WINDOW:]
    return repeated.issubset(last) and not repeated.isdisjoint(last[-_LAST:])


def _words(text: str) -> list[str]:
    return (_ASCII_WORD if text.isascii() else WORD).findall(text)
