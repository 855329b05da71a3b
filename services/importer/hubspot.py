"""HubSpot's CSV exports of contacts and deals (Contacts / Deals > Export), as HubSpot writes them.

Columns are the property labels of an export in English ("Record ID", "Create Date", "Deal Stage")
or, exported with internal names (the exports API's `exportInternalValuesOptions: NAMES`), the
property names ("hs_object_id", "createdate", "dealstage"). Older exports call the id "Contact ID" or
"Deal ID". Values are labels by default: owners by name ("Deal owner: Jane Doe"), stages and sources
by label ("Closed Won", "Organic Search"); with internal values, owner ids and stage ids.

Contacts -> `lead.created` at "Create Date" with the channel of "Original Source" (HubSpot's
`hs_analytics_source`, mapped as the webhook adapter maps it), `lead.qualified` mql / sql at
"Became a Marketing Qualified Lead Date" / "Became a Sales Qualified Lead Date".
Deals -> `deal.created` at "Create Date", then `deal.won` / `deal.lost` at "Close Date" when "Is
Closed Won" / "Is Deal Closed?" say so, or else when "Deal Stage" is one of the tenant's won / lost
stages (default `closedwon` / `closedlost`; a label matches a stage id ignoring case and spacing).
The deal's contact is the first of "Associated Contact IDs" (exported with associations), so its
revenue takes that contact's lead channel. Amounts in another currency than the tenant's stay in
the attributes only.

Event ids are the record and the fact, as the webhook adapter names the same facts
(services.core.crm_values.hubspot_fact_id): `hubspot:contact:{id}:lead.created`,
`hubspot:contact:{id}:lead.qualified:mql`, `hubspot:deal:{id}:deal.won`, ...
"""

from __future__ import annotations

from services.core.crm_values import HUBSPOT_SOURCES, channel_for, forecast_category, hubspot_fact_id
from services.core.events import Channel, EventType, Source
from services.importer.model import Column, Context, Draft, Kind, Row, Skip, draft, stage_key

# Export labels of `hs_analytics_source` whose internal value is not the label in snake case.
_SOURCE_LABELS = {"offline_sources": "offline", "direct": "direct_traffic", "referral": "referrals"}

_ID = Column("id", ("Record ID", "hs_object_id", "Contact ID", "Deal ID", "vid", "dealId"), required=True)
_CREATED = Column("created", ("Create Date", "createdate"), required=True)
_COMPANY = Column("company", ("Associated Company IDs", "Associated Company ID", "associatedcompanyid"))

CONTACT_COLUMNS = (
    _ID,
    _CREATED,
    Column("owner", ("Contact owner", "hubspot_owner_id")),
    Column("source", ("Original Source", "Original Traffic Source", "hs_analytics_source")),
    Column(
        "mql", ("Became a Marketing Qualified Lead Date", "hs_lifecyclestage_marketingqualifiedlead_date")
    ),
    Column("sql", ("Became a Sales Qualified Lead Date", "hs_lifecyclestage_salesqualifiedlead_date")),
    Column("lifecycle", ("Lifecycle Stage", "lifecyclestage")),
    Column("email", ("Email", "email")),
    _COMPANY,
)
DEAL_COLUMNS = (
    _ID,
    _CREATED,
    Column("stage", ("Deal Stage", "dealstage"), required=True),
    Column("owner", ("Deal owner", "hubspot_owner_id")),
    Column("amount", ("Amount", "amount")),
    Column("currency", ("Currency", "deal_currency_code")),
    Column("close", ("Close Date", "closedate")),
    Column("contacts", ("Associated Contact IDs", "Associated Contact ID")),
    Column("won", ("Is Closed Won", "hs_is_closed_won")),
    Column("closed", ("Is Deal Closed?", "Is Closed", "hs_is_closed")),
    Column("forecast", ("Forecast category", "hs_forecast_category")),
    _COMPANY,
)


