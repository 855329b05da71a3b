"""A peer group's coaching tables from its reps' window sums (queries.GROUP_COLUMNS): the SPEC 5.1
and 5.7 formulas applied to all reps at once, with the counts as they are (SPEC 5.2) and with the
activity metrics prorated (SPEC 5.9)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from services.api.coaching.service import ACTIVITY_METRICS, CONVERSATION_METRICS, Table, volumes_of
from services.api.coaching.stats import Floats, finite, floats, rate
from services.api.kit.conversations import CALLS, count_column, moments_column, sum_column
from services.api.kit.windows import DEFAULT_DAYS


def table_from_sums(rows: Sequence[Mapping[str, Any]], days: int = DEFAULT_DAYS) -> Table:
    """The prorated table of `tables_from_sums`: what SPEC 5.9's priorities and tenure peers read."""
    return tables_from_sums(rows, days)[1]


def tables_from_sums(rows: Sequence[Mapping[str, Any]], days: int = DEFAULT_DAYS) -> tuple[Table, Table]:
    """A group's tables from its reps' counter sums (queries.GROUP_COLUMNS) over windows of `days`
    days, the SPEC 5.1 and 5.7 formulas and `observations` applied to all reps at once: the same
    float operations, so the same values.

    The first holds the counts as they are (SPEC 5.2's standings and focus). In the second (SPEC
    5.9's priorities) the activity metrics are prorated to the whole window by the days the rep was
    employed in it (`employed_days` of a row; absent: every day): count x days / employed_days, null
    for a rep employed on none of them. The funnel's other counts are scaled alike, so a rep who
    joined halfway has the impacts of a whole window's work. The rates and samples are the same
    arrays in both, and when every rep was employed every day the two are one table.
    """
    count = {c: [int(r[c]) for r in rows] for c in ("dials", "connects", "emails_sent", "email_replies",
                                                  "meetings_booked", "meetings_held", "deals_won",
                                                  "deals_lost", "talk_calls", "deals_created")}  # fmt: skip
    deals = [won + lost for won, lost in zip(count["deals_won"], count["deals_lost"], strict=True)]
    f = {c: floats(v) for c, v in count.items()}
    rep_talk, buyer_talk = (floats(float(r[c]) for r in rows) for c in ("rep_talk_s", "buyer_talk_s"))
    revenue = floats(float(r["revenue_won"]) for r in rows)
    employed = floats(_employed(r, days) for r in rows)

    def prorated(counts: Floats) -> Floats:
        with np.errstate(divide="ignore", invalid="ignore"):
            whole: Floats = np.where(employed > 0, counts * days / employed, np.nan)
        return whole

    values = {
        "connect_rate": rate(f["connects"], f["dials"]),
        "meeting_rate": rate(f["meetings_booked"], f["connects"]),
        "show_rate": rate(f["meetings_held"], f["meetings_booked"]),
        "reply_rate": rate(f["email_replies"], f["emails_sent"]),
        "win_rate": rate(f["deals_won"], floats(deals)),
        "talk_ratio": rate(rep_talk, rep_talk + buyer_talk),
        "avg_deal_size": rate(revenue, f["deals_won"]),
        "dials": f["dials"],
        "emails_sent": f["emails_sent"],
        "meetings_booked": f["meetings_booked"],
        "deals_per_held": rate(f["deals_created"], f["meetings_held"]),
    }
    samples: dict[str, list[int | None]] = {
        "connect_rate": list(count["dials"]),
        "meeting_rate": list(count["connects"]),
        "show_rate": list(count["meetings_booked"]),
        "reply_rate": list(count["emails_sent"]),
        "win_rate": list(deals),
        "talk_ratio": list(count["talk_calls"]),
        "avg_deal_size": list(count["deals_won"]),
        "deals_per_held": list(count["meetings_held"]),
    }
    talk_values, talk_samples = _conversation_columns(rows)
    values |= talk_values
    samples |= talk_samples
    ids, teams = [r["rep_id"] for r in rows], [r["team"] for r in rows]
    plain = Table(ids, teams, values, samples, volumes_of(values, samples, np.ones(len(rows))), days)
    if bool(np.all(employed == days)):
        return plain, plain
    whole = values | {name: finite(prorated(values[name])) for name in ACTIVITY_METRICS}
    with np.errstate(divide="ignore", invalid="ignore"):
        scale: Floats = np.where(employed > 0, days / employed, 1.0)
    return plain, replace(plain, values=whole, volumes=volumes_of(whole, samples, scale))


def _employed(row: Mapping[str, Any], days: int) -> int:
    employed = row.get("employed_days")
    return days if employed is None else int(employed)


def _conversation_columns(
    rows: Sequence[Mapping[str, Any]],
) -> tuple[dict[str, Floats], dict[str, list[int | None]]]:
    """The conversation metrics (kit.conversations.conversation_metrics) of every rep, and their
    sample, the calls analysed."""

    def column(name: str) -> Floats:
        return floats(float(r[name]) for r in rows)

    calls = [int(r[CALLS]) for r in rows]
    analysed = floats(calls)
    values = {
        "rep_talk_share": rate(column(sum_column("rep_talk_share")), column(count_column("rep_talk_share"))),
        "longest_monologue_s": rate(
            column(sum_column("longest_monologue_s")), column(count_column("longest_monologue_s"))
        ),
        "questions_per_call": rate(column(sum_column("rep_questions")), analysed),
        "label_per_call": rate(column(moments_column("label")), analysed),
        "calibrated_question_per_call": rate(column(moments_column("calibrated_question")), analysed),
    }
    return values, {name: list(calls) for name in CONVERSATION_METRICS}
