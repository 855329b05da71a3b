"""Precision and recall of the Voss moments on the hand-labelled dialogue of labelled.py and heldout.py.

Every line becomes one segment of a transcript per dialogue; a moment counts for the line whose segment
it starts in. `pytest -s` prints a table per set and for both; precision below 0.90 or recall below 0.70
for any tactic over both sets fails. Precision comes first (SPEC 5.7): a moment shown to a manager must be
right.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from services.aggregator.conversation import TACTICS, analyse
from tests.aggregator.conversation.heldout import HELDOUT
from tests.aggregator.conversation.labelled import DIALOGUES, Line

MIN_PRECISION = 0.90
MIN_RECALL = 0.70


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    misses: list[str] = field(default_factory=list)
    false_alarms: list[str] = field(default_factory=list)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


def predicted(dialogue: list[Line]) -> list[set[str]]:
    """The tactics found in each turn of `dialogue`, the turns spoken 10 s apart."""
    transcript = [
        {"speaker": speaker, "start_s": 10.0 * i, "end_s": 10.0 * i + 8.0, "text": text}
        for i, (speaker, text, _) in enumerate(dialogue)
    ]
    found: list[set[str]] = [set() for _ in dialogue]
    for moment in analyse(transcript).moments:
        i = int(moment.start_s // 10)
        assert moment.start_s == 10.0 * i, moment
        assert moment.speaker == dialogue[i][0], moment
        assert moment.text, moment
        assert moment.text in " ".join(text for _, text, _ in dialogue), moment
        found[i].add(moment.tactic)
    return found


def evaluate(dialogues: list[list[Line]]) -> dict[str, Score]:
    scores = {tactic: Score() for tactic in TACTICS}
    for dialogue in dialogues:
        for (_, text, labels), got in zip(dialogue, predicted(dialogue), strict=True):
            for tactic, score in scores.items():
                if tactic in labels and tactic in got:
                    score.tp += 1
                elif tactic in labels:
                    score.fn += 1
                    score.misses.append(text)
                elif tactic in got:
                    score.fp += 1
                    score.false_alarms.append(text)
    return scores


def table(scores: dict[str, Score]) -> str:
    lines = [
        "| tactic | labelled | found | right | precision | recall |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for tactic, s in scores.items():
        lines.append(
            f"| {tactic} | {s.tp + s.fn} | {s.tp + s.fp} | {s.tp} | {s.precision:.2f} | {s.recall:.2f} |"
        )
    return "\n".join(lines)


def test_the_labelled_set_is_large_and_covers_every_tactic() -> None:
    turns = [line for dialogue in DIALOGUES + HELDOUT for line in dialogue]
    assert len(turns) >= 300
    assert {speaker for speaker, _, _ in turns} == {"rep", "buyer"}
    for tactic in TACTICS:
        assert sum(tactic in labels for _, _, labels in turns) >= 10, tactic
    assert all(set(labels) <= set(TACTICS) for _, _, labels in turns)


def test_every_tactic_is_precise_and_finds_most_of_its_moments() -> None:
    print("\nlabelled.py\n" + table(evaluate(DIALOGUES)))
    print("\nheldout.py\n" + table(evaluate(HELDOUT)))
    scores = evaluate(DIALOGUES + HELDOUT)
    print("\nboth\n" + table(scores))
    weak = {
        tactic: (round(s.precision, 2), round(s.recall, 2), s.false_alarms, s.misses)
        for tactic, s in scores.items()
        if s.precision < MIN_PRECISION or s.recall < MIN_RECALL
    }
    assert weak == {}
