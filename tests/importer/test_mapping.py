"""Each export's rows -> BuyerEvents, against the sample files: ids, types, times, reps, channels, amounts."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.core.crm_values import salesforce_long_id
from services.importer.csvfile import FileRefused
from services.importer.model import Terms
from services.importer.salesforce import stage_fingerprint
from services.ingest.sources import salesforce as live_salesforce
from services.ingest.sources.common import MappingContext
from services.ingest.sources.kit import fingerprint
from services.ingest.sources.outbound_message import parse as parse_envelope
from tests.importer.support import (
    DANA_SF,
    NOBODY_SF,
    NOW,
    SAMPLES,
    as_json,
    bodies,
    context,
    drafts,
    map_files,
    skips,
)
from tests.system.test_vendors import sf_envelope


def test_hubspot_contacts_become_leads_with_their_source_channel_and_lifecycle_dates() -> None:
    ctx = context("Europe/Berlin")
    rows = map_files("hubspot", "hubspot-contacts.csv", ctx=ctx)["hubspot-contacts.csv"]
    got = bodies(rows)
    assert not skips(rows)
    ava = got["hubspot:contact:51301:lead.created"]
    # "2026-09-01 09:12" in the exporting account's timezone
    assert ava["occurred_at"] == "2026-09-01T09:12:00+02:00"
    assert (ava["type"], ava["contact_id"], ava["account_id"], ava["rep_id"]) == (
        "lead.created", "51301", "9001", "r-dana"
    )  # fmt: skip
    assert got["hubspot:contact:51301:lead.qualified:mql"]["stage"] == "mql"
    assert got["hubspot:contact:51301:lead.qualified:sql"]["occurred_at"] == "2026-09-08T10:05:00+02:00"
    channels = {b["contact_id"]: b["channel"] for b in got.values() if b["type"] == "lead.created"}
    assert channels == {
        "51301": "organic_search",
        "51302": "paid_search",
        "51303": "organic_search",
        "51304": "organic_social",  # Social Media
        "51305": "referral",  # Referrals
        "51306": "outbound",  # Offline Sources, as the webhook adapter maps `offline`
        "51307": "direct",  # Direct Traffic
        "51308": "email_marketing",
    }
    qualified = sorted(k for k, b in got.items() if b["type"] == "lead.qualified")
    assert len(qualified) == 9  # five MQL dates, four SQL dates
    assert "rep_id" not in got["hubspot:contact:51305:lead.created"]  # Sam Porter: in no rep map
    assert "rep_id" not in got["hubspot:contact:51307:lead.created"]  # no owner
    assert ctx.owners.unresolved == {"Sam Porter": 1}


def test_hubspot_deals_are_created_then_won_or_lost_at_their_close_date() -> None:
    rows = map_files("hubspot", "hubspot-deals.csv")["hubspot-deals.csv"]
    got = bodies(rows)
    assert sorted(got) == [
        "hubspot:deal:7001:deal.created", "hubspot:deal:7001:deal.won",
        "hubspot:deal:7002:deal.created", "hubspot:deal:7002:deal.lost",
        "hubspot:deal:7003:deal.created", "hubspot:deal:7003:deal.won",
        "hubspot:deal:7004:deal.created",
        "hubspot:deal:7005:deal.created", "hubspot:deal:7005:deal.won",
    ]  # fmt: skip
    won = got["hubspot:deal:7001:deal.won"]
    assert won["occurred_at"] == "2026-09-30T12:00:00+00:00"  # a date: noon in the tenant's timezone
    assert (won["amount"], won["currency"], won["rep_id"], won["contact_id"], won["stage"]) == (
        "24000", "USD", "r-dana", "51301", "Closed Won"
    )  # fmt: skip
    assert got["hubspot:deal:7003:deal.won"]["amount"] == "12500.50"
    assert got["hubspot:deal:7005:deal.won"]["contact_id"] == "51303"  # the first associated contact
    assert got["hubspot:deal:7004:deal.created"]["close_date"] == "2026-12-15"


def test_hubspot_won_stages_follow_the_tenant_options_by_label_or_id() -> None:
    terms = Terms(won_stages=frozenset({"closedwon", "contractsent"}))
    got = bodies(
        map_files("hubspot-deals", "hubspot-deals.csv", ctx=context(terms=terms))["hubspot-deals.csv"]
    )
    assert "hubspot:deal:7004:deal.won" in got


def test_hubspot_internal_values_export_names_owners_by_id(tmp_path: Path) -> None:
    path = tmp_path / "deals.csv"
    path.write_text(
        "hs_object_id,dealname,dealstage,amount,closedate,createdate,hubspot_owner_id,hs_is_closed_won,hs_is_closed\n"
        "9001,Acme,appointmentscheduled,1000,2026-10-01T00:00:00Z,2026-09-01T08:00:00.000Z,58210455,true,true\n"
        "9002,Beta,closedwon,2000,2026-10-02T00:00:00Z,2026-09-02T08:00:00.000Z,58210477,false,true\n"
    )
    ctx = context(aliases={("hubspot_owner_id", "58210455"): "r-dana"})
    got = drafts(map_files("hubspot", path, ctx=ctx)["deals.csv"])
    # The "Is Closed Won" / "Is Deal Closed?" flags decide, whatever the stage is called.
    assert "hubspot:deal:9001:deal.won" in got
    assert "hubspot:deal:9002:deal.lost" in got
    alias = got["hubspot:deal:9001:deal.won"].rep_alias
    assert alias is not None
    assert (alias.kind, alias.value) == ("hubspot_owner_id", "58210455")
    assert as_json(got["hubspot:deal:9001:deal.created"])["occurred_at"] == "2026-09-01T08:00:00+00:00"
    assert ctx.owners.unresolved == {"58210477": 1}  # rows naming an owner id no rep has as alias yet


def _live_ids(name: str, sobject: str) -> dict[str, tuple[str, str | None]]:
    """What the Outbound Message adapter makes of the same records: event id -> (type, owner alias)."""
    with (SAMPLES / name).open(newline="") as f:
        records = [{k: v for k, v in row.items() if v} for row in csv.DictReader(f)]
    body = sf_envelope(*((f"04l{i:015d}", sobject, r) for i, r in enumerate(records)))
    out = live_salesforce.to_events(parse_envelope(body), MappingContext("USD", NOW))
    return {
        v.event.event_id: (v.event.type.value, v.rep_alias.value if v.rep_alias else None) for v in out.events
    }


@pytest.mark.parametrize(
    ("name", "sobject"),
    [
        ("sf-opportunity.csv", "Opportunity"),
        ("sf-lead.csv", "Lead"),
        ("sf-task.csv", "Task"),
        ("sf-event.csv", "Event"),
    ],
)
def test_salesforce_records_get_the_ids_the_webhook_adapter_gives_the_same_facts(
    name: str, sobject: str
) -> None:
    """So a fact imported and then received by Outbound Message (or the other way round) is one event."""
    rows = map_files("salesforce", "sf-opportunity-history.csv", name)
    imported = {**drafts(rows["sf-opportunity-history.csv"]), **drafts(rows[name])}
    live = _live_ids(name, sobject)
    assert live
    for event_id, (type_, alias) in live.items():
        assert event_id in imported, event_id
        d = imported[event_id]
        assert (d.body["type"], d.rep_alias.value if d.rep_alias else None) == (type_, alias)


def test_salesforce_opportunities_close_when_their_history_says() -> None:
    rows = map_files("salesforce", "sf-opportunity-history.csv", "sf-opportunity.csv")
    opportunities, history = bodies(rows["sf-opportunity.csv"]), bodies(rows["sf-opportunity-history.csv"])
    won = opportunities["salesforce:0065e00000GqA1bAAF:deal.won"]
    assert won["occurred_at"] == "2026-10-14T18:45:00+00:00"  # entered Closed Won, not the Close Date
    assert (won["amount"], won["channel"]) == ("42000.0", "partner")  # Partner Referral
    no_history = opportunities["salesforce:0065e00000GqA1eAAF:deal.won"]
    assert no_history["occurred_at"] == "2026-11-05T12:00:00+00:00"  # its Close Date
    assert sorted(history) == [
        "salesforce:0065e00000GqA1bAAF:stage:Negotiation/Review",
        "salesforce:0065e00000GqA1bAAF:stage:Proposal/Price Quote",
        "salesforce:0065e00000GqA1bAAF:stage:Prospecting",
        "salesforce:0065e00000GqA1cAAF:stage:Prospecting",
        "salesforce:0065e00000GqA1dAAF:stage:Negotiation/Review",
    ]
    assert (
        history["salesforce:0065e00000GqA1bAAF:stage:Prospecting"]["occurred_at"]
        == "2026-09-12T16:05:00+00:00"
    )
    # the open deal's stage comes from its history, not again from its own row
    assert "salesforce:0065e00000GqA1dAAF:stage:Negotiation/Review" not in opportunities


def test_a_salesforce_report_export_maps_to_the_data_loader_ids() -> None:
    ctx = context()
    rows = map_files("salesforce", "sf-report-opportunities.csv", ctx=ctx)["sf-report-opportunities.csv"]
    assert len(rows) == 3  # the report's footer is no record
    got = bodies(rows)
    loader = bodies(map_files("salesforce", "sf-opportunity.csv")["sf-opportunity.csv"])
    assert set(got) <= set(loader)  # 15-character ids in their 18-character form
    created = got["salesforce:0065e00000GqA1bAAF:deal.created"]
    assert (created["occurred_at"], created["amount"], created["rep_id"]) == (
        "2026-09-12T12:00:00+00:00", "42000.00", "r-dana"
    )  # fmt: skip
    assert got["salesforce:0065e00000GqA1bAAF:deal.won"]["occurred_at"] == "2026-10-15T12:00:00+00:00"


def test_salesforce_leads_qualify_by_status_or_conversion() -> None:
    ctx = context(aliases={("salesforce_user_id", DANA_SF): "r-dana"})
    rows = map_files("salesforce-leads", "sf-lead.csv", ctx=ctx)["sf-lead.csv"]
    got = drafts(rows)
    mql = as_json(got["salesforce:00Q5e00000MnB2yEAF:lead.qualified:mql"])
    assert mql["occurred_at"] == "2026-09-06T09:00:00+00:00"
    sql = as_json(got["salesforce:00Q5e00000MnB2zEAF:lead.qualified:sql"])
    assert (sql["occurred_at"], sql["channel"]) == ("2026-09-12T12:00:00+00:00", "partner")  # ConvertedDate
    assert got["salesforce:00Q5e00000MnB3aEAF:lead.created"].rep_alias is None  # a queue (00G) is no rep
    assert got["salesforce:00Q5e00000MnB3aEAF:lead.created"].body["channel"] == "outbound"  # Purchased List
    assert ctx.owners.resolved["alias"] == 2


def test_salesforce_tasks_are_calls_emails_and_meetings_once_completed() -> None:
    rows = map_files("salesforce", "sf-task.csv")["sf-task.csv"]
    got = bodies(rows)
    call = got["salesforce:00T5e00001Xy7QaEAJ:call.completed"]
    assert (call["direction"], call["outcome"], call["duration_s"], call["contact_id"]) == (
        "outbound", "connected", 420.0, "00Q5e00000MnB2xEAF"
    )  # fmt: skip
    assert got["salesforce:00T5e00001Xy7QbEAJ:call.completed"]["outcome"] == "voicemail"
    assert got["salesforce:00T5e00001Xy7QcEAJ:call.completed"]["outcome"] == "no_answer"
    assert got["salesforce:00T5e00001Xy7QeEAJ:call.completed"]["deal_id"] == "0065e00000GqA1bAAF"
    assert got["salesforce:00T5e00001Xy7QdEAJ:email.sent"]["direction"] == "outbound"
    skipped = skips(rows)
    assert list(skipped) == [7]
    assert (skipped[7].column, skipped[7].reason) == (
        "Status",
        "is 'Not Started': only completed tasks are activities",
    )


def test_salesforce_events_are_booked_and_held_once_over() -> None:
    got = bodies(map_files("salesforce", "sf-event.csv")["sf-event.csv"])
    assert sorted(got) == [
        "salesforce:00U5e00000Kp9ZaEAJ:meeting.booked",
        "salesforce:00U5e00000Kp9ZaEAJ:meeting.held",
        "salesforce:00U5e00000Kp9ZbEAJ:meeting.booked",  # the demo on 16 December has not happened
    ]
    held = got["salesforce:00U5e00000Kp9ZaEAJ:meeting.held"]
    assert (held["occurred_at"], held["duration_s"]) == ("2026-09-20T15:00:00+00:00", 2700.0)


def test_json_lines_pass_through_as_the_client_wrote_them() -> None:
    rows = map_files("jsonl", "events.jsonl")["events.jsonl"]
    got = drafts(rows)
    assert [n for n, _ in rows] == [1, 2, 4]  # line numbers; the blank line is no event
    assert got["call-eve-0917"].body["occurred_at"] == "2026-09-17T15:30:00+02:00"
    assert got["call-eve-0917"].source.value == "api"


def test_owner_ids_and_record_ids_of_reports_are_read_in_their_long_form() -> None:
    assert salesforce_long_id("0055e000003QwEt") == NOBODY_SF
    assert salesforce_long_id(NOBODY_SF) == NOBODY_SF
    assert salesforce_long_id("not-an-id") == "not-an-id"


def test_long_stage_names_get_the_webhook_adapters_id() -> None:
    stage = "Negotiation and review with procurement, legal and the security team"
    assert stage_fingerprint(stage) == fingerprint(stage)


@pytest.mark.parametrize(
    ("source", "name", "says"),
    [
        ("hubspot-deals", "hubspot-contacts.csv", "is not a HubSpot deals export: "
                                                  "a HubSpot deals export needs column 'Deal Stage'"),
        ("salesforce-tasks", "sf-lead.csv", "is not a Salesforce Task export"),
        ("salesforce", "hubspot-deals.csv", "a Salesforce Opportunity export needs "
                                            "column 'Id', column 'CreatedDate', column 'StageName'"),
        ("hubspot", "sf-task.csv", "HubSpot contacts export needs column 'Record ID', column 'Create Date'"),
        ("jsonl", "sf-task.csv", "is not JSON lines"),
    ],
)  # fmt: skip
def test_a_file_that_is_not_the_export_it_claims_to_be_is_refused_naming_its_columns(
    source: str, name: str, says: str
) -> None:
    with pytest.raises(FileRefused) as refused:
        map_files(source, name)
    assert refused.value.path.name == name
    assert says in refused.value.reason
    assert "Its header has" in refused.value.reason or source == "jsonl"


def test_times_are_aware_and_in_the_requested_zone() -> None:
    got = bodies(
        map_files("hubspot", "hubspot-deals.csv", ctx=context("America/New_York"))["hubspot-deals.csv"]
    )
    created = datetime.fromisoformat(got["hubspot:deal:7001:deal.created"]["occurred_at"])
    assert created.astimezone(UTC) == datetime(2026, 9, 8, 14, 30, tzinfo=UTC)


def test_forecast_categories_are_read_as_the_webhook_adapters_read_them(tmp_path: Path) -> None:
    """Each CRM's forecast category values and labels, Salesforce's "Most Likely" (best case: SPEC 5.8
    has no such category and a commit promises no more than the reps committed to) and HubSpot's
    export labels included."""
    sf = tmp_path / "opportunities.csv"
    sf_values = {"Pipeline": "pipeline", "Best Case": "best_case", "BestCase": "best_case",
                 "Most Likely": "best_case", "Commit": "commit", "Forecast": "commit", "Closed": "closed",
                 "Omitted": "omitted", "Upside": None}  # fmt: skip
    sf.write_text(
        "Id,StageName,CreatedDate,ForecastCategoryName\n"
        + "".join(f"006{i:015d},Prospecting,2026-09-01T08:00:00.000Z,{v}\n" for i, v in enumerate(sf_values))
    )
    got = bodies(map_files("salesforce", sf)["opportunities.csv"])
    for i, expected in enumerate(sf_values.values()):
        deal = salesforce_long_id(f"006{i:015d}")
        assert got[f"salesforce:{deal}:deal.created"].get("forecast_category") == expected
    hs = tmp_path / "deals.csv"
    hs_values = {"Not forecasted": "omitted", "OMIT": "omitted", "Pipeline": "pipeline",
                 "BEST_CASE": "best_case", "Commit": "commit", "Closed won": "closed", "CLOSED": "closed",
                 "": None}  # fmt: skip
    hs.write_text(
        "Record ID,Deal Stage,Create Date,Forecast category\n"
        + "".join(f"{9100 + i},appointmentscheduled,2026-09-01 08:00,{v}\n" for i, v in enumerate(hs_values))
    )
    deals = bodies(map_files("hubspot", hs)["deals.csv"])
    for i, expected in enumerate(hs_values.values()):
        assert deals[f"hubspot:deal:{9100 + i}:deal.created"].get("forecast_category") == expected
