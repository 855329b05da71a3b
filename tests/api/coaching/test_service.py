"""Coaching standings (SPEC 5.2) on small organisations worked out by hand, plus a brute-force
cross-check of the fast leave-one-out statistics on random organisations."""

from __future__ import annotations

import math
import random
import statistics
from typing import Any

import pytest

from services.api.coaching.queries import GROUP_COLUMNS
from services.api.coaching.service import (
    ACTIVITY_METRICS,
    COACHING_METRICS,
    DENOMINATORS,
    CoachingRep,
    Observation,
    Standing,
    coach_rep,
    coach_row,
    coach_scope,
    coach_table,
    observations,
    team_focus,
)
from services.api.coaching.tables import table_from_sums, tables_from_sums
from services.api.kit.conversations import conversation_metrics, sum_column
from services.api.kit.sums import metrics_from_sums

SCALE = 1.4826
TALK_SUMS = tuple(sum_column(m) for m in ("rep_talk_share", "longest_monologue_s", "rep_questions"))


Obs = tuple[float | None, int | None]


def rep(rep_id: str, team: str | None = "east", **metrics: Obs) -> CoachingRep:
    return CoachingRep(rep_id, team, {name: Observation(v, n) for name, (v, n) in metrics.items()})


def org_rep(rep_id: str, metrics: dict[str, Obs]) -> CoachingRep:
    return rep(rep_id, "east", **metrics)


def by_id(reps: list[CoachingRep], min_sample: int = 20) -> dict[str, dict[str, Standing]]:
    return {r.rep_id: r.metrics for r in coach_scope(reps, min_sample=min_sample)}


# connect_rate with dials: g is below min_sample (10 < 20), so it is nobody's peer.
CONNECT = [
    rep("a", connect_rate=(0.10, 100)),
    rep("b", connect_rate=(0.20, 100)),
    rep("c", connect_rate=(0.25, 40)),
    rep("d", connect_rate=(0.30, 50)),
    rep("e", connect_rate=(0.35, 60)),
    rep("f", connect_rate=(0.40, 80)),
    rep("g", connect_rate=(0.50, 10)),
]


def test_standing_of_a_rep_far_below_its_peers() -> None:
    a = by_id(CONNECT)["a"]["connect_rate"]
    # peers b..f = .20 .25 .30 .35 .40: median .30; |x - .30| = .10 .05 0 .05 .10 -> MAD .05
    assert a.value == 0.10
    assert a.sample == 100
    assert a.peers == 5
    assert a.peer_median == pytest.approx(0.30)
    assert a.percentile == 0.0
    assert a.gap_pct == pytest.approx(-0.2 / 0.3)
    assert a.z == pytest.approx(-0.20 / (SCALE * 0.05))
    assert a.z == pytest.approx(-2.6979, abs=1e-4)


def test_standing_of_a_rep_in_the_middle() -> None:
    d = by_id(CONNECT)["d"]["connect_rate"]
    # peers .10 .20 .25 .35 .40: median .25; deviations .15 .05 0 .10 .15 -> MAD .10
    assert d.peers == 5
    assert d.peer_median == pytest.approx(0.25)
    assert d.percentile == pytest.approx(60.0)  # three of five below
    assert d.gap_pct == pytest.approx(0.2)
    assert d.z == pytest.approx(0.05 / (SCALE * 0.10))


def test_rep_below_min_sample_gets_value_and_standing_but_no_z() -> None:
    g = by_id(CONNECT)["g"]["connect_rate"]
    # all six qualified reps are its peers: median (.25 + .30) / 2
    assert g.value == 0.50
    assert g.sample == 10
    assert g.peers == 6
    assert g.peer_median == pytest.approx(0.275)
    assert g.percentile == 100.0
    assert g.gap_pct == pytest.approx(0.225 / 0.275)
    assert g.z is None


def test_min_sample_is_a_parameter() -> None:
    # with min_sample=10, g qualifies: a's peers become b..g = .20 .25 .30 .35 .40 .50
    a = by_id(CONNECT, min_sample=10)["a"]["connect_rate"]
    assert a.peers == 6
    assert a.peer_median == pytest.approx(0.325)
    # deviations .125 .075 .025 .025 .075 .175 -> sorted .025 .025 .075 .075 .125 .175 -> MAD .075
    assert a.z == pytest.approx((0.10 - 0.325) / (SCALE * 0.075))
    assert by_id(CONNECT, min_sample=101)["a"]["connect_rate"].peers == 0


