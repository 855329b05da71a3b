"""Unit economics over a window (SPEC 5.10), pure: what `GET /v1/economics/summary` answers and what
the fit check reads.

    economics_summary(
        groups: Mapping[str | None, Totals], *, days: int, gross_margin: float | None,
        marketing_spend: Mapping[str, float], sales_cost: float | None,
    ) -> Summary

`groups`: per first-touch channel (None: unknown, reported as `unattributed`), the totals of the
billing accounts with MRR or a movement in the window: their MRR at the window's start and end, the
sums of their movements in the window, and the customer counts (`group_accounts` adds them up from
one `AccountWindow` per account). services/api/kit/economics_reads.py reads them with the tenant's
spend, costs and settings, and gives the summary:

    async def economics_read(reads: Reads, tenant: str, *, spec: WindowSpec, now: datetime)
        -> EconomicsRead | None   # None: no such tenant; .summary, .start, .end, .as_of, .settings

`days`: the window's length (inclusive days); a month is 30.4375 days. `gross_margin`: the
tenant's setting (None: not set, so no LTV nor payback). `marketing_spend`: per channel, the spend
falling in the window (channels without recorded spend are absent). `sales_cost`: reps'
`monthly_cost` over the days each was employed in the window plus `sales_cost_monthly` over the
window's months; None when the tenant recorded none of them.

Definitions, for the whole tenant and for each first-touch channel (`Summary.overall`,
`Summary.channels`); every ratio with nothing to divide by is None:
- a customer is an account with MRR above 0; `customers_start`/`customers_end` at the window's
  start and end; `customers_new` accounts paying for the first time in the window,
  `customers_reactivated` paying again after a churn, `customers_churned` churns in the window (an
  account that churns twice counts twice), so customers_end = customers_start + customers_new +
  customers_reactivated - customers_churned;
- `new_mrr`, `reactivation_mrr`, `expansion_mrr`, `contraction_mrr`, `churned_mrr`: the movements'
  sums, so mrr_end = mrr_start + new + reactivation + expansion - contraction - churned;
- `logo_retention`: the customers at the start still customers at the end / customers_start;
  `net_revenue_retention`: those customers' MRR at the end / mrr_start; `gross_revenue_retention`:
  the same with each customer's end MRR capped at its start MRR (no expansion);
- `arpa` = mrr_end / customers_end; `monthly_churn` = customers_churned / customers_start / months;
  `ltv` = arpa x gross_margin / monthly_churn (None when no churn: an unbounded lifetime);
- `cac` = (marketing spend + sales cost) / customers_new. Per channel the marketing spend is the
  channel's own, and the sales cost is shared by every new customer alike (sales_cost /
  customers_new of the tenant), so the channels' acquisition costs add up to the tenant's. None
  when no cost is recorded for it;
- `cac_payback_months` = cac / (arpa x gross_margin); `ltv_to_cac` = ltv / cac.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from services.api.kit.sums import ratio

DAYS_PER_MONTH = 30.4375
UNATTRIBUTED = "unattributed"  # accounts whose first-touch channel is not known

Number = Decimal | float | int


@dataclass(frozen=True)
class AccountWindow:
    """One billing account over the window: its first-touch channel, its MRR at the start and the
    end, the sums of its movements in the window, and how many of them gained or lost it as a
    customer."""

    channel: str | None
    mrr_start: Number = 0
    mrr_end: Number = 0
    new: Number = 0
    reactivation: Number = 0
    expansion: Number = 0
    contraction: Number = 0
    churned: Number = 0
    customers_new: int = 0
    customers_reactivated: int = 0
    customers_churned: int = 0


@dataclass(frozen=True)
class Figures:
    """The summary of one group of accounts (SPEC 5.10 field names)."""

    mrr_start: float
    mrr_end: float
    new_mrr: float
    reactivation_mrr: float
    expansion_mrr: float
    contraction_mrr: float
    churned_mrr: float
    customers_start: int
    customers_end: int
    customers_new: int
    customers_reactivated: int
    customers_churned: int
    logo_retention: float | None
    net_revenue_retention: float | None
    gross_revenue_retention: float | None
    arpa: float | None
    monthly_churn: float | None
    ltv: float | None
    marketing_spend: float | None
    sales_cost: float | None
    cac: float | None
    cac_payback_months: float | None
    ltv_to_cac: float | None


@dataclass(frozen=True)
class Summary:
    overall: Figures
    channels: dict[str, Figures] = field(default_factory=dict)


@dataclass
class Totals:
    """The sums of a group of accounts over the window that the figures are taken from (the read
    adds them up per channel in SQL; `group_accounts` does so from `AccountWindow`s)."""

    mrr_start: float = 0.0
    mrr_end: float = 0.0
    new: float = 0.0
    reactivation: float = 0.0
    expansion: float = 0.0
    contraction: float = 0.0
    churned: float = 0.0
    customers_start: int = 0
    customers_end: int = 0
    customers_new: int = 0
    customers_reactivated: int = 0
    customers_churned: int = 0
    retained: int = 0
    retained_mrr: float = 0.0
    kept_mrr: float = 0.0  # the start customers' end MRR capped at their start MRR

    def merge(self, other: Totals) -> None:
        for name, value in vars(other).items():
            setattr(self, name, getattr(self, name) + value)

    def add(self, a: AccountWindow) -> None:
        start, end = float(a.mrr_start), float(a.mrr_end)
        self.mrr_start += start
        self.mrr_end += end
        self.new += float(a.new)
        self.reactivation += float(a.reactivation)
        self.expansion += float(a.expansion)
        self.contraction += float(a.contraction)
        self.churned += float(a.churned)
        self.customers_new += a.customers_new
        self.customers_reactivated += a.customers_reactivated
        self.customers_churned += a.customers_churned
        self.customers_end += end > 0
        if start > 0:
            self.customers_start += 1
            self.retained += end > 0
            self.retained_mrr += end
            self.kept_mrr += min(start, end)


def group_accounts(accounts: Iterable[AccountWindow]) -> dict[str | None, Totals]:
    """The accounts' totals per first-touch channel (None: unknown)."""
    groups: dict[str | None, Totals] = {}
    for a in accounts:
        groups.setdefault(a.channel, Totals()).add(a)
    return groups


