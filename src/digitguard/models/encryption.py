"""Model weights encrypted at rest: AES-256-GCM, a key from a provider, decrypted in memory only.

An encrypted model directory holds ``model.safetensors.enc`` instead of ``model.safetensors``;
the manifest and the signature are as for any model, and the signature covers the ciphertext —
what is on disk. The file is::

    b"DGENC1\\n"  |  4-byte big-endian header length  |  header (JSON)  |  ciphertext + 16-byte tag

The header names the algorithm, the key id (the first 16 hex digits of the key's SHA-256, so a
wrong key is named rather than guessed at) and the 96-bit nonce. The additional authenticated
data binds the ciphertext to its header and to the manifest's ``weights_sha256`` (the hash of
the *plaintext*), so a ciphertext moved under another manifest fails to decrypt; the loader then
checks the plaintext's hash as it does for any model.

Keys come from a :class:`KeyProvider`: :class:`EnvKeyProvider` (``DIGITGUARD_MODEL_KEY``, the
key base64-encoded) and :class:`FileKeyProvider` (``DIGITGUARD_MODEL_KEY_FILE``, a file readable
by its owner only). A KMS plugs in as another provider: anything with ``key(key_id) -> bytes``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from digitguard.errors import ModelError

ENCRYPTED_WEIGHTS_FILE = "model.safetensors.enc"
MAGIC = b"DGENC1\n"
ALGORITHM = "AES-256-GCM"
KEY_BYTES = 32
NONCE_BYTES = 12
MAX_HEADER_BYTES = 4096
KEY_ENV = "DIGITGUARD_MODEL_KEY"
KEY_FILE_ENV = "DIGITGUARD_MODEL_KEY_FILE"


class WeightsEncryptionError(ModelError):
    """Encrypted weights cannot be decrypted (no key, wrong key, altered file) or a key is unusable."""


def key_id_of(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:16]


class KeyProvider(Protocol):
    def key(self, key_id: str) -> bytes:
        """The 32-byte key whose :func:`key_id_of` is ``key_id``; raise WeightsEncryptionError otherwise."""
        ...


def _decode_key(text: str, source: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WeightsEncryptionError(f"{source}: the key is not base64") from exc
    if len(key) != KEY_BYTES:
        raise WeightsEncryptionError(f"{source}: the key must be {KEY_BYTES} bytes, got {len(key)}")
    return key


def _matching(key: bytes, key_id: str, source: str) -> bytes:
    if key_id_of(key) != key_id:
        raise WeightsEncryptionError(
            f"the weights were encrypted with key {key_id}; {source} holds key {key_id_of(key)}"
        )
    return key


@dataclass(frozen=True)
class EnvKeyProvider:
    variable: str = KEY_ENV

    def key(self, key_id: str) -> bytes:
        value = os.environ.get(self.variable)
        if not value:
            raise WeightsEncryptionError(
                f"the weights are encrypted; set ${KEY_FILE_ENV} to their key file "
                f"(or ${self.variable} to the key)"
            )
        return _matching(_decode_key(value, f"${self.variable}"), key_id, f"${self.variable}")


@dataclass(frozen=True)
class FileKeyProvider:
    path: Path

    def key(self, key_id: str) -> bytes:
        return _matching(self.read(), key_id, str(self.path))

    def read(self) -> bytes:
        """The file's key, whatever its id, after the file's own checks (owner-only, base64, 32 bytes)."""
        try:
            mode = self.path.stat().st_mode
            text = self.path.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise WeightsEncryptionError(f"{self.path}: cannot read the key file: {exc}") from exc
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise WeightsEncryptionError(
                f"{self.path}: the key file must be readable by its owner only (chmod 600)"
            )
        return _decode_key(text, str(self.path))


def default_key_provider() -> KeyProvider:
    """``$DIGITGUARD_MODEL_KEY_FILE`` when set, else ``$DIGITGUARD_MODEL_KEY`` (read when a key is needed)."""
    path = os.environ.get(KEY_FILE_ENV)
    return FileKeyProvider(Path(path)) if path else EnvKeyProvider()


def new_key_file(path: Path) -> str:
    """Write a fresh random key (base64, mode 0600) to ``path``, which must not exist; return its id."""
    key = secrets.token_bytes(KEY_BYTES)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(base64.b64encode(key).decode("ascii") + "\n")
    return key_id_of(key)


def _aad(header: bytes, weights_sha256: str) -> bytes:
    return MAGIC + header + weights_sha256.encode("ascii")


def encrypt(plaintext: bytes, key: bytes, weights_sha256: str) -> bytes:
    """The encrypted-weights file for ``plaintext`` (whose SHA-256 the manifest records)."""
    if len(key) != KEY_BYTES:
        raise WeightsEncryptionError(f"the key must be {KEY_BYTES} bytes, got {len(key)}")
    if hashlib.sha256(plaintext).hexdigest() != weights_sha256:
        raise WeightsEncryptionError("weights_sha256 is not the hash of the weights being encrypted")
    nonce = secrets.token_bytes(NONCE_BYTES)
    header = json.dumps(
        {"algorithm": ALGORITHM, "key_id": key_id_of(key), "nonce": base64.b64encode(nonce).decode("ascii")},
        sort_keys=True,
    ).encode("ascii")
    ciphertext = AESGCM(key).encrypt(nonce, plaintext, _aad(header, weights_sha256))
    return MAGIC + len(header).to_bytes(4, "big") + header + ciphertext


@dataclass(frozen=True)
class EncryptedWeights:
    key_id: str
    nonce: bytes
    header: bytes
    ciphertext: bytes


def parse(data: bytes, source: str) -> EncryptedWeights:
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 4:
        raise WeightsEncryptionError(f"{source}: not a digitguard encrypted-weights file")
    start = len(MAGIC) + 4
    length = int.from_bytes(data[len(MAGIC) : start], "big")
    if not 2 <= length <= MAX_HEADER_BYTES or len(data) < start + length + 16:
        raise WeightsEncryptionError(f"{source}: malformed encrypted-weights header")
    header = data[start : start + length]
    try:
        fields = json.loads(header)
        nonce = base64.b64decode(fields["nonce"], validate=True)
        key_id, algorithm = str(fields["key_id"]), fields["algorithm"]
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise WeightsEncryptionError(f"{source}: malformed encrypted-weights header: {exc}") from exc
    if algorithm != ALGORITHM or len(nonce) != NONCE_BYTES:
        raise WeightsEncryptionError(
            f"{source}: unsupported encryption {algorithm!r} / nonce of {len(nonce)} bytes"
        )
    return EncryptedWeights(key_id, nonce, header, data[start + length :])


def decrypt(data: bytes, weights_sha256: str, provider: KeyProvider, source: str) -> bytes:
    """The plaintext weights, in memory; :class:`WeightsEncryptionError` on any failure."""
    encrypted = parse(data, source)
    key = provider.key(encrypted.key_id)
    try:
        return AESGCM(key).decrypt(
            encrypted.nonce, encrypted.ciphertext, _aad(encrypted.header, weights_sha256)
        )
    except InvalidTag as exc:
        raise WeightsEncryptionError(
            f"{source}: authentication failed — the ciphertext, its header or the manifest's "
            "weights_sha256 was altered"
        ) from exc