def test_percentile_counts_ties_as_half() -> None:
    reps = [
        rep("x", connect_rate=(0.25, 50)),
        rep("p1", connect_rate=(0.20, 50)),
        rep("p2", connect_rate=(0.25, 50)),
        rep("p3", connect_rate=(0.25, 50)),
        rep("p4", connect_rate=(0.30, 50)),
        rep("p5", connect_rate=(0.40, 50)),
    ]
    x = by_id(reps)["x"]["connect_rate"]
    # one peer below, two equal: 100 x (1 + 1) / 5
    assert x.percentile == pytest.approx(40.0)
    assert x.peer_median == pytest.approx(0.25)
    assert x.gap_pct == 0.0


def test_team_of_one_has_no_peers() -> None:
    [only] = coach_scope([rep("solo", connect_rate=(0.3, 100), dials=(100, None))])
    for name in ("connect_rate", "dials"):
        s = only.metrics[name]
        assert s.peers == 0
        assert s.peer_median is None
        assert s.percentile is None
        assert s.gap_pct is None
        assert s.z is None
    assert only.focus == ()


def test_all_peers_equal_gives_no_z() -> None:
    reps = [rep("low", connect_rate=(0.10, 100))] + [rep(f"p{i}", connect_rate=(0.25, 100)) for i in range(6)]
    low = by_id(reps)["low"]["connect_rate"]
    assert low.peers == 6
    assert low.peer_median == 0.25
    assert low.percentile == 0.0
    assert low.gap_pct == pytest.approx(-0.6)
    assert low.z is None  # MAD 0


def test_fewer_than_five_peers_gives_no_z() -> None:
    reps = CONNECT[:5]  # a..e: a has four peers
    a = by_id(reps)["a"]["connect_rate"]
    assert a.peers == 4
    assert a.peer_median == pytest.approx(0.275)
    assert a.percentile == 0.0
    assert a.z is None
    assert by_id(CONNECT[:6])["a"]["connect_rate"].z is not None


def test_zero_peer_median_gives_no_gap() -> None:
    reps = [rep("x", dials=(5, None))] + [rep(f"p{i}", dials=(0, None)) for i in range(5)]
    x = by_id(reps)["x"]["dials"]
    assert x.peer_median == 0
    assert x.gap_pct is None
    assert x.percentile == 100.0


def test_rep_with_no_activity() -> None:
    quiet = observations({})  # no events at all
    assert quiet["connect_rate"] == Observation(None, 0)
    assert quiet["dials"] == Observation(None, None)
    quiet = observations(dict.fromkeys(("dials", "connects", "emails_sent", "meetings_booked"), 0))
    assert quiet["dials"] == Observation(0.0, None)
    busy = [rep(f"p{i}", connect_rate=(0.1 * (i + 1), 50), dials=(50 + 10 * i, None)) for i in range(6)]
    results = {r.rep_id: r for r in coach_scope([CoachingRep("quiet", "east", quiet), *busy])}
    q = results["quiet"]
    # a rate with zero denominator has no value and no standing, but the peers are still described
    assert q.metrics["connect_rate"].value is None
    assert q.metrics["connect_rate"].sample == 0
    assert q.metrics["connect_rate"].peers == 6
    assert q.metrics["connect_rate"].peer_median == pytest.approx(0.35)
    assert q.metrics["connect_rate"].percentile is None
    assert q.metrics["connect_rate"].z is None
    # zero dials is a value: every active rep is a peer on activity metrics
    # peers 50 60 70 80 90 100: median 75, deviations 25 15 5 5 15 25 -> MAD 15
    assert q.metrics["dials"].value == 0.0
    assert q.metrics["dials"].sample is None
    assert q.metrics["dials"].z == pytest.approx(-75 / (SCALE * 15))
    assert q.focus == ("dials",)
    # and the quiet rep counts as a peer of the others on dials, not on connect_rate
    assert results["p0"].metrics["dials"].peers == 6
    assert results["p0"].metrics["connect_rate"].peers == 5


