"""Signing model directories in the OpenSSF model-signing format (ECDSA keys).

A signature (``model.sig``, a Sigstore bundle holding a DSSE envelope over an
in-toto statement that lists the SHA-256 of every file) covers the whole
directory. The bundle names its key by a hint — the SHA-256 of the public key
in PEM form — which this module uses to pick the key from the trust store;
verification then re-hashes every file and compares.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from model_signing import hashing, signing, verifying

from digitguard.errors import SignatureError, SigningKeyError, UntrustedKeyError

SIGNATURE_FILE = "model.sig"
PUBLIC_KEY_SUFFIXES = (".pub", ".pem")


def _hashing_config() -> hashing.Config:
    return (
        hashing.Config()
        .use_file_serialization(hashing_algorithm="sha256", allow_symlinks=False)
        .set_ignored_paths(paths=[SIGNATURE_FILE], ignore_git_paths=False)
    )


def key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """The key's identifier: SHA-256 of its PEM SubjectPublicKeyInfo (model-signing's hint)."""
    pem = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(pem).hexdigest()


def generate_keypair(private_path: Path, public_path: Path) -> str:
    """Create an ECDSA P-256 key pair; the private key file is readable by its owner only."""
    for path in (private_path, public_path):
        if path.exists():
            raise SigningKeyError(f"{path}: refusing to overwrite an existing key file")
    private_key = ec.generate_private_key(ec.SECP256R1())
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    private_path.parent.mkdir(parents=True, exist_ok=True)
    public_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(private_pem)
    public_path.write_bytes(public_pem)
    return key_id(private_key.public_key())


def sign_directory(model_dir: Path, private_key_path: Path) -> None:
    """Write ``model_dir/model.sig`` covering every other file in ``model_dir``."""
    if not Path(private_key_path).is_file():
        raise SigningKeyError(f"{private_key_path}: signing key not found")
    try:
        config = signing.Config().use_elliptic_key_signer(private_key=private_key_path)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"{private_key_path}: not a usable ECDSA private key: {exc}") from exc
    config.set_hashing_config(_hashing_config()).sign(model_dir, Path(model_dir) / SIGNATURE_FILE)


@dataclass(frozen=True)
class TrustStore:
    """Trusted public keys by key id."""

    keys: dict[str, Path]

    @classmethod
    def from_dirs(cls, dirs: list[Path]) -> TrustStore:
        keys: dict[str, Path] = {}
        for directory in dirs:
            for path in sorted(Path(directory).glob("*")):
                if path.suffix in PUBLIC_KEY_SUFFIXES and path.is_file():
                    keys[key_id(read_public_key(path))] = path
        return cls(keys)


def read_public_key(path: Path) -> ec.EllipticCurvePublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except ValueError as exc:
        raise SigningKeyError(f"{path}: not a PEM public key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise SigningKeyError(f"{path}: trusted keys must be ECDSA public keys")
    return key


def signature_key_hint(signature_path: Path) -> str:
    """The key id the bundle claims it was signed with."""
    try:
        bundle = json.loads(signature_path.read_text(encoding="utf-8"))
        hint = bundle["verificationMaterial"]["publicKey"]["hint"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SignatureError(f"{signature_path}: not a model-signing bundle: {exc}") from exc
    if not isinstance(hint, str) or not hint:
        raise SignatureError(f"{signature_path}: signature names no public key")
    return hint


def verify_directory(model_dir: Path, trust: TrustStore) -> str:
    """Verify ``model.sig`` against the trust store and the files; return the signer's key id.

    Any failure — a malformed bundle, an unknown key, a bad signature, any
    changed, added or removed file — raises :class:`SignatureError`.
    """
    signature_path = Path(model_dir) / SIGNATURE_FILE
    if not signature_path.is_file():
        raise SignatureError(f"{model_dir}: unsigned model: {SIGNATURE_FILE} is missing")
    hint = signature_key_hint(signature_path)
    public_key_path = trust.keys.get(hint)
    if public_key_path is None:
        raise UntrustedKeyError(
            f"{signature_path}: signed by key {hint[:16]}…, which is not in the trust store "
            f"({len(trust.keys)} trusted key(s))"
        )
    config = verifying.Config().use_elliptic_key_verifier(public_key=public_key_path)
    config.set_hashing_config(_hashing_config())
    try:
        config.verify(Path(model_dir), signature_path)
    except Exception as exc:  # any failure inside the verifier means: refuse
        if str(exc).startswith("Signature mismatch"):
            # The envelope's signature was valid; the files are not what was signed.
            raise SignatureError(
                f"{model_dir}: {_describe_mismatch(Path(model_dir), signature_path)}"
            ) from exc
        raise SignatureError(f"{model_dir}: signature verification failed: {exc}") from exc
    return hint


def signed_digests(signature_path: Path) -> dict[str, str]:
    """File name → SHA-256 as listed in the bundle's statement (not itself a verification)."""
    bundle = json.loads(signature_path.read_text(encoding="utf-8"))
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    return {r["name"]: r["digest"] for r in statement["predicate"]["resources"]}


def _describe_mismatch(model_dir: Path, signature_path: Path) -> str:
    try:
        signed = signed_digests(signature_path)
    except (ValueError, KeyError, TypeError):
        return "files differ from what was signed"
    present = {p.name for p in model_dir.iterdir() if p.name != SIGNATURE_FILE}
    changed = sorted(
        name
        for name in present & set(signed)
        if hashlib.sha256((model_dir / name).read_bytes()).hexdigest() != signed[name]
    )
    return (
        f"files differ from what was signed: Hash mismatch for {changed}, "
        f"extra {sorted(present - set(signed))}, missing {sorted(set(signed) - present)}"
    )
