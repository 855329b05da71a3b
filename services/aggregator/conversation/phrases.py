"""The phrase patterns behind the Voss moments (SPEC 5.7), matched on `text.fold`ed text.

Each tactic is a positive pattern and, where speech reuses its words for something else, a pattern of
what it is not (docs/conversations.md lists both, with examples). Compiled once at import.
"""

from __future__ import annotations

import re

from services.aggregator.conversation.alternation import Alternation

_DAYS = r"monday|tuesday|wednesday|thursday|friday|saturday|sunday|tomorrow|tonight"
# "may" is left out: it is a verb far more often than a month
_MONTHS = r"january|february|march|april|june|july|august|september|october|november|december"
_CLOCK = r"\d{1,2}(?::\d\d)? ?[ap]\.?m\b|o'clock|noon"

# Words that may open a run before what it says ("Okay, so what I'm hearing is...", "Right. It sounds
# like..."): acknowledgements, fillers, thanks. No two of them match the same text ("mm-hmm" is "mm",
# "-", "hmm"; "uh-huh" is "uh", "-", "huh"): ambiguity would make a failing match exponential.
_OPENER = (
    r"okay|ok|so|well|right|yeah|yes|yep|got it|i see|h+m+|m+|m+h+m+|oh|ah|wow|oof|ouch"
    r"|ha|haha|huh|gosh|geez|jeez|yikes|man"
    r"|sure|great|alright|all right|and|um+|uh+|look|listen|now|gotcha|interesting|fair enough|fair"
    r"|makes sense|totally|understood|i hear you|thanks|thank you|thanks for sharing(?: that)?"
)
TURN_LEAD = rf"(?:(?:{_OPENER})[ ,.!;:\-]+)*"
# Words that may open a question before its question word ("So, how...", "And what...").
QUESTION_LEAD = r"(?:(?:so|and|but|okay|ok|well|now|then|alright|all right|right|yeah|um|uh)[ ,]+)*"

# label: "it seems / sounds / looks / feels like...", "you seem / sound..." opening a rep run (a line of
# the rep's Script: script.py).
LABEL = re.compile(
    rf"\n{TURN_LEAD}(?:(?:it )?(?:seems|sounds|looks|feels)(?: to me)? (?:like|as if|as though)\b"
    r"|it seems(?: to me)? that\b|you (?:seem|sound)\b)"
)
# ... which is a stock phrase about a plan, the time or the call itself when what follows it is one of:
LABEL_STOCK_START = re.compile(
    r"\s*(?:a (?:good |great |solid |fair |reasonable |fine )?(?:plan|deal|idea)\b(?! (?:breaker|killer))"
    r"|(?:it|that|this|so|fun|a lot of fun)\s*(?:[.,!?;]|$)"
    r"|(?:it|that|this) (?:works|would work|will work|could work|is fine|'s fine)\b"
    r"|(?:i|we)(?:'ll|'d| will| would| can| could| should| might| may|'re going to| are going to"
    r"| need to| have to)\b"
    rf"|(?:\S+ ){{0,2}}(?:{_DAYS}|{_MONTHS}|next week|this week|{_CLOCK})\b"
    r"|(?:a (?:bit|little) |really |very |so |much )?(?:quiet|muffled|far away|faint|robotic|choppy"
    r"|distorted|great|good|clear|fine|better|louder|echoey|low|loud)\s*(?:[.,!?;]|$|now|again)"
    r"|to (?:be|have) (?:on mute|muted|frozen|dropped|disconnected|breaking up|cutting out|lost)\b)"
)
LABEL_STOCK_ANYWHERE = re.compile(
    r"\b(?:(?:we|i)(?:'re| are|'ve| have|'m| am)?\b.{0,30}?\b(?:out of time|over time|at time|short on time"
    r"|(?:running|run) (?:out|over|late|long|short)|hard stop|top of the hour|minutes? (?:left|to go)"
    r"|time left|wrap(?:ping)? up|lost you|have everyone|got everyone)"
    r"|(?:you(?:'re| are)|i(?:'m| am)|we(?:'re| are)) (?:still )?(?:on mute|muted|breaking up|cutting out"
    r"|frozen|back|here|all here|in (?:a|the) car|driving|lagging|echoing|on speaker|on the line)\b"
    r"|(?:the|your|my|our) (?:line|connection|audio|video|screen|link|invite|mic|microphone|camera"
    r"|internet|wi-?fi|headset|calendar|calendar invite)\b"
    r"|(?:the|this) (?:call|meeting) (?:dropped|froze|is being recorded|is recorded|is over|ended)\b"
    r"|(?:everyone|everybody)(?:'s| is| has)? (?:here|joined|on)\b|\bdate\b)"
)