def test_metric_with_zero_denominator_is_never_a_peer() -> None:
    reps = [rep(f"p{i}", show_rate=(0.5 + 0.05 * i, 30)) for i in range(5)]
    reps.append(rep("zero", show_rate=(None, 0)))
    reps.append(rep("nan", show_rate=(float("nan"), 30)))
    out = by_id(reps)
    assert out["p0"]["show_rate"].peers == 4
    assert out["zero"]["show_rate"].value is None
    assert out["nan"]["show_rate"].value is None


def test_observations_take_each_rate_over_its_denominator() -> None:
    metrics = {
        "dials": 120,
        "connects": 30,
        "connect_rate": 0.25,
        "meeting_rate": 0.3,
        "meetings_booked": 9,
        "show_rate": 7 / 9,
        "emails_sent": 0,
        "reply_rate": None,
        "deals_won": 2,
        "deals_lost": 1,
        "win_rate": 2 / 3,
        "talk_ratio": 0.46,
        "talk_calls": 25,
        "avg_deal_size": 24000.0,
    }
    obs = observations(metrics)
    assert set(obs) == {*COACHING_METRICS, "deals_per_held"}
    assert obs["connect_rate"] == Observation(0.25, 120)
    assert obs["meeting_rate"] == Observation(0.3, 30)
    assert obs["show_rate"] == Observation(7 / 9, 9)
    assert obs["reply_rate"] == Observation(None, 0)
    assert obs["win_rate"] == Observation(2 / 3, 3)
    assert obs["talk_ratio"] == Observation(0.46, 25)
    assert obs["avg_deal_size"] == Observation(24000.0, 2)
    assert obs["dials"] == Observation(120.0, None)
    assert obs["meetings_booked"] == Observation(9.0, None)


PEER_VALUES = (0.20, 0.25, 0.30, 0.35, 0.40)


def focus_org(target: dict[str, float]) -> list[CoachingRep]:
    metrics = ("connect_rate", "meeting_rate", "talk_ratio", "win_rate")
    peers = [org_rep(f"p{i}", dict.fromkeys(metrics, (v, 50))) for i, v in enumerate(PEER_VALUES)]
    return [org_rep("t", {m: (v, 50) for m, v in target.items()}), *peers]


def test_focus_is_the_two_most_negative_and_talk_ratio_counts_both_ways() -> None:
    # peers .20 .25 .30 .35 .40 everywhere: median .30, MAD .05, so z = (v - .30) / .07413
    target = {"connect_rate": 0.10, "meeting_rate": 0.20, "talk_ratio": 0.55, "win_rate": 0.27}
    t = coach_scope(focus_org(target))[0]
    assert t.metrics["connect_rate"].z == pytest.approx(-2.6979, abs=1e-4)
    assert t.metrics["meeting_rate"].z == pytest.approx(-1.3490, abs=1e-4)
    assert t.metrics["talk_ratio"].z == pytest.approx(3.3724, abs=1e-4)
    assert t.metrics["win_rate"].z == pytest.approx(-0.4047, abs=1e-4)
    assert t.focus == ("talk_ratio", "connect_rate")


def test_focus_needs_z_at_most_minus_one() -> None:
    # z = -0.0741 / 0.0741 = -1.0 exactly at the threshold is in; -0.4 is not
    t = coach_scope(focus_org({"connect_rate": 0.30 - SCALE * 0.05, "win_rate": 0.27}))[0]
    assert t.metrics["connect_rate"].z == pytest.approx(-1.0)
    assert t.focus == ("connect_rate",)
    t = coach_scope(focus_org({"win_rate": 0.27, "talk_ratio": 0.33}))[0]
    assert t.focus == ()


def test_no_focus_on_a_metric_below_min_sample() -> None:
    org = focus_org({"connect_rate": 0.10})
    org[0] = rep("t", connect_rate=(0.10, 19))
    t = coach_scope(org)[0]
    assert t.metrics["connect_rate"].z is None
    assert t.focus == ()


