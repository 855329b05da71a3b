"""What CRM field values mean here: a lead's source as a SPEC channel, a call's result as an outcome,
a deal's forecast category as a SPEC category.

The live adapters (services/ingest/sources) and the history import (services/importer) both read
these, so a record means the same whether it arrives by webhook or from an export.
"""

from __future__ import annotations

from collections.abc import Mapping

from services.core.events import Channel, ForecastCategory, Outcome

# HubSpot `hs_analytics_source` ("Original Traffic Source") values. OFFLINE covers contacts created by
# hand, by import or by integrations: for a sales team that is mostly prospecting, hence `outbound`;
# a tenant whose offline contacts come from elsewhere overrides it (the `channel_overrides` option).
HUBSPOT_SOURCES: Mapping[str, Channel] = {
    "organic_search": Channel.ORGANIC_SEARCH,
    "paid_search": Channel.PAID_SEARCH,
    "paid_social": Channel.PAID_SOCIAL,
    "social_media": Channel.ORGANIC_SOCIAL,
    "email_marketing": Channel.EMAIL_MARKETING,
    "referrals": Channel.REFERRAL,
    "ai_referrals": Channel.REFERRAL,
    "direct_traffic": Channel.DIRECT,
    "offline": Channel.OUTBOUND,
    "other_campaigns": Channel.OTHER,
}

# The standard Salesforce Lead Source picklist; values that are SPEC channel names map to themselves.
SALESFORCE_LEAD_SOURCES: Mapping[str, Channel] = {
    "web": Channel.DIRECT,
    "phone inquiry": Channel.DIRECT,
    "partner referral": Channel.PARTNER,
    "partner": Channel.PARTNER,
    "purchased list": Channel.OUTBOUND,
    "employee referral": Channel.REFERRAL,
    "external referral": Channel.REFERRAL,
    "word of mouth": Channel.REFERRAL,
    "trade show": Channel.EVENTS,
    "seminar - internal": Channel.EVENTS,
    "seminar - partner": Channel.EVENTS,
    "webinar": Channel.EVENTS,
    "advertisement": Channel.OTHER,
    "public relations": Channel.OTHER,
}

# Salesforce's Call Result (CallDisposition) is free text; these phrases decide the outcome, in order.
CALL_RESULTS: tuple[tuple[tuple[str, ...], Outcome], ...] = (
    (("voicemail", "voice mail", "left message", "left vm"), "voicemail"),
    (("no answer", "no-answer", "not answered", "unanswered"), "no_answer"),
    (("busy",), "busy"),
    (("wrong number", "bad number", "invalid number", "failed"), "failed"),
    (("connected", "answered", "spoke", "conversation", "reached"), "connected"),
)

# Forecast categories, keyed by the value lower-cased without spaces, underscores or hyphens: HubSpot's
# internal values (OMIT, PIPELINE, BEST_CASE, COMMIT, CLOSED) and the labels its exports show (Not
# forecasted, Closed won), Salesforce's ForecastCategoryName (Omitted, Pipeline, Best Case, Most Likely,
# Commit, Closed) and its ForecastCategory API names (BestCase, MostLikely, Forecast).
# "Most likely" lies between best case and commit; SPEC 5.8 has no such category, and a commit number
# should promise no more than the reps committed to, so it counts as best case.
FORECAST_CATEGORIES: Mapping[str, ForecastCategory] = {
    "pipeline": "pipeline",
    "bestcase": "best_case",
    "mostlikely": "best_case",
    "commit": "commit",
    "forecast": "commit",
    "closed": "closed",
    "closedwon": "closed",
    "omitted": "omitted",
    "omit": "omitted",
    "notforecasted": "omitted",
}

_CHANNELS = frozenset(c.value for c in Channel)


def channel_for(
    value: str | None, table: Mapping[str, Channel], overrides: Mapping[str, Channel]
) -> Channel | None:
    """Map a lead-source value onto a SPEC channel: the tenant's overrides (keys compared
    case-insensitively), then `table`, then a value that is a channel's name, then `other`."""
    if value is None:
        return None
    key = value.strip().lower()
    for name, channel in overrides.items():
        if name.strip().lower() == key:
            return channel
    if key in table:
        return table[key]
    as_channel = key.replace(" ", "_").replace("-", "_")
    return Channel(as_channel) if as_channel in _CHANNELS else Channel.OTHER


def call_outcome(result: str | None) -> Outcome | None:
    """The outcome a Salesforce Call Result names, or None when it names none."""
    lowered = (result or "").lower()
    for needles, outcome in CALL_RESULTS:
        if any(needle in lowered for needle in needles):
            return outcome
    return None


def forecast_category(value: str) -> ForecastCategory | None:
    """The SPEC forecast category a CRM's value names (FORECAST_CATEGORIES), or None when it names none."""
    key = "".join(c for c in value.lower() if c not in " _-")
    return FORECAST_CATEGORIES.get(key)


def hubspot_fact_id(record: str, record_id: str, fact: str) -> str:
    """The event id of a fact a HubSpot record has once: its creation, win or loss, or qualification
    (`hubspot:deal:7001:deal.won`, `hubspot:contact:51301:lead.qualified:mql`). The webhook adapter and
    the history import both name these facts so, so each counts once whichever path delivers it first:
    a notification's own id is in no export."""
    return f"hubspot:{record}:{record_id}:{fact}"


_ID_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def salesforce_long_id(record_id: str) -> str:
    """A Salesforce id in its 18-character form, the one the API and Outbound Messages send.

    Reports and Setup show 15 case-sensitive characters; the 18-character form appends a checksum
    of their case (one character per five: bit i set when character i is an upper-case letter).
    Anything else is returned as it is."""
    if len(record_id) != 15 or not record_id.isalnum() or not record_id.isascii():
        return record_id
    suffix = ""
    for start in (0, 5, 10):
        chunk = record_id[start : start + 5]
        suffix += _ID_SUFFIX[sum(1 << i for i, c in enumerate(chunk) if "A" <= c <= "Z")]
    return record_id + suffix
