"""The trail's own checkpoint-signing key: created once (mode 0600) next to the instance's state."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from digitguard.audit.store import CheckpointSigner, load_signer


def ensure_signer(private_path: Path) -> CheckpointSigner:
    """Load the signing key, creating it and its ``.pub`` on first use."""
    if not private_path.exists():
        private_path.parent.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        try:
            fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return load_signer(private_path)  # another process created it first
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        public_path(private_path).write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    return load_signer(private_path)


def public_path(private_path: Path) -> Path:
    return private_path.with_suffix(".pub")