def test_team_scope_compares_within_the_team() -> None:
    east = [rep(f"e{i}", "east", dials=(100 + 10 * i, None)) for i in range(6)]
    west = [rep(f"w{i}", "west", dials=(10 + i, None)) for i in range(6)]
    nobody = rep("n", None, dials=(50, None))
    reps = [*east, nobody, *west]
    tenant = {r.rep_id: r for r in coach_scope(reps)}
    team = {r.rep_id: r for r in coach_scope(reps, by_team=True)}
    assert [r.rep_id for r in coach_scope(reps, by_team=True)] == [r.rep_id for r in reps]
    assert tenant["w0"].metrics["dials"].peers == 12
    assert team["w0"].metrics["dials"].peers == 5
    # w1..w5 = 11..15: median 13, deviations 2 1 0 1 2 -> MAD 1
    assert team["w0"].metrics["dials"].z == pytest.approx(-3 / SCALE)
    assert team["w0"].team == "west"
    assert team["n"].metrics["dials"].peers == 0
    assert team_focus(coach_scope(reps, by_team=True))[0] == ("e0", ("dials",))


def test_coach_rep_picks_one_rep() -> None:
    a = coach_rep("a", CONNECT)
    assert a is not None
    assert a.metrics["connect_rate"].peers == 5
    assert coach_rep("nobody", CONNECT) is None


def brute_force(reps: list[CoachingRep], min_sample: int) -> dict[str, dict[str, Standing]]:
    """The SPEC 5.2 definitions written out literally."""
    out: dict[str, dict[str, Standing]] = {}
    for me in reps:
        out[me.rep_id] = {}
        for name in COACHING_METRICS:
            activity = name in ACTIVITY_METRICS

            def qualifies(r: CoachingRep, name: str = name, activity: bool = activity) -> bool:
                o = r.metrics.get(name)
                return o is not None and o.value is not None and (activity or (o.sample or 0) >= min_sample)

            mine = me.metrics.get(name, Observation(None))
            peers = [r.metrics[name].value for r in reps if r is not me and qualifies(r)]
            values = [v for v in peers if v is not None]
            value = mine.value
            sample = None if activity else mine.sample
            if not values:
                out[me.rep_id][name] = Standing(value, sample, 0, None, None, None, None)
                continue
            median = statistics.median(values)
            if value is None:
                out[me.rep_id][name] = Standing(None, sample, len(values), median, None, None, None)
                continue
            below = sum(v < value for v in values)
            equal = sum(v == value for v in values)
            mad = statistics.median(abs(v - median) for v in values)
            z = None
            if qualifies(me) and len(values) >= 5 and mad > 0:
                z = (value - median) / (SCALE * mad)
            gap = (value - median) / median if median else None
            pct = 100 * (below + 0.5 * equal) / len(values)
            out[me.rep_id][name] = Standing(value, sample, len(values), median, pct, gap, z)
    return out


def random_org(rnd: random.Random, size: int) -> list[CoachingRep]:
    reps = []
    for i in range(size):
        metrics = {}
        for name in COACHING_METRICS:
            if rnd.random() < 0.05:
                continue  # metric absent
            if name in DENOMINATORS:
                sample = rnd.choice([0, 5, 19, 20, 25, 80, 200])
                # coarse values make ties common, the hard case for leave-one-out ranks
                value = None if sample == 0 else rnd.randrange(0, 12) / 10
                metrics[name] = Observation(value, sample)
            else:
                metrics[name] = Observation(float(rnd.randrange(0, 15)), None)
        reps.append(CoachingRep(f"r{i}", "east", metrics))
    return reps


def smooth_org(rnd: random.Random, size: int) -> list[CoachingRep]:
    """Rates anywhere in [0, 1): medians and MADs fall between values, not on them."""
    reps = []
    for i in range(size):
        metrics = {}
        for name in COACHING_METRICS:
            if name in DENOMINATORS:
                sample = rnd.choice([0, 10, 30, 100])
                metrics[name] = Observation(None if sample == 0 else rnd.random(), sample)
            else:
                metrics[name] = Observation(float(rnd.randrange(0, 500)), None)
        reps.append(CoachingRep(f"r{i}", "east", metrics))
    return reps


