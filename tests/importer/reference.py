"""What the sample exports say happened, read naively and independently of services/importer: the
canonical events they stand for (for tests/system/reference.py's SPEC 5.1 oracle) and the SPEC 5.5
channel report over a window. It knows these sample files only: their columns, formats and values.
"""

from __future__ import annotations

import csv
import statistics
from collections import defaultdict
from datetime import date, datetime
from typing import Any

from tests.importer.support import NOW, SAMPLES

HUBSPOT_SOURCES = {
    "Organic Search": "organic_search",
    "Paid Search": "paid_search",
    "Social Media": "organic_social",
    "Referrals": "referral",
    "Offline Sources": "outbound",
    "Direct Traffic": "direct",
    "Email Marketing": "email_marketing",
}
LEAD_SOURCES = {
    "Web": "direct",
    "Trade Show": "events",
    "Partner Referral": "partner",
    "Purchased List": "outbound",
    "Webinar": "events",
}
OUTCOMES = {"Connected - interested": "connected", "Connected": "connected", "Left voicemail": "voicemail",
            "No answer": "no_answer"}  # fmt: skip
Event = dict[str, Any]
UNATTRIBUTED = "unattributed"  # the report's name for leads and deals of no known channel


def sample_rows(name: str) -> list[dict[str, str]]:
    with (SAMPLES / name).open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def _at(text: str) -> str:
    """The samples' times: `2026-09-01 09:12` (UTC tenant), `2026-09-30` (noon), or ISO with Z."""
    if text.endswith("Z"):
        return datetime.fromisoformat(text).isoformat()
    if len(text) == 10:
        return f"{text}T12:00:00+00:00"
    return f"{text.replace(' ', 'T')}:00+00:00"


def hubspot(rep_of_owner: dict[str, str]) -> list[Event]:
    out: list[Event] = []
    for c in sample_rows("hubspot-contacts.csv"):
        lead = {"contact_id": c["Record ID"], "rep_id": rep_of_owner.get(c["Contact owner"]),
                "channel": HUBSPOT_SOURCES[c["Original Source"]]}  # fmt: skip
        out.append({**lead, "type": "lead.created", "occurred_at": _at(c["Create Date"])})
        for stage, column in (("mql", "Marketing"), ("sql", "Sales")):
            if c[f"Became a {column} Qualified Lead Date"]:
                at = _at(c[f"Became a {column} Qualified Lead Date"])
                out.append({**lead, "type": "lead.qualified", "stage": stage, "occurred_at": at})
    for d in sample_rows("hubspot-deals.csv"):
        deal = {
            "deal_id": d["Record ID"],
            "rep_id": rep_of_owner.get(d["Deal owner"]),
            "contact_id": d["Associated Contact IDs"].split(";")[0],
            "amount": d["Amount"].replace(",", ""),
        }
        out.append({**deal, "type": "deal.created", "occurred_at": _at(d["Create Date"])})
        outcome = {"Closed Won": "deal.won", "Closed Lost": "deal.lost"}.get(d["Deal Stage"])
        if outcome:
            out.append({**deal, "type": outcome, "occurred_at": _at(d["Close Date"])})
    return out


def salesforce(rep_of_user: dict[str, str]) -> list[Event]:
    return _opportunities(rep_of_user) + _leads(rep_of_user) + _activities(rep_of_user)


def _opportunities(rep_of_user: dict[str, str]) -> list[Event]:
    out: list[Event] = []
    history = sample_rows("sf-opportunity-history.csv")
    opportunities = sample_rows("sf-opportunity.csv")
    owner = {o["Id"]: rep_of_user.get(o["OwnerId"]) for o in opportunities}
    entered: set[tuple[str, str]] = set()
    for h in sorted(history, key=lambda h: h["CreatedDate"]):
        key = (h["OpportunityId"], h["StageName"])
        if not h["StageName"].startswith("Closed") and key not in entered:
            entered.add(key)
            out.append({"type": "deal.stage_changed", "deal_id": key[0], "rep_id": owner.get(key[0]),
                        "occurred_at": _at(h["CreatedDate"])})  # fmt: skip
    for o in opportunities:
        deal = {"deal_id": o["Id"], "rep_id": owner[o["Id"]], "amount": o["Amount"],
                "channel": LEAD_SOURCES[o["LeadSource"]]}  # fmt: skip
        out.append({**deal, "type": "deal.created", "occurred_at": _at(o["CreatedDate"])})
        if o["IsClosed"] == "true":
            closed = [
                h["CreatedDate"]
                for h in history
                if (h["OpportunityId"], h["StageName"]) == (o["Id"], o["StageName"])
            ]
            at = _at(max(closed)) if closed else _at(o["CloseDate"])
            out.append(
                {**deal, "type": "deal.won" if o["IsWon"] == "true" else "deal.lost", "occurred_at": at}
            )
    return out


