"""subscriptions

Unit economics (SPEC 5.10): `mrr_movements` (each `subscription.*` event of a billing account with
the account's MRR before and after it and its movement: new, expansion, contraction, churn, reactivation) and
`subscription_accounts` (one row per account), both derived from the archive (`salesloop rebuild`
recomputes them), and `economics_settings` (what a tenant sets: gross margin, sales cost, failure
rate). The read-only Grafana role (0002) may select all three: account and contact ids, channels,
amounts, shares and timestamps; no name, address, text or secret.

Revision ID: 0015
Revises: 0013
Create Date: 2026-12-03 21:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mrr_movements",
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("account_id", sa.String(length=200), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("subscription_id", sa.String(length=200), server_default="", nullable=False),
        sa.Column("mrr", sa.Numeric(precision=20, scale=4), nullable=False),
        sa.Column("mrr_before", sa.Numeric(precision=20, scale=4), nullable=False),
        sa.Column("mrr_after", sa.Numeric(precision=20, scale=4), nullable=False),
        sa.Column("movement", sa.String(length=16), nullable=True),
        sa.Column("contact_id", sa.String(length=200), nullable=True),
        sa.Column("channel", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("tenant", "account_id", "event_id", name=op.f("pk_mrr_movements")),
    )
    op.create_index("ix_mrr_movements_tenant_at", "mrr_movements", ["tenant", "at"])
    op.create_table(
        "subscription_accounts",
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("account_id", sa.String(length=200), nullable=False),
        sa.Column("mrr", sa.Numeric(precision=20, scale=4), nullable=False),
        sa.Column("contact_id", sa.String(length=200), nullable=True),
        sa.Column("channel", sa.String(length=32), nullable=True),
        sa.Column("first_paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "account_id", name=op.f("pk_subscription_accounts")),
    )
    op.create_index(
        "ix_subscription_accounts_tenant_contact_id", "subscription_accounts", ["tenant", "contact_id"]
    )
    op.create_table(
        "economics_settings",
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("gross_margin", sa.Numeric(precision=7, scale=6), nullable=True),
        sa.Column(
            "sales_cost_monthly", sa.Numeric(precision=38, scale=4), server_default="0", nullable=False
        ),
        sa.Column("failure_rate", sa.Numeric(precision=7, scale=6), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant"],
            ["tenants.slug"],
            name=op.f("fk_economics_settings_tenant_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant", name=op.f("pk_economics_settings")),
    )
    # One table per statement, the role spelled out: tests/deploy/test_dashboards.py reads the grants
    # from these lines.
    op.execute("GRANT SELECT ON mrr_movements TO salesloop_grafana")
    op.execute("GRANT SELECT ON subscription_accounts TO salesloop_grafana")
    op.execute("GRANT SELECT ON economics_settings TO salesloop_grafana")
    # The economics dashboard's CAC payback by channel: spend, reps' costs and leaving days, and the
    # lead channel of an account's contact (only these columns of reps and leads).
    op.execute("GRANT SELECT ON channel_spend TO salesloop_grafana")
    op.execute("GRANT SELECT (left_at, monthly_cost) ON reps TO salesloop_grafana")
    op.execute("GRANT SELECT (tenant, contact_id, channel) ON leads TO salesloop_grafana")


def downgrade() -> None:
    op.execute("REVOKE SELECT (tenant, contact_id, channel) ON leads FROM salesloop_grafana")
    op.execute("REVOKE SELECT (left_at, monthly_cost) ON reps FROM salesloop_grafana")
    op.execute("REVOKE SELECT ON channel_spend FROM salesloop_grafana")
    op.drop_table("economics_settings")
    op.drop_index("ix_subscription_accounts_tenant_contact_id", table_name="subscription_accounts")
    op.drop_table("subscription_accounts")
    op.drop_index("ix_mrr_movements_tenant_at", table_name="mrr_movements")
    op.drop_table("mrr_movements")