@pytest.mark.parametrize("seed", range(60))
def test_fast_standings_are_the_definition_to_the_last_bit(seed: int) -> None:
    """The vectorised statistics do the definition's float operations in its order: equal, not close."""
    rnd = random.Random(seed)
    org = random_org if seed % 2 else smooth_org
    reps = org(rnd, rnd.choice([1, 2, 5, 6, 7, 12, 31, 80]))
    min_sample = rnd.choice([0, 20, 21])
    expected = brute_force(reps, min_sample)
    by_team = seed % 3 == 0
    if by_team:
        # Several teams and reps without one: each team's reps against each other only.
        reps = [CoachingRep(r.rep_id, rnd.choice(["east", "west", "north", None]), r.metrics) for r in reps]
        expected = {}
        for team in ("east", "west", "north"):
            expected |= brute_force([r for r in reps if r.team == team], min_sample)
        for r in reps:
            if r.team is None:
                expected |= brute_force([r], min_sample)
    for result in coach_scope(reps, min_sample=min_sample, by_team=by_team):
        for name in COACHING_METRICS:
            got, want = result.metrics[name], expected[result.rep_id][name]
            assert (got.value, got.sample, got.peers) == (want.value, want.sample, want.peers), name
            for field in ("peer_median", "percentile", "gap_pct", "z"):
                g, w = getattr(got, field), getattr(want, field)
                assert (g is None) == (w is None), (result.rep_id, name, field, g, w)
                assert g == w, (result.rep_id, name, field, g, w)


@pytest.mark.parametrize("seed", range(20))
def test_a_table_from_window_sums_holds_the_metric_formulas_values(seed: int) -> None:
    rnd = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for i in range(rnd.choice([1, 3, 40])):
        counts = {c: rnd.choice([0, 0, 1, 7, 20, 333]) for c in GROUP_COLUMNS}
        amounts = {
            c: rnd.choice([0.0, 0.1, 12.345, 80000.0])
            for c in ("rep_talk_s", "buyer_talk_s", "revenue_won", *TALK_SUMS)
        }
        rows.append({"rep_id": f"r{i}", "team": rnd.choice(["east", None]), **counts, **amounts})
    table = table_from_sums(rows)
    for i, row in enumerate(rows):
        sums: dict[str, int | float] = {c: row[c] for c in GROUP_COLUMNS}
        want = observations(
            {
                **metrics_from_sums(sums, quota_monthly=None, days=1),
                "talk_calls": row["talk_calls"],
                **conversation_metrics(sums),
                "calls_analysed": row["calls_analysed"],
            }
        )
        for name in COACHING_METRICS:
            value = float(table.values[name][i])
            assert (None if math.isnan(value) else value) == want[name].value, (i, name)
            if name in DENOMINATORS:
                assert table.samples[name][i] == want[name].sample, (i, name)
    assert table.rep_ids == [r["rep_id"] for r in rows]


@pytest.mark.parametrize("seed", range(12))
def test_one_rep_coached_alone_is_its_row_of_the_group(seed: int) -> None:
    """coach_row (the history's weeks) gives one rep exactly what coach_table gives its row: every
    standing, the focus and the priorities, prorated or not, by team or not."""
    rnd = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for i in range(rnd.choice([1, 6, 30])):
        counts = {c: rnd.choice([0, 3, 20, 25, 40, 333]) for c in GROUP_COLUMNS}
        amounts = {
            c: rnd.choice([0.0, 12.5, 80000.0, rnd.random() * 1e5])
            for c in ("rep_talk_s", "buyer_talk_s", "revenue_won", *TALK_SUMS)
        }
        team = rnd.choice(["east", "west", None])
        employed = rnd.choice([None, 30, 30, 0, 12])
        rows.append({"rep_id": f"r{i}", "team": team, "employed_days": employed, **counts, **amounts})
    table, prorated = tables_from_sums(rows, 30)
    for by_team in (False, True):
        for min_sample in (0, 20):
            group = coach_table(table, min_sample=min_sample, by_team=by_team, prorated=prorated)
            for i in range(len(rows)):
                alone = coach_row(table, i, min_sample=min_sample, by_team=by_team, prorated=prorated)
                for name, m in group.metrics.items():
                    a = alone.metrics[name]
                    got = [float(a.peers[0]), a.median[0], a.percentile[0], a.gap[0], a.z[0]]
                    want = [float(m.peers[i]), m.median[i], m.percentile[i], m.gap[i], m.z[i]]
                    assert [None if math.isnan(x) else x for x in got] == [
                        None if math.isnan(x) else x for x in want
                    ], (seed, by_team, min_sample, i, name)
                assert (alone.focus[0], alone.priorities[0]) == (group.focus[i], group.priorities[i])