def _leads(rep_of_user: dict[str, str]) -> list[Event]:
    out: list[Event] = []
    for r in sample_rows("sf-lead.csv"):
        lead = {
            "contact_id": r["Id"],
            "rep_id": rep_of_user.get(r["OwnerId"]),
            "channel": LEAD_SOURCES[r["LeadSource"]],
        }
        out.append({**lead, "type": "lead.created", "occurred_at": _at(r["CreatedDate"])})
        if r["Status"] == "Marketing Qualified":
            out.append(
                {**lead, "type": "lead.qualified", "stage": "mql", "occurred_at": _at(r["LastModifiedDate"])}
            )
        if r["IsConverted"] == "true":
            out.append(
                {**lead, "type": "lead.qualified", "stage": "sql", "occurred_at": _at(r["ConvertedDate"])}
            )
    return out


def _activities(rep_of_user: dict[str, str]) -> list[Event]:
    out: list[Event] = []
    for t in sample_rows("sf-task.csv"):
        if t["Status"] != "Completed":
            continue
        task = {
            "rep_id": rep_of_user.get(t["OwnerId"]),
            "contact_id": t["WhoId"],
            "occurred_at": _at(t["CompletedDateTime"]),
        }
        if t["TaskSubtype"] == "Call":
            call = {
                "direction": t["CallType"].lower(),
                "outcome": OUTCOMES[t["CallDisposition"]],
                "duration_s": int(t["CallDurationInSeconds"]),
            }
            out.append({**task, **call, "type": "call.completed"})
        else:
            out.append({**task, "type": "email.sent"})
    for e in sample_rows("sf-event.csv"):
        meeting = {"rep_id": rep_of_user.get(e["OwnerId"]), "contact_id": e["WhoId"]}
        out.append({**meeting, "type": "meeting.booked", "occurred_at": _at(e["CreatedDate"])})
        if datetime.fromisoformat(e["EndDateTime"]) <= NOW:
            out.append({**meeting, "type": "meeting.held", "occurred_at": _at(e["StartDateTime"])})
    return out


def json_lines() -> list[Event]:
    import orjson

    return [
        orjson.loads(line) for line in (SAMPLES / "events.jsonl").read_text().splitlines() if line.strip()
    ]


def channels(events: list[Event], frm: date, to: date) -> dict[str, dict[str, Any]]:
    """SPEC 5.5 over UTC days [frm, to]: leads, MQLs, SQLs by the lead's channel; deals by their own
    channel, else their contact's lead's; speed to lead: first call, email or meeting at or after."""

    def inside(e: Event) -> bool:
        return frm <= datetime.fromisoformat(e["occurred_at"]).date() <= to

    lead_channel: dict[str, str] = {
        e["contact_id"]: e.get("channel") or UNATTRIBUTED for e in events if e["type"] == "lead.created"
    }
    touches = defaultdict(list)
    for e in events:
        if e["type"] in ("call.completed", "email.sent", "meeting.booked") and e.get("contact_id"):
            touches[e["contact_id"]].append(datetime.fromisoformat(e["occurred_at"]))
    out: dict[str, dict[str, Any]] = defaultdict(lambda: defaultdict(int))
    speeds: dict[str, list[float]] = defaultdict(list)
    for e in filter(inside, events):
        t = e["type"]
        if t == "lead.created":
            out[e["channel"]]["leads"] += 1
            created = datetime.fromisoformat(e["occurred_at"])
            after = [x for x in touches[e["contact_id"]] if x >= created]
            if after:
                speeds[e["channel"]].append((min(after) - created).total_seconds())
        elif t == "lead.qualified":
            out[lead_channel[e["contact_id"]]][f"{e['stage']}s"] += 1
        elif t in ("deal.created", "deal.won"):
            channel = e.get("channel") or lead_channel.get(e.get("contact_id") or "", UNATTRIBUTED)
            out[channel]["deals_created" if t == "deal.created" else "deals_won"] += 1
            if t == "deal.won":
                out[channel]["revenue_won"] += float(e["amount"])
    for channel, values in speeds.items():
        out[channel]["speed_to_lead_median_s"] = statistics.median(values)
    return {k: dict(v) for k, v in out.items()}
