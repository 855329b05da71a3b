"""A small sales organisation's deals, and how each source reports them.

`organisation` makes the deals' stories (tests/system/pipeline_reference.py says what they add up to);
`canonical`, `hubspot` and `salesforce` turn them into what the ingest receives: BuyerEvents from a
customer's own system, HubSpot webhook notifications (one property change each), and Salesforce
Outbound Message envelopes (a snapshot of the Opportunity each time it changed).
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from xml.sax.saxutils import escape

from tests.system.pipeline_reference import (
    AMOUNT,
    CATEGORY,
    CLOSE_DATE,
    CONTACT,
    CREATED,
    DAY,
    LOST,
    OWNER,
    STAGE,
    WON,
    Deal,
    Fact,
    Rep,
)

REPS = (
    Rep("r1", "east", Decimal(30000), hubspot_owner_id="5101", salesforce_user_id="0055e000001AbC1AAK"),
    Rep("r2", "east", Decimal(20000), hubspot_owner_id="5102"),
    Rep("r3", "west", None, hubspot_owner_id="5103", salesforce_user_id="0055e000001AbC3AAK"),
    Rep("r4", "west", Decimal(25000)),
)
# A customer's own system names its stages as its HubSpot portal does; Salesforce has its own.
HUBSPOT_STAGES = (
    "appointmentscheduled",
    "qualifiedtobuy",
    "presentationscheduled",
    "decisionmakerboughtin",
    "contractsent",
)
SALESFORCE_STAGES = ("Prospecting", "Qualification", "Proposal/Price Quote", "Negotiation/Review")
CATEGORIES = ("pipeline", "best_case", "commit", "omitted")
PORTAL = 891472211
SF_ORG = "00D5e000000KQ2eEAG"  # the org of tests/ingest/test_webhooks.py's Secrets


@dataclass(frozen=True)
class Call:
    at: datetime
    rep_id: str
    contact_id: str


@dataclass(frozen=True)
class Story:
    deals: list[Deal]
    calls: list[Call]  # the last one is the newest event of all: as_of


def organisation(seed: int, t0: datetime, now: datetime, sources: dict[str, int]) -> Story:
    """`sources[s]` deals of each source, created from 50 days before `t0` to 20 after, changing
    until 27 days after it (before `now`, whatever month `t0` starts); calls with half their contacts;
    with api deals, one created 400 days before `t0`."""
    rnd = random.Random(seed)
    t0 = t0.astimezone(UTC)
    end = t0 + 27 * DAY
    deals = [
        _deal(rnd, _deal_id(source, k), source, t0, end) for source, n in sources.items() for k in range(n)
    ]
    if "api" in sources:
        old = Deal("api-old", "api")
        at = t0 - 400 * DAY
        old.facts += [Fact(at, CREATED), Fact(at, OWNER, "r2"), Fact(at, STAGE, HUBSPOT_STAGES[0])]
        old.facts += [Fact(at, AMOUNT, "7000"), Fact(at, CLOSE_DATE, str((t0 + 40 * DAY).date()))]
        old.facts += [Fact(t0 - 200 * DAY, STAGE, HUBSPOT_STAGES[1])]
        deals.append(old)
    calls = []
    for d in deals:
        contact = next((f.value for f in d.facts if f.kind == CONTACT), None)
        if contact is not None and rnd.random() < 0.5:
            for _ in range(rnd.randint(1, 3)):
                at = _moment(t0, rnd.uniform(-55, 27))
                calls.append(Call(at, rnd.choice(REPS).rep_id, contact))
    calls.append(Call(now.astimezone(UTC).replace(microsecond=0) - timedelta(minutes=30), "r1", "c-last"))
    return Story(deals, calls)


def _deal_id(source: str, k: int) -> str:
    if source == "hubspot":
        return str(9_100_000 + k)
    if source == "salesforce":
        return f"0065e00000Pq{k:03d}AAA"
    return f"api-{k}"


def _moment(t0: datetime, offset_days: float) -> datetime:
    return (t0 + timedelta(days=offset_days)).replace(microsecond=0)


def _deal(rnd: random.Random, deal_id: str, source: str, t0: datetime, end: datetime) -> Deal:
    stages = SALESFORCE_STAGES if source == "salesforce" else HUBSPOT_STAGES
    alias = {"hubspot": "hubspot_owner_id", "salesforce": "salesforce_user_id"}.get(source)
    owners = [r.rep_id for r in REPS if alias is None or getattr(r, alias)]
    d = Deal(deal_id, source)

    def add(at: datetime, kind: str, value: str | None = None) -> None:
        d.facts.append(Fact(at, kind, value))

    at = _moment(t0, rnd.uniform(-50, 20))
    owner: str | None = rnd.choice(owners)
    i, close = rnd.choice((0, 0, 1)), at.date() + rnd.randint(10, 60) * DAY
    if source == "api" and rnd.random() < 0.1:
        owner = None  # a deal of nobody's
    if source != "salesforce" and rnd.random() < 0.1:
        i = -1  # a deal created before it is put in a stage
    add(at, CREATED)
    if owner is not None:
        add(at, OWNER, owner)
    if i >= 0:
        add(at, STAGE, stages[i])
    add(at, CLOSE_DATE, str(close))
    if source == "salesforce" or rnd.random() < 0.85:
        add(at, AMOUNT, str(rnd.randrange(10, 500) * 100))
    if source == "salesforce" or rnd.random() < 0.75:
        add(at, CATEGORY, rnd.choice(CATEGORIES))
    if source != "salesforce":
        add(at, CONTACT, f"c-{deal_id}" if source == "api" else str(8_100_000 + int(deal_id) % 1000))
    for _ in range(rnd.randint(1, 6)):
        at += timedelta(seconds=rnd.randrange(6 * 3600, 10 * 86400))
        if at > end:
            return d
        move = rnd.random()
        if move < 0.55 and i + 1 < len(stages):
            i += 2 if move < 0.08 and i + 2 < len(stages) else 1  # a stage skipped now and then
            add(at, STAGE, stages[i])
        elif move < 0.62 and i > 0:
            i -= 1
            add(at, STAGE, stages[i])
        elif move < 0.7 and source != "salesforce" and owner is not None:
            owner = rnd.choice([o for o in owners if o != owner])
            add(at, OWNER, owner)
        elif move < 0.92:
            close += rnd.choice((-1, 1, 1, 2, 3)) * rnd.randint(5, 20) * DAY  # mostly pushed out
            add(at, CLOSE_DATE, str(close))
        else:
            kind = AMOUNT if rnd.random() < 0.5 else CATEGORY
            add(at, kind, str(rnd.randrange(10, 500) * 100) if kind == AMOUNT else rnd.choice(CATEGORIES))
    at += timedelta(seconds=rnd.randrange(6 * 3600, 10 * 86400))
    outcome = rnd.random()
    if at > end or outcome >= 0.6:
        return d
    kind = WON if outcome < 0.35 else LOST
    _close(d, at, kind)
    # Now and then a closed deal is reopened, and closed again (decided apart from the organisation's
    # random stream, which the other deals' stories come from).
    again = random.Random(deal_id)
    if again.random() < 0.3:
        at += timedelta(seconds=again.randrange(6 * 3600, 5 * 86400))
        if at <= end:
            add(at, STAGE, stages[max(i, 0)])
            if source == "salesforce":
                add(at, CATEGORY, "pipeline")
            at += timedelta(seconds=again.randrange(6 * 3600, 5 * 86400))
            if at <= end:
                _close(d, at, kind if again.random() < 0.7 else LOST)
    return d


def _close(d: Deal, at: datetime, kind: str) -> None:
    d.facts.append(Fact(at, kind))
    if d.source == "salesforce":  # Salesforce moves a closed opportunity's category itself
        d.facts.append(Fact(at, CATEGORY, "closed" if kind == WON else "omitted"))


# --- a customer's own system: canonical events --------------------------------------------------


def canonical(story: Story, sources: tuple[str, ...] = ("api",)) -> list[dict[str, Any]]:
    """The api deals as deal events (one per moment, naming the deal's owner then), and the calls."""
    events: list[dict[str, Any]] = []
    for d in story.deals:
        if d.source not in sources:
            continue
        owner: str | None = None
        for n, (at, facts) in enumerate(_moments(d.facts)):
            kinds = {f.kind: f.value for f in facts}
            owner = kinds.get(OWNER, owner)
            type_ = "deal.updated"
            for kind, name in ((CREATED, "deal.created"), (STAGE, "deal.stage_changed"), (WON, "deal.won"),
                               (LOST, "deal.lost")):  # fmt: skip
                if kind in kinds:
                    type_ = name
                    break
            fields = {name: kinds.get(kind) for kind, name in _EVENT_FIELDS}
            events.append({
                "event_id": f"{d.deal_id}-{n}", "type": type_, "occurred_at": _iso(at), "deal_id": d.deal_id,
                "rep_id": owner, **{k: v for k, v in fields.items() if v is not None},
            })  # fmt: skip
    for n, c in enumerate(story.calls):
        events.append({
            "event_id": f"call-{n}", "type": "call.completed", "occurred_at": _iso(c.at), "rep_id": c.rep_id,
            "contact_id": c.contact_id, "direction": "outbound", "outcome": "connected", "duration_s": 240,
        })  # fmt: skip
    return events


_EVENT_FIELDS = (
    (STAGE, "stage"),
    (AMOUNT, "amount"),
    (CLOSE_DATE, "close_date"),
    (CATEGORY, "forecast_category"),
    (CONTACT, "contact_id"),
)


def _moments(facts: list[Fact]) -> list[tuple[datetime, list[Fact]]]:
    ordered = sorted(facts, key=lambda f: f.at)
    return [(at, list(group)) for at, group in itertools.groupby(ordered, key=lambda f: f.at)]


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- HubSpot: one notification per property change ---------------------------------------------

_HUBSPOT_CATEGORIES = {
    "pipeline": "PIPELINE",
    "best_case": "BEST_CASE",
    "commit": "COMMIT",
    "omitted": "OMIT",
}


def hubspot(story: Story) -> list[dict[str, Any]]:
    """The HubSpot deals' notifications, as HubSpot's webhooks API sends them (attempt 0)."""
    out: list[dict[str, Any]] = []
    owner_ids = {r.rep_id: r.hubspot_owner_id for r in REPS}
    for d in story.deals:
        if d.source != "hubspot":
            continue
        for f in d.facts:
            base = {
                "eventId": 4_200_000 + len(out), "portalId": PORTAL, "appId": 7906213,
                "occurredAt": int(f.at.timestamp() * 1000), "attemptNumber": 0,
                "objectId": int(d.deal_id), "changeSource": "CRM_UI",
            }  # fmt: skip
            if f.kind == CREATED:
                out.append({**base, "subscriptionId": 700001, "subscriptionType": "deal.creation"})
            elif f.kind == CONTACT:
                out.append({
                    **base, "subscriptionId": 700003, "subscriptionType": "deal.associationChange",
                    "associationType": "DEAL_TO_CONTACT", "fromObjectId": int(d.deal_id),
                    "toObjectId": int(f.value or 0), "associationRemoved": False,
                })  # fmt: skip
            else:
                name, value = _hubspot_property(f, owner_ids)
                out.append({**base, "subscriptionId": 700002, "subscriptionType": "deal.propertyChange",
                            "propertyName": name, "propertyValue": value})  # fmt: skip
    return out


def _hubspot_property(f: Fact, owner_ids: dict[str, str | None]) -> tuple[str, str]:
    if f.kind == CLOSE_DATE:  # a date property: midnight UTC of the day, in milliseconds
        day = date.fromisoformat(f.value or "")
        return "closedate", str(int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000))
    if f.kind in (WON, LOST):
        return "dealstage", "closedwon" if f.kind == WON else "closedlost"
    value = {OWNER: owner_ids.get(f.value or ""), CATEGORY: _HUBSPOT_CATEGORIES.get(f.value or "")}.get(
        f.kind, f.value
    )
    name = {STAGE: "dealstage", AMOUNT: "amount", OWNER: "hubspot_owner_id", CATEGORY: "hs_forecast_category"}
    assert value is not None, f
    return name[f.kind], value


