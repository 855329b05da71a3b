"""Salesforce exports of Opportunity (with its OpportunityHistory) and Lead: Data Loader / Bulk API CSV
with the API field names (`Id`, `StageName`, `CloseDate`, `OwnerId`, `IsWon`, ...) or a report's CSV
export with the field labels ("Opportunity ID", "Stage", "Close Date", "Opportunity Owner", "Won").

The events and their ids are the Outbound Message adapter's (services/ingest/sources/salesforce.py):
`salesforce:{record id}:{fact}`, with ids in their 18-character form (reports write 15 characters),
so a fact imported and the same fact received by webhook are one event, whichever comes first.

- Opportunity -> `deal.created` at CreatedDate; `deal.won` / `deal.lost` (IsWon / IsClosed, else the
  standard "Closed Won" / "Closed Lost") at the time its history shows it entering that stage, else
  at CloseDate, else LastModifiedDate; an open one `deal.stage_changed` for its stage.
- OpportunityHistory (OpportunityId, StageName, CreatedDate) -> `deal.stage_changed` the first time
  each open stage was entered (`salesforce:{opportunity}:stage:{stage}`); its closing rows date the
  win or loss.
- Lead -> `lead.created` at CreatedDate with the channel of LeadSource; `lead.qualified` mql / sql by
  Status (the tenant's `mql_statuses` / `sql_statuses`) or sql once IsConverted (at ConvertedDate).
Owners: `OwnerId` (005..., a user) is the `salesforce_user_id` alias; a report's owner name goes
through `--rep-map`. Amounts in another currency than the tenant's stay in the attributes only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson

from services.core.crm_values import (
    SALESFORCE_LEAD_SOURCES,
    channel_for,
    forecast_category,
    salesforce_long_id,
)
from services.core.events import EventType, Source
from services.importer.model import Column, Context, Draft, Kind, Rep, Row, Skip, draft

_MAX_STAGE = 100
_STAGE_ID = 60  # longer stage names are hashed into the id, as the webhook adapter does
_OWNER_ID = Column("owner_id", ("OwnerId", "Owner ID"))
_MODIFIED = Column("modified", ("LastModifiedDate", "Last Modified Date"))
_CREATED = Column("created", ("CreatedDate", "Created Date"), required=True)

OPPORTUNITY_COLUMNS = (
    Column("id", ("Id", "Opportunity ID"), required=True),
    _CREATED,
    Column("stage", ("StageName", "Stage"), required=True),
    _OWNER_ID,
    Column("owner", ("Opportunity Owner", "Owner Name", "Owner")),
    Column("amount", ("Amount",)),
    Column("currency", ("CurrencyIsoCode", "Opportunity Currency", "Amount Currency")),
    Column("close", ("CloseDate", "Close Date")),
    Column("won", ("IsWon", "Won")),
    Column("closed", ("IsClosed", "Closed")),
    Column("source", ("LeadSource", "Lead Source")),
    Column("account", ("AccountId", "Account ID")),
    Column("contact", ("ContactId", "Contact ID")),
    Column("forecast", ("ForecastCategoryName", "Forecast Category")),
    _MODIFIED,
)
HISTORY_COLUMNS = (
    Column("opportunity", ("OpportunityId", "Opportunity ID"), required=True),
    Column("stage", ("StageName", "Stage Name", "To Stage"), required=True),
    Column("at", ("CreatedDate", "Created Date", "Edit Date", "Last Modified"), required=True),
    Column("history_id", ("Opportunity History ID", "From Stage")),
)
LEAD_COLUMNS = (
    Column("id", ("Id", "Lead ID"), required=True),
    _CREATED,
    _OWNER_ID,
    Column("owner", ("Lead Owner", "Owner Name", "Owner")),
    Column("source", ("LeadSource", "Lead Source")),
    Column("status", ("Status", "Lead Status")),
    Column("converted", ("IsConverted", "Converted")),
    Column("converted_at", ("ConvertedDate", "Converted Date")),
    _MODIFIED,
)


def owner_of(row: Row, ctx: Context) -> Rep:
    """The row's owner: its user id when the file has one, else its owner's name."""
    owner_id = row.get("owner_id")
    if owner_id is not None:
        user = salesforce_long_id(owner_id)
        # 005 is the User key prefix; an owner may also be a queue (00G), which is no rep.
        return ctx.owners.resolve(user, "salesforce_user_id", True) if user[:3] == "005" else (None, None)
    return ctx.owners.resolve(row.get("owner"), "salesforce_user_id", False)


def record_id(row: Row, key: str) -> str:
    return salesforce_long_id(row.need(key))


def map_opportunity(row: Row, ctx: Context) -> list[Draft]:
    deal = record_id(row, "id")
    created = row.need_time("created")
    stage = row.need("stage")[:_MAX_STAGE]
    won, closed = row.flag("won"), row.flag("closed")
    if won is None and closed is None:
        won, closed = stage.lower() == "closed won", stage.lower() in ("closed won", "closed lost")
    rep = ctx.deal_owners.get(deal) or owner_of(row, ctx)
    fields = _deal_fields(row, ctx, deal)
    out = [
        draft(Source.SALESFORCE, f"salesforce:{deal}:deal.created", EventType.DEAL_CREATED, created, rep,
              fact=("deal", deal, EventType.DEAL_CREATED), columns=_columns(row, "created"), **fields)
    ]  # fmt: skip
    if won or closed:
        type_ = EventType.DEAL_WON if won else EventType.DEAL_LOST
        at, key = _closed_at(row, ctx, deal, stage)
        out.append(
            draft(Source.SALESFORCE, f"salesforce:{deal}:{type_}", type_, at, rep,
                  fact=("deal", deal, type_), columns=_columns(row, key), stage=stage, **fields)
        )  # fmt: skip
    elif not any(s.lower() == stage.lower() for _, s in ctx.history.get(deal, ())):
        at = row.time("modified") or created
        out.append(_stage_event(deal, stage, at, rep, fields, _columns(row, "modified")))
    return out


def map_history(row: Row, ctx: Context) -> list[Draft]:
    """The first entry into each open stage; later entries and closing stages add no event."""
    deal = record_id(row, "opportunity")
    stage = row.need("stage")[:_MAX_STAGE]
    at = row.need_time("at")
    entries = ctx.history.get(deal, [])
    if _closing(stage) or any(t < at and s.lower() == stage.lower() for t, s in entries):
        return []
    rep = ctx.deal_owners.get(deal, (None, None))
    return [_stage_event(deal, stage, at, rep, {"deal_id": deal}, row.columns(("occurred_at", "at")))]


def map_lead(row: Row, ctx: Context) -> list[Draft]:
    lead = record_id(row, "id")
    created = row.need_time("created")
    rep = owner_of(row, ctx)
    channel = channel_for(row.get("source"), SALESFORCE_LEAD_SOURCES, ctx.terms.salesforce_channels)
    common: dict[str, Any] = {"contact_id": lead, "channel": channel}
    out = [
        draft(Source.SALESFORCE, f"salesforce:{lead}:lead.created", EventType.LEAD_CREATED, created, rep,
              fact=("lead", lead, "lead.created"), columns=_columns(row, "created"), **common)
    ]  # fmt: skip
    status = (row.get("status") or "").lower()
    converted = bool(row.flag("converted"))
    modified = row.time("modified") or created
    stages = []
    if status in ctx.terms.mql_statuses:
        stages.append(("mql", modified, "modified"))
    if status in ctx.terms.sql_statuses or converted:
        at = (row.time("converted_at") if converted else None) or modified
        stages.append(("sql", at, "converted_at" if converted and row.get("converted_at") else "modified"))
    for stage, at, key in stages:
        out.append(
            draft(Source.SALESFORCE, f"salesforce:{lead}:lead.qualified:{stage}", EventType.LEAD_QUALIFIED,
                  at, rep, fact=("lead", lead, stage), columns=_columns(row, key), stage=stage, **common)
        )  # fmt: skip
    return out


def index_opportunity(row: Row, ctx: Context) -> None:
    """Before the rows are mapped: each opportunity's owner, for its history rows."""
    deal = row.get("id")
    if deal is not None:
        ctx.deal_owners[salesforce_long_id(deal)] = owner_of(row, ctx)


