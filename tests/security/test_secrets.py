"""Secrets at rest and credentials on the wire.

A weak SALESLOOP_SECRET_KEY is refused in production; tenant secrets are encrypted under a slow KDF,
those written by older releases still decrypt, and `salesloop secrets rotate` moves every one under a
new key; a Salesforce delivery needs the tenant's endpoint token besides its org id; X-Forwarded-For
counts only when it comes from a configured proxy (real ingest processes, as uvicorn serves them).
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from devstack.embedded import ServiceProcess, free_port
from services.core import secrets as at_rest
from services.core.db import create_engine
from services.core.migrate import upgrade_head
from services.core.secrets import keyring
from services.core.settings import DEV_SECRET_KEY, Settings
from services.core.source_settings import set_option
from services.core.tenancy import create_tenant, get_secret, set_secret
from services.ingest.app import create_app
from services.ingest.sources import option_sets
from services.ingest.sources.outbound_message import ACK
from tests.conftest import Stack
from tests.factories import TenantFactory
from tests.ingest.harness import served
from tests.ingest.sources.support import body as fixture

ORG = "00D5e000000KQ2eEAG"  # the OrganizationId of the Salesforce fixtures
SOAP = {"content-type": "text/xml; charset=utf-8", "SOAPAction": '""'}


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def v1_ciphertext(secret_key: str, value: str) -> bytes:
    """A tenant secret as releases before the slow KDF wrote it: Fernet under one SHA-256 of the key."""
    digest = hashlib.sha256(b"salesloop tenant secrets\x00" + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest)).encrypt(value.encode())


# ----------------------------------------------------------------------------- SALESLOOP_SECRET_KEY

WEAK = {
    "empty": "",
    "short": "s3cr3t-Key!",
    "one character": "x" * 64,
    "a few characters": "abcdabcdeabcdeabcdabcdeabcdeabcdabcde",
    "repeated": "0123456789abcdef" * 4,
    "digits only": "1" + "23456789" * 4,
    "the development default": DEV_SECRET_KEY,
}


@pytest.mark.parametrize("key", WEAK.values(), ids=WEAK.keys())
def test_a_weak_secret_key_is_refused_in_production(key: str) -> None:
    with pytest.raises(ValidationError, match="SALESLOOP_SECRET_KEY") as refused:
        Settings(env="production", secret_key=key)
    assert key not in str(refused.value) or not key
    Settings(env="test", secret_key=key)  # dev and test take any key: the dev stack uses DEV_SECRET_KEY


def test_generated_keys_are_accepted() -> None:
    for key in (
        secrets.token_urlsafe(32),
        secrets.token_hex(32),
        secrets.token_hex(16),
        base64.b64encode(secrets.token_bytes(32)).decode(),
    ):
        Settings(env="production", secret_key=key)


def test_a_service_with_a_weak_key_does_not_start() -> None:
    weak = "hunter2-hunter2-hunter2"
    done = cli(
        "ingest",
        "--port",
        str(free_port()),
        env={"SALESLOOP_ENV": "production", "SALESLOOP_SECRET_KEY": weak},
    )
    assert done.returncode == 2, done.stderr[-500:]
    assert "SALESLOOP_SECRET_KEY is too weak" in done.stderr
    assert weak not in done.stderr + done.stdout


# ------------------------------------------------------------------------------------- at rest


def test_tenant_secrets_are_encrypted_under_scrypt_derived_once() -> None:
    # OWASP's scrypt minimum: N=2^15 (32 MiB with r=8), p=3.
    assert (at_rest.SCRYPT_N, at_rest.SCRYPT_R, at_rest.SCRYPT_P) == (2**15, 8, 3)
    assert 128 * at_rest.SCRYPT_N * at_rest.SCRYPT_R == 32 * 2**20
    key = secrets.token_urlsafe(32)
    ring = keyring(key)
    ciphertext = ring.encrypt("an app secret")
    assert ciphertext.startswith(b"v2.")
    token = ciphertext.removeprefix(b"v2.")
    kdf = Scrypt(salt=at_rest.SCRYPT_SALT, length=32, n=2**15, r=8, p=3)
    assert Fernet(base64.urlsafe_b64encode(kdf.derive(key.encode()))).decrypt(token) == b"an app secret"
    with pytest.raises(InvalidToken):  # not the fast SHA-256 derivation any more
        Fernet(base64.urlsafe_b64encode(hashlib.sha256(key.encode()).digest())).decrypt(token)
    # Derived when the ring is made, never again for a request.
    derivations = at_rest._v2_fernet.cache_info().misses
    for _ in range(50):
        assert keyring(key).decrypt(ring.encrypt("x")) == "x"
    assert at_rest._v2_fernet.cache_info().misses == derivations


@pytest.fixture(scope="module")
def own_database(stack: Stack) -> str:
    """A database of its own: a rotation goes over every tenant secret there is."""
    name = f"rotation_{secrets.token_hex(3)}"
    stack.pg.create_database(name)
    url = stack.pg.uri(name)
    upgrade_head(Settings(env="test", database_url=url))
    return url


async def test_old_ciphertexts_decrypt_and_after_rotation_only_the_new_key_does(
    stack: Stack, own_database: str
) -> None:
    old = "the key of old, weaker than now allowed"
    new = secrets.token_urlsafe(32)
    values = {"hubspot": "written by the release before", "twilio": "written under the old key"}
    engine = create_engine(Settings(env="test", database_url=own_database), "salesloop-tests", pool_size=2)
    try:
        await create_tenant(engine, "rot", "USD", "UTC")
        async with engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO tenant_secrets (tenant, source, ciphertext) VALUES ('rot', 'hubspot', :c)"),
                {"c": v1_ciphertext(old, values["hubspot"])},
            )
        await set_secret(engine, old, "rot", "twilio", values["twilio"])
        for source, value in values.items():
            assert await get_secret(engine, old, "rot", source) == value
            assert await get_secret(engine, keyring(new, [old]), "rot", source) == value
            with pytest.raises(ValueError, match="cannot be decrypted"):
                await get_secret(engine, new, "rot", source)

        # Rotating away from a key that production would now refuse: it is only read.
        env = {
            **stack.env,
            "SALESLOOP_ENV": "production",
            "SALESLOOP_DATABASE_URL": own_database,
            "SALESLOOP_SECRET_KEY": new,
            "SALESLOOP_SECRET_KEY_PREVIOUS": old,
        }
        done = cli("secrets", "rotate", env=env)
        assert done.returncode == 0, done.stderr
        assert "2 re-encrypted, 0 already current, 0 unreadable" in done.stderr
        async with engine.connect() as conn:
            stored = (await conn.execute(text("SELECT ciphertext FROM tenant_secrets"))).scalars().all()
        assert all(bytes(c).startswith(b"v2.") for c in stored)
        for source, value in values.items():
            assert await get_secret(engine, new, "rot", source) == value
            with pytest.raises(ValueError, match="cannot be decrypted"):
                await get_secret(engine, old, "rot", source)
        again = cli("secrets", "rotate", env=env)
        assert "0 re-encrypted, 2 already current, 0 unreadable" in again.stderr

        # A secret neither key reads is named and left alone; the others stay readable.
        await set_secret(engine, secrets.token_urlsafe(32), "rot", "aircall", "lost key")
        lost = cli("secrets", "rotate", env=env)
        assert lost.returncode == 1
        assert "rot/aircall" in lost.stderr
        assert await get_secret(engine, new, "rot", "twilio") == values["twilio"]
    finally:
        await engine.dispose()


# ------------------------------------------------------------------------------------- Salesforce


async def test_salesforce_needs_the_endpoint_token_besides_the_org_id(
    stack: Stack, engine: AsyncEngine, tenants: TenantFactory
) -> None:
    t, legacy = await tenants.create(), await tenants.create()
    # The operator gives the org id; set-secret makes the token and prints the URL to paste.
    done = cli("tenants", "set-secret", t.slug, "salesforce", ORG[:15], env=stack.env)
    assert done.returncode == 0, done.stderr
    pasted = urlsplit(done.stdout.strip())
    assert pasted.path == f"/webhooks/salesforce/{t.slug}"
    assert pasted.query.startswith("token=")
    assert len(pasted.query) >= len("token=") + 43
    # A tenant set up before tokens existed has its org id alone.
    await set_secret(engine, DEV_SECRET_KEY, legacy.slug, "salesforce", ORG)
    body = fixture("salesforce_leads.xml")
    async with served(create_app(stack.settings(auth_cache_ttl_s=0))) as client:
        path = f"/webhooks/salesforce/{t.slug}"
        for query, code in (("", "missing_credentials"), (f"token={'A' * 43}", "bad_signature")):
            r = await client.post(f"{path}?{query}", content=body, headers=SOAP)
            assert r.status_code == 401, r.text
            assert [d["code"] for d in r.json()["error"]["details"]] == [code]
        r = await client.post(f"{path}?{pasted.query}", content=body, headers=SOAP)
        assert (r.status_code, r.content) == (200, ACK)

        r = await client.post(f"/webhooks/salesforce/{legacy.slug}", content=body, headers=SOAP)
        assert r.status_code == 401
        await set_option(engine, legacy.slug, "salesforce", "accept_without_token", "true", option_sets())
        r = await client.post(f"/webhooks/salesforce/{legacy.slug}", content=body, headers=SOAP)
        assert r.status_code == 200, r.text


# --------------------------------------------------------------------------------- X-Forwarded-For


@pytest.fixture(scope="module")
def ingests(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Two ingest processes: one deployed without a proxy, one behind a proxy at 127.0.0.1."""
    logs = tmp_path_factory.mktemp("xff")
    procs: dict[str, ServiceProcess] = {}
    for name, env in (("direct", {}), ("proxied", {"SALESLOOP_TRUSTED_PROXIES": "127.0.0.1"})):
        port = free_port()
        procs[name] = ServiceProcess(
            f"ingest-{name}",
            ["ingest", "--port", str(port)],
            {**stack.env, **env},
            f"http://127.0.0.1:{port}/readyz",
            Path(logs) / f"{name}.log",
        )
    try:
        for proc in procs.values():
            proc.start(wait=False)
        for proc in procs.values():
            proc.wait_healthy(60)
        yield {name: proc.health_url.removesuffix("/readyz") for name, proc in procs.items()}
    finally:
        for proc in procs.values():
            proc.stop()


