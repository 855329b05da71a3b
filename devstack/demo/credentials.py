"""The vendor secrets the demo signs with, set on the tenant through the code `salesloop tenants
set-secret` uses. Needs the database; without it the demo sends everything as canonical events.

Secrets the tenant already has are kept (HubSpot, Twilio, Aircall, Fathom and Stripe secrets are shared
secrets, so the demo can sign with them). A missing secret is derived from SALESLOOP_SECRET_KEY and the
tenant, so a second run sets the same values and nothing the ingest has cached goes stale. SendGrid
is verified with a public key: the demo can only sign for the key pair it derives itself, so a
tenant with another SendGrid key keeps it and gets its demo emails as canonical events.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import replace
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.exc import SQLAlchemyError

from devstack.demo.vendors import Credentials, sendgrid_public_key
from services.core.db import create_engine
from services.core.settings import Settings
from services.core.tenancy import TenancyError, get_secret, set_secret

# The order of the P-256 group: private scalars are 1 .. n-1.
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
SHARED_SECRET_SOURCES = ("hubspot", "twilio", "aircall", "fathom", "stripe")


def derived(secret_key: str, tenant: str, source: str) -> bytes:
    return hmac.new(
        secret_key.encode(), f"salesloop-demo:{tenant}:{source}".encode(), hashlib.sha256
    ).digest()


def sendgrid_key(secret_key: str, tenant: str) -> ec.EllipticCurvePrivateKey:
    scalar = int.from_bytes(derived(secret_key, tenant, "sendgrid"), "big") % (_P256_ORDER - 1) + 1
    return ec.derive_private_key(scalar, ec.SECP256R1())


def _new_secret(key: bytes, source: str) -> str:
    if source == "fathom":  # a Standard Webhooks secret, as Fathom shows it
        return "whsec_" + base64.b64encode(key).decode()
    if source == "stripe":  # an endpoint signing secret, as Stripe shows it
        return "whsec_" + key.hex()
    return base64.urlsafe_b64encode(key).decode()


async def with_vendor_secrets(
    settings: Settings, creds: Credentials, tenant: str
) -> tuple[Credentials, list[str]]:
    """`creds` with the tenant's vendor secrets, setting the missing ones (what could not be had stays
    None), and notes on what could not be had."""
    found: dict[str, Any] = {}
    notes: list[str] = []
    secret_key = settings.secret_key.get_secret_value()
    engine = create_engine(settings, "salesloop-demo", pool_size=1)
    try:
        for source in SHARED_SECRET_SOURCES:
            value = await get_secret(engine, secret_key, tenant, source)
            if value is None:
                value = _new_secret(derived(secret_key, tenant, source)[:24], source)
                await set_secret(engine, secret_key, tenant, source, value)
            found[source] = value
        private = sendgrid_key(secret_key, tenant)
        public = sendgrid_public_key(private)
        current = await get_secret(engine, secret_key, tenant, "sendgrid")
        if current is None:
            await set_secret(engine, secret_key, tenant, "sendgrid", public)
            found["sendgrid"] = private
        elif current == public:
            found["sendgrid"] = private
        else:
            notes.append("SendGrid: the tenant has its own verification key; emails go to /v1/events")
    except (OSError, SQLAlchemyError, TenancyError, ValueError) as exc:
        notes.append(f"vendor secrets could not be set ({type(exc).__name__}: {exc}); using /v1/events")
    finally:
        await engine.dispose()
    return replace(creds, **found), notes
