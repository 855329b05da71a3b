"""API keys (stored as SHA-256 hashes) and tenant secrets (Fernet-encrypted at rest)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.fernet import Fernet, InvalidToken

KEY_PREFIX = "sl"


def new_api_key() -> tuple[str, str, str]:
    """Returns (key, prefix, hash). The key is shown once; only prefix and hash are stored."""
    prefix = secrets.token_hex(6)
    key = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    return key, prefix, hash_key(key)


def hash_key(key: str) -> str:
    # Keys carry 256 random bits, so a plain hash is enough (no slow KDF needed, unlike passwords).
    return hashlib.sha256(key.encode()).hexdigest()


def parse_key_prefix(key: str) -> str | None:
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or len(parts[1]) != 12:
        return None
    return parts[1]


def key_matches(key: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_key(key), stored_hash)


def _fernet(secret_key: str) -> Fernet:
    digest = hashlib.sha256(b"salesloop tenant secrets\x00" + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def encrypt_secret(secret_key: str, value: str) -> bytes:
    return _fernet(secret_key).encrypt(value.encode())


def decrypt_secret(secret_key: str, ciphertext: bytes) -> str:
    try:
        return _fernet(secret_key).decrypt(ciphertext).decode()
    except InvalidToken as exc:
        raise ValueError("tenant secret cannot be decrypted: was SALESLOOP_SECRET_KEY changed?") from exc