def economics_summary(
    groups: Mapping[str | None, Totals],
    *,
    days: int,
    gross_margin: float | None,
    marketing_spend: Mapping[str, float],
    sales_cost: float | None,
) -> Summary:
    """The window's figures for the tenant and per first-touch channel (see the module docstring).
    Channels are those with accounts or recorded spend in the window, sorted by name; accounts of
    unknown channel are `unattributed`."""
    overall = Totals()
    named: dict[str, Totals] = {}
    for channel, totals in groups.items():
        overall.merge(totals)
        named.setdefault(channel or UNATTRIBUTED, Totals()).merge(totals)
    for channel in marketing_spend:
        named.setdefault(channel, Totals())
    spent = sum(marketing_spend.values()) if marketing_spend else None
    share = None if sales_cost is None else ratio(sales_cost, overall.customers_new)
    channels = {}
    for name in sorted(named):
        totals = named[name]
        channel_sales = None if share is None else share * totals.customers_new
        channels[name] = _figures(
            totals, days, gross_margin, marketing_spend.get(name), channel_sales, sales_cost
        )
    overall_figures = _figures(overall, days, gross_margin, spent, sales_cost, sales_cost)
    return Summary(overall=overall_figures, channels=channels)


def _figures(
    t: Totals,
    days: int,
    gross_margin: float | None,
    spend: float | None,
    sales: float | None,
    tenant_sales: float | None,
) -> Figures:
    months = days / DAYS_PER_MONTH
    arpa = ratio(t.mrr_end, t.customers_end)
    churn_rate = ratio(t.customers_churned, t.customers_start)
    monthly_churn = None if churn_rate is None or months <= 0 else churn_rate / months
    margin_arpa = None if arpa is None or gross_margin is None else arpa * gross_margin
    ltv = None if margin_arpa is None or not monthly_churn else margin_arpa / monthly_churn
    costs = None if spend is None and tenant_sales is None else (spend or 0.0) + (sales or 0.0)
    cac = None if costs is None else ratio(costs, t.customers_new)
    return Figures(
        mrr_start=t.mrr_start,
        mrr_end=t.mrr_end,
        new_mrr=t.new,
        reactivation_mrr=t.reactivation,
        expansion_mrr=t.expansion,
        contraction_mrr=t.contraction,
        churned_mrr=t.churned,
        customers_start=t.customers_start,
        customers_end=t.customers_end,
        customers_new=t.customers_new,
        customers_reactivated=t.customers_reactivated,
        customers_churned=t.customers_churned,
        logo_retention=ratio(t.retained, t.customers_start),
        net_revenue_retention=ratio(t.retained_mrr, t.mrr_start),
        gross_revenue_retention=ratio(t.kept_mrr, t.mrr_start),
        arpa=arpa,
        monthly_churn=monthly_churn,
        ltv=ltv,
        marketing_spend=spend,
        sales_cost=sales,
        cac=cac,
        cac_payback_months=None if cac is None or not margin_arpa else cac / margin_arpa,
        ltv_to_cac=None if ltv is None or not cac else ltv / cac,
    )


def rep_cost(
    monthly_cost: Number, *, hired_at: date | None, left_at: date | None, start: date, end: date
) -> float:
    """A rep's cost over the inclusive days `start`..`end`: `monthly_cost` for each day employed
    (from `hired_at`, before `left_at`: a rep who left is gone from that day), a month being 30.4375
    days."""
    first = max(start, hired_at) if hired_at is not None else start
    last = min(end, left_at - timedelta(days=1)) if left_at is not None else end
    days = (last - first).days + 1
    return float(monthly_cost) * days / DAYS_PER_MONTH if days > 0 else 0.0
