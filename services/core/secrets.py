"""API keys (stored as SHA-256 hashes) and tenant secrets (Fernet-encrypted at rest).

Tenant secrets are encrypted with a key derived from SALESLOOP_SECRET_KEY. Two formats exist:

- v2 (written now): `v2.` + a Fernet token whose key is scrypt(SALESLOOP_SECRET_KEY), with the
  parameters below. scrypt is deliberately slow and memory-hard, so a stolen database dump cannot be
  tried against guessed keys at hash speed. Derived once per process and key, never per request.
- v1 (written before): a bare Fernet token whose key is one SHA-256 of SALESLOOP_SECRET_KEY. Still read,
  never written; `salesloop secrets rotate` re-encrypts such rows as v2.

A `Keyring` holds the current key and, during a rotation, the previous one: it encrypts with the
current key and decrypts with either (docs/operations.md, "Secrets").

API key hashes do not depend on SALESLOOP_SECRET_KEY: a key rotation leaves them alone.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

KEY_PREFIX = "sl"

# scrypt at OWASP's recommended cost: N=2^15, r=8, p=3 (32 MiB of memory and roughly 0.2-0.4 s a try).
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 3
# A fixed salt: SALESLOOP_SECRET_KEY itself must be full-strength random (MIN_KEY_CHARS and the rules of
# `check_secret_key`), so there is no dictionary to precompute; the salt only separates this use of the
# key from any other.
SCRYPT_SALT = b"salesloop tenant secrets v2"
V2 = b"v2."
_V1_LABEL = b"salesloop tenant secrets\x00"

MIN_KEY_CHARS = 32
MIN_KEY_DISTINCT = 8
MIN_KEY_BITS = 128
GENERATE_KEY = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'


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


# ------------------------------------------------------------------------------- SALESLOOP_SECRET_KEY


def check_secret_key(value: str) -> None:
    """ValueError saying why `value` is too weak to be SALESLOOP_SECRET_KEY in production.

    At least 32 characters, at least 8 different ones, not a short string repeated, and at least 128
    bits if each character were drawn at random from the smallest alphabet holding them all (digits,
    hex, base64 or printable ASCII). `secrets.token_urlsafe(32)` and `openssl rand -hex 32` always pass.
    """
    problem = _weakness(value)
    if problem is not None:
        raise ValueError(f"SALESLOOP_SECRET_KEY is too weak: {problem}; generate one with {GENERATE_KEY}")


def _weakness(value: str) -> str | None:
    if len(value) < MIN_KEY_CHARS:
        return f"it has {len(value)} characters, at least {MIN_KEY_CHARS} are needed"
    if len(set(value)) < MIN_KEY_DISTINCT:
        return f"it uses fewer than {MIN_KEY_DISTINCT} different characters"
    if any(value == (value[:n] * (len(value) // n + 1))[: len(value)] for n in range(1, len(value) // 2 + 1)):
        return "it is a shorter string repeated"
    if len(value) * math.log2(_alphabet(value)) < MIN_KEY_BITS:
        return f"it cannot hold {MIN_KEY_BITS} random bits"
    return None


def _alphabet(value: str) -> int:
    chars = set(value)
    if chars <= set(string.digits):
        return 10
    if chars <= set(string.hexdigits):
        return 16
    if chars <= set(string.ascii_letters + string.digits + "-_+/="):
        return 64
    return 95


# ------------------------------------------------------------------------------------- tenant secrets


@cache
def _v2_fernet(secret_key: str) -> Fernet:
    """The v2 key: scrypt, computed once per process for each key."""
    kdf = Scrypt(salt=SCRYPT_SALT, length=32, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    return Fernet(base64.urlsafe_b64encode(kdf.derive(secret_key.encode())))


@cache
def _v1_fernet(secret_key: str) -> Fernet:
    """The key secrets were written with before v2: one SHA-256. Read only, so they can be rotated."""
    digest = hashlib.sha256(_V1_LABEL + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


@dataclass(frozen=True)
class Keyring:
    """Encrypts under `current`; decrypts under `current` or any of `previous` (a rotation in progress),
    in either format. Build one with `keyring`."""

    current: str = field(repr=False)
    previous: tuple[str, ...] = field(default=(), repr=False)

    def encrypt(self, value: str) -> bytes:
        return V2 + _v2_fernet(self.current).encrypt(value.encode())

    def decrypt(self, ciphertext: bytes) -> str:
        """ValueError when no key of the ring can read `ciphertext`."""
        ciphertext = bytes(ciphertext)
        v2 = ciphertext.startswith(V2)
        token = ciphertext.removeprefix(V2)
        for key in (self.current, *self.previous):
            try:
                return (_v2_fernet(key) if v2 else _v1_fernet(key)).decrypt(token).decode()
            except InvalidToken:
                continue
        raise ValueError(
            "tenant secret cannot be decrypted: was SALESLOOP_SECRET_KEY changed "
            "without SALESLOOP_SECRET_KEY_PREVIOUS?"
        )

    def is_current(self, ciphertext: bytes) -> bool:
        """Whether `ciphertext` is v2 under the current key: nothing for a rotation to do."""
        ciphertext = bytes(ciphertext)
        if not ciphertext.startswith(V2):
            return False
        try:
            _v2_fernet(self.current).decrypt(ciphertext.removeprefix(V2))
        except InvalidToken:
            return False
        return True


def keyring(current: str, previous: Sequence[str] = ()) -> Keyring:
    """The ring of `current` and `previous`, its scrypt keys derived now (not at the first request)."""
    ring = Keyring(current, tuple(key for key in previous if key and key != current))
    for key in (ring.current, *ring.previous):
        _v2_fernet(key)
    return ring


def _ring(keys: Keyring | str) -> Keyring:
    return keys if isinstance(keys, Keyring) else Keyring(keys)


def encrypt_secret(keys: Keyring | str, value: str) -> bytes:
    return _ring(keys).encrypt(value)


def decrypt_secret(keys: Keyring | str, ciphertext: bytes) -> str:
    return _ring(keys).decrypt(ciphertext)