# --- Salesforce: a snapshot of the Opportunity whenever it changed -----------------------------

_SALESFORCE_CATEGORIES = {
    "pipeline": "Pipeline",
    "best_case": "Best Case",
    "commit": "Commit",
    "omitted": "Omitted",
    "closed": "Closed",
}


def salesforce(story: Story) -> list[bytes]:
    """One Outbound Message envelope per moment a Salesforce deal changed, each the record's snapshot."""
    owner_ids = {r.rep_id: r.salesforce_user_id for r in REPS}
    envelopes = []
    for d in story.deals:
        if d.source != "salesforce":
            continue
        state: dict[str, str | None] = {}
        created = min(f.at for f in d.facts)
        for n, (at, facts) in enumerate(_moments(d.facts)):
            for f in facts:
                if f.kind == STAGE:  # a closed opportunity moved to a stage is open again
                    state.pop(WON, None)
                    state.pop(LOST, None)
                state[f.kind] = f.value
            closed = WON in state or LOST in state
            stage = "Closed Won" if WON in state else "Closed Lost" if LOST in state else state[STAGE]
            fields = {
                "Id": d.deal_id, "Amount": state.get(AMOUNT), "CloseDate": state.get(CLOSE_DATE),
                "CreatedDate": _sf_time(created),
                "ForecastCategoryName": _SALESFORCE_CATEGORIES[state[CATEGORY] or ""],
                "IsClosed": str(closed).lower(), "IsWon": str(WON in state).lower(),
                "LastModifiedDate": _sf_time(at), "OwnerId": owner_ids[state[OWNER] or ""],
                "StageName": stage,
            }  # fmt: skip
            envelopes.append(_envelope(f"04l5e0000{d.deal_id[-6:-3]}{n:03d}AAJ", fields))
    return envelopes


def _sf_time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _envelope(notification_id: str, fields: dict[str, str | None]) -> bytes:
    values = "".join(
        f'<sf:{k} xsi:nil="true"/>' if v is None else f"<sf:{k}>{escape(v)}</sf:{k}>"
        for k, v in fields.items()
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        '<soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
        f"<OrganizationId>{SF_ORG}</OrganizationId><ActionId>04k5e000000CaRkAAK</ActionId>"
        '<SessionId xsi:nil="true"/>'
        "<EnterpriseUrl>https://acme.my.salesforce.com/services/Soap/c/60.0/00D5e000000KQ2e</EnterpriseUrl>"
        "<PartnerUrl>https://acme.my.salesforce.com/services/Soap/u/60.0/00D5e000000KQ2e</PartnerUrl>"
        f"<Notification><Id>{notification_id}</Id>"
        '<sObject xsi:type="sf:Opportunity" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
        f"{values}</sObject></Notification></notifications></soapenv:Body></soapenv:Envelope>"
    ).encode()