def index_history(row: Row, ctx: Context) -> None:
    """Before the rows are mapped: each opportunity's stages and when it entered them."""
    deal, stage = row.get("opportunity"), row.get("stage")
    try:
        at = row.time("at")
    except Skip:
        return  # reported when the row itself is mapped
    if deal is not None and stage is not None and at is not None:
        ctx.history.setdefault(salesforce_long_id(deal), []).append((at, stage[:_MAX_STAGE]))


def _deal_fields(row: Row, ctx: Context, deal: str) -> dict[str, Any]:
    amount, attributes = row.amount("amount"), None
    currency = row.get("currency")
    if amount is not None and currency is not None and currency.upper() != ctx.currency:
        attributes = {"amount_original": str(amount), "currency_original": currency}
        amount = None
    account, contact = row.get("account"), row.get("contact")
    return {
        "deal_id": deal,
        "account_id": salesforce_long_id(account) if account else None,
        "contact_id": salesforce_long_id(contact) if contact else None,
        "channel": channel_for(row.get("source"), SALESFORCE_LEAD_SOURCES, ctx.terms.salesforce_channels),
        "amount": amount,
        "currency": ctx.currency if amount is not None else None,
        "close_date": row.date("close"),
        "forecast_category": forecast_category(row.get("forecast") or ""),
        "attributes": attributes,
    }