def map_contact(row: Row, ctx: Context) -> list[Draft]:
    contact = row.need("id")
    created = row.need_time("created")
    rep = ctx.owners.resolve(row.get("owner"), "hubspot_owner_id", (row.get("owner") or "").isdigit())
    channel = _channel(row.get("source"), ctx)
    account = _first_id(row.get("company"))
    columns = {"occurred_at": row.column("created"), "channel": row.column("source")}
    out = [
        draft(Source.HUBSPOT, hubspot_fact_id("contact", contact, "lead.created"), EventType.LEAD_CREATED,
              created, rep,
              fact=("lead", contact, "lead.created"), columns=columns,
              contact_id=contact, account_id=account, channel=channel),
    ]  # fmt: skip
    for stage in ("mql", "sql"):
        at = row.time(stage)
        if at is not None:
            out.append(
                draft(Source.HUBSPOT, hubspot_fact_id("contact", contact, f"lead.qualified:{stage}"),
                      EventType.LEAD_QUALIFIED, at, rep,
                      fact=("lead", contact, stage), columns={"occurred_at": row.column(stage)},
                      contact_id=contact, account_id=account, channel=channel, stage=stage)
            )  # fmt: skip
    return out


def map_deal(row: Row, ctx: Context) -> list[Draft]:
    deal = row.need("id")
    created = row.need_time("created")
    stage = row.need("stage")[:100]
    owner = row.get("owner")
    rep = ctx.owners.resolve(owner, "hubspot_owner_id", (owner or "").isdigit())
    amount, attributes = row.amount("amount"), None
    currency = row.get("currency")
    if amount is not None and currency is not None and currency.upper() != ctx.currency:
        attributes = {"amount_original": str(amount), "currency_original": currency}
        amount = None
    fields = {
        "deal_id": deal,
        "contact_id": _first_id(row.get("contacts")),
        "account_id": _first_id(row.get("company")),
        "amount": amount,
        "currency": ctx.currency if amount is not None else None,
        "close_date": row.date("close"),
        "forecast_category": forecast_category(row.get("forecast") or ""),
        "attributes": attributes,
    }
    columns = {"amount": row.column("amount"), "close_date": row.column("close")}
    out = [
        draft(Source.HUBSPOT, hubspot_fact_id("deal", deal, "deal.created"), EventType.DEAL_CREATED,
              created, rep,
              fact=("deal", deal, EventType.DEAL_CREATED),
              columns={**columns, "occurred_at": row.column("created")}, stage=stage, **fields)
    ]  # fmt: skip
    outcome = _outcome(row, stage, ctx)
    if outcome is not None:
        closed_at = row.time("close")
        if closed_at is None:
            raise Skip(row.column("close"), f"is empty, and a {outcome} deal needs the date it closed")
        out.append(
            draft(Source.HUBSPOT, hubspot_fact_id("deal", deal, outcome.value), outcome, closed_at, rep,
                  fact=("deal", deal, outcome), columns={**columns, "occurred_at": row.column("close")},
                  stage=stage, **fields)
        )  # fmt: skip
    return out


def _outcome(row: Row, stage: str, ctx: Context) -> EventType | None:
    won, closed = row.flag("won"), row.flag("closed")
    if won is None and closed is None:
        key = stage_key(stage)
        won = key in ctx.terms.won_stages
        closed = won or key in ctx.terms.lost_stages
    if won:
        return EventType.DEAL_WON
    if closed:
        return EventType.DEAL_LOST
    return None


def _channel(value: str | None, ctx: Context) -> Channel | None:
    if value is None:
        return None
    key = "_".join(value.strip().lower().split())
    overrides = ctx.terms.hubspot_channels
    if any(k.strip().lower() == value.strip().lower() for k in overrides):
        return channel_for(value, HUBSPOT_SOURCES, overrides)
    return channel_for(_SOURCE_LABELS.get(key, key), HUBSPOT_SOURCES, overrides)


def _first_id(value: str | None) -> str | None:
    """HubSpot separates several associated ids with `;`."""
    if value is None:
        return None
    first = value.replace(",", ";").split(";")[0].strip()
    return first or None


CONTACTS = Kind(
    "hubspot-contacts",
    "HubSpot contacts export",
    CONTACT_COLUMNS,
    map_contact,
    marks=("owner", "source", "mql", "sql", "lifecycle", "email"),
)
DEALS = Kind("hubspot-deals", "HubSpot deals export", DEAL_COLUMNS, map_deal)
