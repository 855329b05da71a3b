"""Voss moments (SPEC 5.7): the tactics heard in a call's turns."""

from __future__ import annotations

from collections.abc import Sequence

from services.aggregator.conversation.model import Moment
from services.aggregator.conversation.turns import Turn


def find_moments(turns: Sequence[Turn]) -> tuple[Moment, ...]:
    return ()
