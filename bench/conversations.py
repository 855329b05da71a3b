"""Conversation analysis in `make bench`: how fast calls are analysed, and what the conversation fold
costs the aggregator.

- analysis: 30-minute calls (300 segments of sales dialogue each, in a shuffled wire order) analysed
  one after the other by `services.aggregator.conversation.analyse` in this process: calls per CPU
  second (`time.process_time`, so one core, whatever else the machine runs).
- api: the api phase's tenant (bench/api_reads.py: 200 reps, a year) gets a year of
  `conversation_rollups` too (`seed_rollups`), so coaching's reads sum them as they would in use.
- fold: the real aggregator on the usual workload (bench/workload.py) with the conversation fold
  switched off (`bench/ablate.py`) and on, the same backlog each time, in alternating order so that a
  drift of the machine's load hits both alike; then on the same workload where 1 % of the calls carry
  a 300-segment transcript. The ratio on / off is what the conversation fold costs a stream without
  transcripts.

The dialogue is written here rather than taken from the tests: the benchmark runs without them.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from bench import api_reads, folding, workload
from bench import stack as st
from bench.folding import Backlog
from services.aggregator.conversation import analyse
from services.core.models import CONVERSATION_COUNTERS
from services.core.models.conversations import CALL_METRICS, COUNT_METRICS, TACTICS

SEGMENTS = 300
CALL_S = 1800.0
GAP_S = 0.3
TRANSCRIPT_SHARE = 0.01  # of the calls
ANALYSED_CALLS = 400
TOPICS = {"plain": ("bench-conv", "bench.conv"), "transcripts": ("bench-conv-tx", "bench.conv-tx")}
FOLD = "conversations"

R, B = "rep", "buyer"
# Short B2B sales calls, one after the other: discovery, pitch, objections, pricing, next steps. Some
# lines are Voss tactics (labels, mirrors, calibrated and no-oriented questions, accusation audits,
# summaries, "that's right"), some are back-channels, most are neither, as in real calls.
DIALOGUE: tuple[tuple[str, str], ...] = (
    (R, "Hi Jordan, thanks for making time today. How has the week been so far?"),
    (B, "Busy. We are closing the quarter and the board meeting is on Thursday."),
    (R, "Sounds like the board meeting is taking most of your attention."),
    (B, "It is. They want a forecast I can defend, and right now I can't."),
    (R, "You can't?"),
    (B, "Not really. Half the pipeline has not been touched in three weeks."),
    (R, "What makes it hard to keep the pipeline current?"),
    (B, "The reps update it on Friday afternoons, if they remember at all."),
    (R, "Mhm."),
    (B, "And the managers only find out when a deal slips into next quarter."),
    (R, "How do your managers decide which deals to look at first?"),
    (B, "Gut feeling, mostly. Whoever shouts loudest in the pipeline review."),
    (
        R,
        "So what I'm hearing is that the forecast rests on stale pipeline data, the managers learn "
        "about slipping deals too late, and the board expects a number you can defend on Thursday.",
    ),
    (B, "That's right. That is exactly where we are."),
    (R, "Let me show you how other revenue teams handle this."),
    (R, "Every call and email lands on the deal automatically, so nobody updates anything by hand."),
    (B, "Okay."),
    (R, "The managers get a list each morning of deals that went quiet, ranked by amount."),
    (B, "Yeah, makes sense."),
    (R, "And the forecast view shows which commits have had no buyer contact in ten days."),
    (B, "How long does it take to set that up?"),
    (R, "About two weeks for a team your size, most of it connecting the dialer."),
    (B, "Two weeks is fine. What about the reps, do they have to change anything?"),
    (R, "Nothing on their side. They keep calling and emailing the way they do today."),
    (B, "That would be a first."),
    (R, "You're probably thinking every vendor says that."),
    (B, "Pretty much, yes. The last tool took our reps a month to learn."),
    (R, "A month to learn?"),
    (B, "A month, and half of them still log calls in a spreadsheet."),
    (R, "It seems like the last rollout left a bad taste with the team."),
    (B, "It did. I don't want to go through that again."),
    (R, "What would a good first month look like for you?"),
    (B, "Managers coaching from real calls, and a forecast I trust by the next board meeting."),
    (R, "Would it be a bad idea to start with one team and expand once it works?"),
    (B, "No, that sounds sensible. The enterprise team would be the obvious choice."),
    (R, "Hi Priya, it's Sam from Tallyline. I know this sounds like a cold call, and it is."),
    (B, "Okay, you have two minutes. What is it about?"),
    (R, "We help sales managers see which calls move deals forward. How do you coach reps today?"),
    (B, "I listen to a few recordings when I have time, which is almost never."),
    (R, "Almost never?"),
    (B, "Maybe once a month, and only for the reps who are already struggling."),
    (R, "It sounds like coaching keeps getting pushed to the bottom of the list."),
    (B, "That's right. There is always a deal to chase instead."),
    (R, "What would change for the team if coaching happened every week?"),
    (B, "The new hires would ramp faster. We hired eight people this year."),
    (R, "How many of them are at quota?"),
    (B, "Three, maybe four on a good month."),
    (R, "Right."),
    (B, "And the other four are costing us accounts we should have won."),
    (R, "Would you be against a twenty-minute look at how that works next week?"),
    (B, "Fine. Send an invite for Tuesday morning."),
    (R, "Thanks for getting back on the call, Elena. What did finance think of the proposal?"),
    (B, "They liked the product. The price is the problem, it came in above our budget."),
    (R, "Above your budget?"),
    (B, "About a third above, and they want annual terms instead of three years."),
    (R, "I know this may sound like I am dodging, but what does finance need to see to sign?"),
    (B, "Honestly, under sixty thousand for the first year."),
    (R, "How many seats would you start with?"),
    (B, "Forty instead of sixty. The SDR team can wait until the autumn."),
    (R, "Forty seats?"),
    (B, "Forty. The account executives need it first, the SDRs can follow."),
    (R, "It sounds like the SDR rollout is the part you could live without for now."),
    (B, "You're right, it is the least urgent piece of it."),
    (R, "What would make the forty-seat version a clear win by the end of the half?"),
    (B, "If the managers actually open the coaching dashboards every week."),
    (
        R,
        "To summarize, you would start with forty seats for the account executives on annual terms, "
        "keep the first year under sixty thousand, and judge it by weekly use of the dashboards.",
    ),
    (B, "That's right."),
    (R, "Is it a terrible idea to bring your CFO onto the next call so she hears it herself?"),
    (B, "Not terrible. I will ask her and get back to you tomorrow."),
    (R, "Hi Tom, thanks for the time. I saw usage dropped last month. What has been going on?"),
    (B, "We reorganised the team and half of the managers stopped logging in."),
    (R, "Stopped logging in?"),
    (B, "Yes. The new vice president prefers the reports in the CRM."),
    (R, "You sound frustrated about that."),
    (B, "A bit. I was the one who championed you two years ago."),
    (R, "Have you given up on making the case internally?"),
    (B, "Not given up. But I need numbers she cannot argue with."),
    (R, "What would she need to see?"),
    (B, "Win rates before and after, and how long new reps take to ramp."),
    (R, "How long does ramp take right now?"),
    (B, "Around five months, and our target was three."),
    (R, "Mm-hmm."),
    (B, "We also lost two renewals last quarter that nobody saw coming."),
    (R, "Nobody saw them coming?"),
    (B, "The accounts looked healthy in the CRM until the cancellation notice arrived."),
    (
        R,
        "In other words, if we can show ramp dropping toward three months and catch at-risk renewals "
        "early, you have a story the new vice president cannot ignore.",
    ),
    (B, "That's exactly right."),
    (R, "Would you be opposed to a joint review with her in two weeks?"),
    (B, "Let me check her calendar and come back to you."),
    (R, "Hi Rachel, I hear legal has a few concerns with the contract."),
    (B, "Mainly the liability cap and where the call data is stored."),
    (R, "Where the call data is stored?"),
    (B, "All of it has to stay in the EU. Our works council is strict about that."),
    (R, "Sounds like the works council carries real weight in this decision."),
    (B, "They do. They can block the whole rollout if they want to."),
    (R, "What would the works council need from us?"),
    (B, "A written commitment on hosting in the EU and a list of subprocessors."),
    (R, "We can do both this week. How would you like to handle the liability cap?"),
    (B, "Our standard is twice the annual fees, anything above goes to our general counsel."),
    (R, "Okay."),
    (B, "If you accept that, I think legal can sign by the end of the month."),
    (
        R,
        "If I understand you correctly, we commit to EU hosting in writing, send the list of "
        "subprocessors, and accept a cap of twice the annual fees for your counsel to review.",
    ),
    (B, "That's right. Send it over today if you can."),
    (R, "Can everyone see my screen?"),
    (B, "Yes, we can see it."),
    (R, "What is the one thing you need to walk away knowing today?"),
    (B, "Whether the managers can find the bad calls without listening to everything."),
    (R, "Here is the coaching view. Every call gets a score before anyone listens to it."),
    (B, "Mhm."),
    (R, "The scores come from talk ratio, questions asked and whether a next step was agreed."),
    (B, "Can a manager filter by rep and by stage?"),
    (R, "Yes, by rep, team, stage and deal size, and the filters are saved per manager."),
    (B, "Good. How does it handle calls in German? Half of our team sells in DACH."),
    (R, "German and French are transcribed the same way as English, with the same scores."),
    (B, "And what happens to the recordings after a year?"),
    (R, "They are deleted after the retention period you set, along with the transcripts."),
    (B, "Okay, that answers the question from our data protection officer."),
    (R, "Walk me through how a deal gets approved on your side once the team agrees."),
    (B, "The VP signs anything under a hundred thousand, above that it goes to the CFO."),
    (R, "Help me understand what the CFO usually asks about."),
    (B, "Payback period, and whether we can cancel if adoption is poor."),
    (R, "Is now a bad time to talk about what adoption would have to look like?"),
    (B, "No, go ahead. We have ten minutes left."),
)


def dialogue_lines() -> list[tuple[str, str]]:
    return list(DIALOGUE)


def transcript(rng: random.Random, lines: list[tuple[str, str]] | None = None) -> list[dict[str, Any]]:
    """One 30-minute call: SEGMENTS consecutive lines of the dialogue from a random start (wrapping
    round), timed like speech (seconds in proportion to words, a short pause between segments), in a
    shuffled order, as a vendor may send them."""
    lines = lines or dialogue_lines()
    first = rng.randrange(len(lines))
    said = [lines[(first + i) % len(lines)] for i in range(SEGMENTS)]
    per_word = (CALL_S - GAP_S * SEGMENTS) / sum(len(text.split()) for _, text in said)
    segments, t = [], 0.0
    for speaker, text in said:
        d = round(per_word * len(text.split()), 2)
        segments.append({"speaker": speaker, "start_s": round(t, 2), "end_s": round(t + d, 2), "text": text})
        t += d + GAP_S
    rng.shuffle(segments)
    return segments


def analysis_rate(calls: int = ANALYSED_CALLS, seed: int = 7) -> dict[str, Any]:
    """Calls analysed per CPU second of this process, and the CPU time per call."""
    rng = random.Random(seed)
    made = [transcript(rng) for _ in range(calls)]
    analyse(made[0])  # imports and compiled patterns out of the clock
    each = []
    started = time.process_time()
    for segments in made:
        t0 = time.process_time()
        analyse(segments)
        each.append(time.process_time() - t0)
    cpu = time.process_time() - started
    each.sort()
    return {
        "calls": calls,
        "segments_per_call": SEGMENTS,
        "call_minutes": CALL_S / 60,
        "words_per_call": round(statistics.fmean(sum(len(s["text"].split()) for s in c) for c in made)),
        "cpu_s": round(cpu, 3),
        "calls_per_s": round(calls / cpu, 1),
        "ms_per_call_p50": round(1000 * each[len(each) // 2], 2),
        "ms_per_call_p99": round(1000 * each[int(len(each) * 0.99)], 2),
    }


def with_transcripts(
    events: list[dict[str, Any]], share: float = TRANSCRIPT_SHARE, seed: int = 9
) -> Iterator[dict[str, Any]]:
    """The events, `share` of their calls carrying a 30-minute transcript."""
    rng = random.Random(seed)
    lines = dialogue_lines()
    for e in events:
        if e["type"] == "call.completed" and rng.random() < share:
            e = {**e, "transcript": transcript(rng, lines)}
        yield e


def _preload(stack: st.Stack, name: str, events: list[dict[str, Any]], log: Callable[[str], None]) -> Backlog:
    tenant, topic = TOPICS[name]
    stack.create_topic(topic)
    stack.tenant(tenant, ["ingest"])
    stream = workload.with_duplicates(events, 0.03)
    rate = asyncio.run(st.preload(stack.broker.bootstrap, topic, tenant, stream))
    log(f"preloaded {len(stream):,} messages ({len(events):,} distinct) into {topic} at {rate:,.0f} msg/s")
    return Backlog(tenant, topic, len(stream), len(events))


def _analysed_calls(stack: st.Stack, tenant: str) -> int:
    sql = "SELECT count(*) FROM call_analyses WHERE tenant = $1 AND occurred_at IS NOT NULL"
    return int(asyncio.run(st.fetchval(stack.dsn, sql, tenant)))


def fold_cost(
    stack: st.Stack, events: int, runs: int, reset: Callable[[], None], log: Callable[[str], None]
) -> dict[str, Any]:
    """The aggregator's events/s without the conversation fold, with it, and with it on a stream where
    1 % of the calls carry transcripts; at least two rounds, the order reversed every other round."""
    plain = list(workload.events(events, seed=7))
    carried = list(with_transcripts(plain))
    transcripts = sum(1 for e in carried if "transcript" in e)
    backlogs = {
        "plain": _preload(stack, "plain", plain, log),
        "transcripts": _preload(stack, "transcripts", carried, log),
    }
    variants: dict[str, tuple[str, tuple[str, ...]]] = {
        "without_fold": ("plain", (FOLD,)),
        "with_fold": ("plain", ()),
        "with_transcripts": ("transcripts", ()),
    }
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    for r in range(max(2, runs)):
        order = list(variants) if r % 2 == 0 else list(reversed(variants))
        for name in order:
            reset()
            backlog, without = variants[name]
            result = folding.fold_backlog(stack, backlogs[backlog], f"bench-conv-{name}-{r}", without=without)
            if name == "with_transcripts":
                analysed = result["calls_analysed"] = _analysed_calls(stack, backlogs[backlog].tenant)
                if analysed != transcripts:
                    raise RuntimeError(f"{analysed} calls analysed, {transcripts} transcribed")
            out[name].append(result)
            log(f"conversations {name} round {r + 1}: {result['events_per_s']:,} events/s, "
                f"aggregator CPU {result['cpu_seconds']['service']} s")  # fmt: skip
    return summarise(out, transcripts)


def summarise(out: dict[str, list[dict[str, Any]]], transcripts: int) -> dict[str, Any]:
    rates = {name: [r["events_per_s"] for r in rows] for name, rows in out.items()}
    cpu = {name: [r["cpu_seconds"]["service"] for r in rows] for name, rows in out.items()}
    median = {name: round(statistics.median(v)) for name, v in rates.items()}
    pairs = [w / wo for w, wo in zip(rates["with_fold"], rates["without_fold"], strict=True)]
    return {
        "transcripts": transcripts,
        "transcript_share_of_calls": TRANSCRIPT_SHARE,
        "events_per_s": median,
        "aggregator_cpu_s": {name: round(statistics.median(v), 1) for name, v in cpu.items()},
        "runs": out,
        # events/s with the conversation fold over without it, on the same backlog: target >= 0.95
        "fold_ratio": round(median["with_fold"] / median["without_fold"], 3),
        # the same in aggregator CPU seconds (without / with), which moves less with the machine's load
        "fold_cpu_ratio": round(
            statistics.median(cpu["without_fold"]) / statistics.median(cpu["with_fold"]), 3
        ),
        "fold_ratio_per_round": [round(p, 3) for p in pairs],
        "transcripts_ratio": round(median["with_transcripts"] / median["with_fold"], 3),
    }


def rollup_rows(tenant: str, days: list[date], rnd: random.Random) -> Iterator[tuple[Any, ...]]:
    """A plausible day of analysed calls per rep: a few transcribed connects, each metric's sum over
    the calls that have it, a tactic now and then."""
    means = {"rep_talk_share": 0.55, "longest_monologue_s": 75.0, "longest_story_s": 40.0,
             "interactivity": 6.0, "patience_s": 0.9, "rep_questions": 12, "buyer_questions": 4,
             "open_questions": 5}  # fmt: skip
    for i in range(api_reads.REPS):
        style = rnd.uniform(0.7, 1.3)
        for day in days:
            calls = rnd.randint(0, 8)
            values: dict[str, Any] = {"calls_analysed": calls}
            for metric in CALL_METRICS:
                n = calls if metric != "patience_s" else rnd.randint(0, calls)
                total = sum(means[metric] * style * rnd.uniform(0.5, 1.5) for _ in range(n))
                values[f"{metric}_sum"] = Decimal(round(total)) if metric in COUNT_METRICS else (
                    Decimal(total).quantize(Decimal("0.000001")))  # fmt: skip
                values[f"{metric}_n"] = n
            for tactic in TACTICS:
                values[f"{tactic}_moments"] = sum(rnd.random() < 0.3 * style for _ in range(calls))
            yield (tenant, api_reads.rep_id(i), day, *(values[c] for c in CONVERSATION_COUNTERS))


async def seed_rollups(dsn: str, tenant: str) -> int:
    """A year of `conversation_rollups` for the api phase's reps (its data is replaced)."""
    rnd = random.Random(2027)
    today = datetime.now(UTC).date()
    days = [today - timedelta(days=d) for d in range(api_reads.DAYS, 0, -1)]
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DELETE FROM conversation_rollups WHERE tenant = $1", tenant)
        await conn.copy_records_to_table(
            "conversation_rollups",
            records=rollup_rows(tenant, days, rnd),
            columns=["tenant", "rep_id", "day", *CONVERSATION_COUNTERS],
        )
        await conn.execute("VACUUM ANALYZE conversation_rollups")
    finally:
        await conn.close()
    return api_reads.REPS * len(days)


def run(
    stack: st.Stack, events: int, runs: int, reset: Callable[[], None], log: Callable[[str], None]
) -> dict[str, Any]:
    a = analysis_rate()
    log(f"conversation analysis: {a['calls_per_s']:,} calls/s on one core ({a['call_minutes']:.0f}-minute "
        f"calls of {a['segments_per_call']} segments), p99 {a['ms_per_call_p99']} ms per call")  # fmt: skip
    fold = fold_cost(stack, events, runs, reset, log)
    log(f"conversation fold: events/s with it / without it {fold['fold_ratio']}, with 1 % of the calls "
        f"transcribed / without {fold['transcripts_ratio']} ({fold['transcripts']} transcripts)")  # fmt: skip
    return {"analysis": a, "fold": fold}
