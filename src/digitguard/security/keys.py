"""API-key tokens and their slow hashes.

A token is ``dgk_<key id>_<secret>``: the key id (12 hex digits) names the row, the secret
(32 random bytes, URL-safe base64) is shown once at creation and stored only as an scrypt
hash. Verification is constant-time; a process may remember a *successful* verification by
the token's SHA-256 so the slow hash is not paid on every request — revocation is still
checked against the database every time.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from digitguard.errors import DigitguardError

TOKEN_PREFIX = "dgk"  # noqa: S105 - a public prefix, not a secret
TOKEN_PATTERN = re.compile(r"^dgk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


class Role(enum.StrEnum):
    PREDICT = "predict"
    REVIEWER = "reviewer"
    ADMIN = "admin"


class InvalidKeyError(DigitguardError):
    """A credential that is malformed, unknown, wrong or revoked. Exit status 2."""

    exit_code = 2


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    name: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class NewKey:
    """A freshly created key: ``token`` exists only here and is never stored."""

    key: ApiKey
    token: str


def new_token() -> tuple[str, str]:
    key_id = secrets.token_hex(6)
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    return key_id, f"{TOKEN_PREFIX}_{key_id}_{secret}"


def parse_token(token: str) -> tuple[str, str]:
    """Split a token into (key id, secret); refuse anything not of the token's exact form."""
    match = TOKEN_PATTERN.match(token)
    if match is None:
        raise InvalidKeyError("malformed API key")
    return match.group(1), match.group(2)


def hash_secret(secret: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return "$".join(["scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(digest)])


def verify_secret(secret: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        actual = hashlib.scrypt(
            secret.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p), dklen=len(_unb64(digest))
        )
    except (ValueError, TypeError):
        return False  # a malformed stored hash never verifies
    return hmac.compare_digest(actual, _unb64(digest))


def token_fingerprint(token: str) -> str:
    """SHA-256 of the token: what a process may cache after a successful slow verification."""
    return hashlib.sha256(token.encode()).hexdigest()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)
