"""All SQL of the economics domain beyond the summary's read (services/api/kit/economics_reads.py,
which the planning reads share): the tenant's settings."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.models import EconomicsSettings, Tenant


async def put_settings(
    engine: AsyncEngine,
    tenant: str,
    *,
    gross_margin: Decimal | None,
    sales_cost_monthly: Decimal,
    failure_rate: Decimal | None,
) -> tuple[Decimal | None, Decimal, Decimal | None]:
    """Create or replace the tenant's settings; returns them as stored."""
    values = {
        "gross_margin": gross_margin,
        "sales_cost_monthly": sales_cost_monthly,
        "failure_rate": failure_rate,
    }
    row_in = insert(EconomicsSettings).values(tenant=tenant, **values)
    stmt = row_in.on_conflict_do_update(
        index_elements=[EconomicsSettings.tenant], set_={**values, "updated_at": func.now()}
    ).returning(
        EconomicsSettings.gross_margin, EconomicsSettings.sales_cost_monthly, EconomicsSettings.failure_rate
    )
    async with engine.begin() as conn:
        row = (await conn.execute(stmt)).one()
    return row.gross_margin, row.sales_cost_monthly, row.failure_rate


async def get_settings(
    engine: AsyncEngine, tenant: str
) -> tuple[Decimal | None, Decimal, Decimal | None] | None:
    """The tenant's settings (defaults when it set none); None for an unknown tenant."""
    stmt = (
        select(
            EconomicsSettings.gross_margin,
            EconomicsSettings.sales_cost_monthly,
            EconomicsSettings.failure_rate,
        )
        .select_from(Tenant)
        .outerjoin(EconomicsSettings, EconomicsSettings.tenant == Tenant.slug)
        .where(Tenant.slug == tenant)
    )
    async with engine.connect() as conn:
        row = (await conn.execute(stmt)).one_or_none()
    if row is None:
        return None
    return row.gross_margin, row.sales_cost_monthly or Decimal(0), row.failure_rate