def _closed_at(row: Row, ctx: Context, deal: str, stage: str) -> tuple[datetime, str]:
    entered = [t for t, s in ctx.history.get(deal, ()) if s.lower() == stage.lower()]
    if entered:
        return max(entered), "stage"
    for key in ("close", "modified"):
        at = row.time(key)
        if at is not None:
            return at, key
    raise Skip(row.column("close"), "is empty, and a closed opportunity needs the date it closed")


def _stage_event(
    deal: str, stage: str, at: datetime, rep: Rep, fields: dict[str, Any], columns: Mapping[str, str]
) -> Draft:
    fact = f"stage:{stage}" if len(stage) <= _STAGE_ID else f"stage:{stage_fingerprint(stage)}"
    return draft(Source.SALESFORCE, f"salesforce:{deal}:{fact}", EventType.DEAL_STAGE_CHANGED, at, rep,
                 columns=columns, stage=stage, **fields)  # fmt: skip


def stage_fingerprint(stage: str) -> str:
    """The id part of a long stage name: services/ingest/sources/kit.py `fingerprint(stage)`."""
    return hashlib.sha256(orjson.dumps((stage,), option=orjson.OPT_SORT_KEYS)).hexdigest()[:40]


def _closing(stage: str) -> bool:
    return stage.lower() in ("closed won", "closed lost")


def _columns(row: Row, time_key: str) -> Mapping[str, str]:
    if row.has("amount"):
        return row.columns(("amount", "amount"), ("close_date", "close"), ("occurred_at", time_key))
    return row.columns(("occurred_at", time_key))


OPPORTUNITIES = Kind(
    "salesforce-opportunities", "Salesforce Opportunity export", OPPORTUNITY_COLUMNS, map_opportunity
)
HISTORY = Kind(
    "salesforce-opportunity-history", "Salesforce OpportunityHistory export", HISTORY_COLUMNS, map_history
)
LEADS = Kind(
    "salesforce-leads",
    "Salesforce Lead export",
    LEAD_COLUMNS,
    map_lead,
    marks=("source", "status", "converted", "converted_at", "owner"),
)
