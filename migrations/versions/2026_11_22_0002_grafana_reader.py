"""grafana reader role

The read-only login Grafana's PostgreSQL datasource uses for the Sales feedback dashboard: CONNECT,
USAGE on `public` and SELECT on the rollups, the watermarks, tenants and reps (without their vendor
aliases, which hold e-mail addresses and phone numbers). Never the event archive, secrets or keys.

The role is cluster-wide. Created NOLOGIN unless `SALESLOOP_GRAFANA_DB_PASSWORD` is set when the
migration runs; a role that already exists (made by a DBA beforehand, or by another database of the
cluster) keeps its login and password unless a password is configured. The password is sent as a
SCRAM-SHA-256 verifier, so the plain text never reaches the server's statement log.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 14:05:00.000000
"""

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from pydantic import ValidationError

from services.core.settings import Settings

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLE = "salesloop_grafana"
TABLES = ("rollup_rep_daily", "rollup_channel_daily", "tenant_watermarks", "tenants")
REP_COLUMNS = ("tenant", "rep_id", "name", "team", "hired_at", "timezone", "quota_monthly", "active")
SCRAM_ITERATIONS = 4096


def configured_password() -> str | None:
    # Tests and tools also run migrations in environments that do not configure the services
    # (Settings refuses the development secret there); they configure no Grafana login either.
    try:
        password = Settings().grafana_db_password
    except ValidationError:
        return None
    return password.get_secret_value() if password is not None and password.get_secret_value() else None


def scram_verifier(password: str, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS) -> str:
    """What PostgreSQL stores for a SCRAM-SHA-256 password (RFC 5802/7677), computed client-side."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    stored_key = hashlib.sha256(hmac.digest(salted, b"Client Key", "sha256")).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    salt64, stored64, server64 = (base64.b64encode(raw).decode() for raw in (salt, stored_key, server_key))
    return f"SCRAM-SHA-256${iterations}:{salt64}${stored64}:{server64}"


def upgrade() -> None:
    password = configured_password()
    op.execute(
        f"""
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN
                CREATE ROLE {ROLE} NOLOGIN;
            END IF;
            EXECUTE format('GRANT CONNECT ON DATABASE %I TO {ROLE}', current_database());
        END $$
        """
    )
    if password is not None:
        # A verifier is base64, '$' and ':' only: no quoting needed, but its colons must not be
        # taken for bind parameters.
        verifier = scram_verifier(password).replace(":", r"\:")
        op.execute(sa.text(f"ALTER ROLE {ROLE} LOGIN PASSWORD '{verifier}'"))
    op.execute(f"GRANT USAGE ON SCHEMA public TO {ROLE}")
    op.execute(f"GRANT SELECT ON {', '.join(TABLES)} TO {ROLE}")
    op.execute(f"GRANT SELECT ({', '.join(REP_COLUMNS)}) ON reps TO {ROLE}")


def downgrade() -> None:
    op.execute(
        f"""
        DO $$
        BEGIN
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN
                -- Revoking a table's privileges revokes its column privileges as well.
                REVOKE ALL ON {", ".join((*TABLES, "reps"))} FROM {ROLE};
                REVOKE ALL ON SCHEMA public FROM {ROLE};
                EXECUTE format('REVOKE ALL ON DATABASE %I FROM {ROLE}', current_database());
                BEGIN
                    DROP ROLE {ROLE};
                EXCEPTION WHEN dependent_objects_still_exist THEN
                    RAISE NOTICE '{ROLE} keeps privileges in another database of this cluster; not dropped';
                END;
            END IF;
        END $$
        """
    )