# calibrated_question: a rep question opening with how or what (questions.py) ...
# ... that is not a quantity, time or date, a suggestion or yes/no question in disguise, a "why", small
# talk, a call-quality check or a request for contact details. Matched at its question word.
NOT_CALIBRATED = re.compile(
    r"(?:how (?:many|much|long|often|soon|far|old|big|large|early|late|frequently|come)\b"
    r"|what (?:time|day|date|year|month|week|hour|percentage|percent|amount|size)s?\b"
    r"|what(?:'s| is| was| are| would be| will be)? (?:the |your |our )?(?:budget|price|pricing|cost"
    r"|number|headcount|date|deadline|timeline|time ?frame|time|renewal date|start date|quota"
    r"|volume|best time|good time)\b"
    r"|what\b(?: [^ ?]+){0,3}? (?:number|price|budget|cost|amount|figure|percentage|percent|discount"
    r"|headcount)\b"
    r"|how about\b|what if\b|what do you say\b|what would you say to\b|what for\b|what[,!]"
    r"|what about\b(?!.*\b(?:is|are|was|were|makes?|made|worr\w*|concern\w*|bother\w*|matters?"
    r"|appeals?|does|do|did|would|could)\b)"
    r"|what(?: was| did you say)(?: that| the last (?:part|bit)| again)?\s*\?"
    r"|what(?:'s| is) up\b|how have you been\b|how(?:'s| is) it going\b|how goes it\b"
    r"|how(?:'re|'s| is| are| was| were| have| has) (?:you|things|everything|life|we|it|ya"
    r"|your (?:day|week|weekend|morning|afternoon|evening|trip|holiday|vacation|summer|family|flight"
    rf"|{_DAYS})|the (?:weather|conference|offsite|trip|holiday|vacation|weekend|flight|drive|commute"
    r"|event|show|game|break))(?: (?:doing|going|been|holding up|treating you|today|so far"
    r"|this (?:morning|afternoon|week)))*\s*\?"
    r"|how(?:'s| is| does| do) (?:my |the |your )?(?:audio|sound|connection|video|line|mic)\b"
    r"|how do you (?:spell|pronounce)\b"
    r"|what(?:'s| is| was) (?:the |your |a )?(?:best |good )?(?:email|e-mail|phone|address|name"
    r"|last name|title|cell)\b)"
)
NOT_CALIBRATED_ANYWHERE = re.compile(rf"\b(?:{_DAYS}|{_CLOCK}|calendar|schedule|next week)\b")

# no_oriented_question and accusation_audit, anywhere in a rep sentence. Each is an alternation of
# phrases grouped by the literal they open with (alternation.py: found at the speed of a literal); whether
# the match starts a word is checked after (moments.py).
_BAD = (
    r"(?:a )?(?:really )?(?:bad|terrible|horrible|awful|crazy|ridiculous|dumb|stupid|silly|unreasonable)"
    r"(?: (?:idea|time)\b|(?= (?:to|if|for)\b))"
)
NO_ORIENTED = Alternation(
    ("is ", rf"(?:it|this|that|now) {_BAD}|(?:now|this|today) (?:a )?bad time\b"),
    ("would ", rf"(?:it|this|that) be {_BAD}|you be (?:against|opposed to|averse to)\b|you object\b"),
    ("are you ", r"(?:against|opposed to)\b"),
    ("do you ", r"object\b"),
    ("have ", r"you (?:given up on|decided against)\b|i caught you at a bad time\b"),
    ("had you ", r"(?:given up on|decided against)\b"),
    ("did ", r"you give up on\b|i catch you at a bad time\b"),
)
_SOUND = r" (?:may|might|could|will|is going to|probably will|probably) sound\b"
_SURE = r"(?:'re| are) (?:thinking|wondering)\b"  # "I'm sure you..."
ACCUSATION_AUDIT = Alternation(
    (
        "you",
        r"(?:'re| are) (?:probably|likely|maybe|most likely) (?:thinking|wondering"
        r"|going to (?:think|say|ask|wonder)|feeling|saying to yourself|expecting|sick of|tired of)\b"
        r"| (?:probably|might|may|must) (?:think|be thinking|be wondering|feel like|be feeling"
        r"|be expecting|be sick of|be tired of)\b"
        r"|(?:'re| are) going to think (?:i'm|we're|this|that)\b",
    ),
    ("i'm sure you", _SURE),
    ("i bet you", _SURE),
    ("i imagine you", _SURE),
    ("i suspect you", _SURE),
    (
        "i know ",
        r"what you(?:'re| are) (?:thinking|going to say)\b"
        r"|you (?:weren't|were not|didn't|did not) (?:expect|expecting)\b"
        r"|(?:this|that|it|what i'm (?:about|going) to say)"
        r" (?:probably |might |may |must |is going to |will )?sounds?\b",
    ),
    ("this", _SOUND),
    ("that", _SOUND),
    ("it", _SOUND),
    ("what i'm ", rf"(?:about|going) to say{_SOUND}"),
    ("my ", rf"(?:question|request|ask){_SOUND}"),
    after=r"(?! (?:familiar|right|fair|about right|like a plan)\b)",
)

# summary: a rep run of at least SUMMARY_MIN_WORDS words opening with one of these.
SUMMARY_MIN_WORDS = 20
SUMMARY = re.compile(
    rf"\n{TURN_LEAD}(?:what i(?:'m| am) hearing|what i hear(?: you saying)? is|in other words"
    r"|to summari[sz]e(?!,? (?:our|my|what we|what i)\b)|to sum (?:it )?up|in summary"
    r"|if i(?:'m| am)? understand(?:ing)?(?: you| this| that)?(?: correctly| right)?|let me summari[sz]e)\b"
)

# thats_right / youre_right: the buyer's, said as a statement, not asked, doubted or made conditional.
THATS_RIGHT = re.compile(
    r"that(?<![^\W_]that)(?:'s| is) "
    r"(?:exactly |absolutely |totally |just |precisely |completely |so |quite |dead )?"
    r"right\b(?=\s*(?:[.,!;:\u2014\-]|$))"
)
YOURE_RIGHT = re.compile(
    r"you(?<![^\W_]you)(?:'re| are) "
    r"(?:absolutely |totally |completely |probably |so |quite |definitely |dead |exactly |entirely |100% )?"
    r"right\b(?! (?:now|away|there|here|on|around|up|back|next|behind|in front|at|before|after"
    r"|to (?:ask|be|worry|wonder))\b)(?!\s*\?)"
)
DOUBTED = re.compile(
    r"\b(?:not sure|don't think|do not think|doubt|wonder|if|whether|unless|don't know|not convinced"
    r"|hope|hoping|not saying|isn't|wasn't)\b"
)