async def test_x_forwarded_for_counts_only_from_a_trusted_proxy(
    engine: AsyncEngine, tenants: TenantFactory, ingests: dict[str, str]
) -> None:
    t = await tenants.create()
    token = secrets.token_urlsafe(32)
    await set_secret(engine, DEV_SECRET_KEY, t.slug, "salesforce", f"{ORG}:{token}")
    await set_option(engine, t.slug, "salesforce", "allowed_networks", "198.51.100.0/24", option_sets())
    path = f"/webhooks/salesforce/{t.slug}?token={token}"
    body = fixture("salesforce_leads.xml")
    claims = {**SOAP, "X-Forwarded-For": "198.51.100.7"}
    async with (
        httpx.AsyncClient(base_url=ingests["direct"]) as direct,
        httpx.AsyncClient(base_url=ingests["proxied"]) as proxied,
    ):
        # Sent straight to ingest, the header is only the sender's claim: its address is 127.0.0.1.
        r = await direct.post(path, content=body, headers=claims)
        assert r.status_code == 401, r.text
        assert [d["code"] for d in r.json()["error"]["details"]] == ["address_not_allowed"]
        # From the trusted proxy, the address it forwards is the sender's.
        r = await proxied.post(path, content=body, headers=claims)
        assert r.status_code == 200, r.text
        # A sender's own claim before the proxy's entry does not count: the proxy appends the real one.
        through = {**SOAP, "X-Forwarded-For": "198.51.100.7, 203.0.113.9"}
        r = await proxied.post(path, content=body, headers=through)
        assert r.status_code == 401, r.text
