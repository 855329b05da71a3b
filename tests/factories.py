"""Row factories: tenants with keys and secrets, created through the same code the CLI uses."""

from __future__ import annotations

import base64
import itertools
import secrets
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.settings import DEV_SECRET_KEY
from services.core.tenancy import SCOPES, create_key, create_tenant, set_secret

_counter = itertools.count()


@dataclass(frozen=True)
class TenantCtx:
    slug: str
    currency: str
    timezone: str
    ingest_key: str
    api_key: str
    webhook_secret: str


class TenantFactory:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create(self, *, currency: str = "USD", timezone: str = "UTC", prefix: str = "t") -> TenantCtx:
        slug = f"{prefix}{next(_counter)}-{secrets.token_hex(3)}"
        await create_tenant(self.engine, slug, currency, timezone)
        ingest_key = await create_key(self.engine, slug, ["ingest"])
        api_key = await create_key(self.engine, slug, sorted(SCOPES - {"ingest"}))
        # Standard Webhooks secrets are "whsec_" + base64 of the key bytes.
        webhook_secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        await set_secret(self.engine, DEV_SECRET_KEY, slug, "webhooks", webhook_secret)
        return TenantCtx(slug, currency, timezone, ingest_key, api_key, webhook_secret)
