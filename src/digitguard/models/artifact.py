"""Model artifacts: writing a signed directory, and the one loader that fails closed.

A model is a directory of exactly three files::

    model.safetensors   the weights (never pickle) — or model.safetensors.enc, the same
                        encrypted with AES-256-GCM (digitguard.models.encryption)
    manifest.json       architecture, data hashes, training config, metrics, provenance
    model.sig           OpenSSF model-signing bundle over the two files above

:func:`load_verified` is the only way the project turns a directory into a
network. It checks, in order and refusing at the first failure: the file
layout, the signature against the trust store, the manifest against the
weights and the architecture registry, and the tensors' names, shapes, dtypes
and finiteness. Encrypted weights are decrypted in memory between the signature check (which
covers the ciphertext on disk) and the manifest check (which covers the plaintext).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from safetensors.torch import save_file
from torch import nn

from digitguard.errors import ArtifactLayoutError, ManifestError, TrainingError, WeightsError
from digitguard.models import encryption, signing
from digitguard.models.architectures import ARCHITECTURES, build_model, parameter_count
from digitguard.models.manifest import MANIFEST_FILE, MAX_MANIFEST_BYTES, WEIGHTS_FILE, ModelManifest
from digitguard.models.trust import trust_store

ARTIFACT_FILES = frozenset({WEIGHTS_FILE, MANIFEST_FILE, signing.SIGNATURE_FILE})
ENCRYPTED_ARTIFACT_FILES = frozenset(
    {encryption.ENCRYPTED_WEIGHTS_FILE, MANIFEST_FILE, signing.SIGNATURE_FILE}
)
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt")
MAX_SAFETENSORS_HEADER = 1 << 20


@dataclass(frozen=True)
class VerifiedModel:
    """A network that passed every check of :func:`load_verified`, in eval mode."""

    model: nn.Module
    manifest: ModelManifest
    weights_sha256: str
    signer_key_id: str
    path: Path


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_signed_artifact(out: Path, model: nn.Module, manifest: ModelManifest, private_key: Path) -> Path:
    """Write weights, manifest and signature to a temporary directory, then rename it to ``out``.

    An interruption at any point leaves either no ``out`` or a complete one.
    """
    weights = save_safetensors({k: v.contiguous() for k, v in model.state_dict().items()})
    return _write_staged(
        out, {WEIGHTS_FILE: weights, MANIFEST_FILE: manifest.to_json().encode()}, private_key
    )


def write_encrypted_artifact(source: Path, out: Path, key: bytes, private_key: Path) -> Path:
    """A copy of the plain model directory ``source`` with its weights encrypted under ``key``,
    signed with ``private_key``; written like :func:`write_signed_artifact` (all or nothing)."""
    source = Path(source)
    if check_layout(source):
        raise ArtifactLayoutError(f"{source}: the weights are already encrypted")
    manifest_bytes = (source / MANIFEST_FILE).read_bytes()
    weights = (source / WEIGHTS_FILE).read_bytes()
    manifest = check_manifest(manifest_bytes, weights, source)
    if Path(out).exists():
        raise ArtifactLayoutError(f"{out}: output directory already exists; choose another --out")
    sealed = encryption.encrypt(weights, key, manifest.weights_sha256)
    return _write_staged(
        out, {encryption.ENCRYPTED_WEIGHTS_FILE: sealed, MANIFEST_FILE: manifest_bytes}, private_key
    )


def _write_staged(out: Path, files: dict[str, bytes], private_key: Path) -> Path:
    """Write ``files``, sign them, fsync, and rename the staging directory to ``out``."""
    out = Path(out)
    if out.exists():
        raise TrainingError(f"{out}: output directory already exists; choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    # Stage under the final name (the signature records the directory name) inside a temp parent.
    staging_parent = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    staging = staging_parent / out.name
    staging.mkdir()
    try:
        for name, data in files.items():
            (staging / name).write_bytes(data)
        signing.sign_directory(staging, private_key)
        for name in (*files, signing.SIGNATURE_FILE):
            (staging / name).chmod(0o644)
            _fsync_file(staging / name)
        staging.chmod(0o755)
        os.rename(staging, out)
    finally:
        shutil.rmtree(staging_parent, ignore_errors=True)
    return out


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def weights_sha256_of(model: nn.Module) -> str:
    """SHA-256 of the safetensors bytes ``write_signed_artifact`` would write for ``model``."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / WEIGHTS_FILE
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
        return sha256_bytes(path.read_bytes())


def load_verified(
    model_dir: Path,
    extra_trust_dirs: list[Path] | None = None,
    key_provider: encryption.KeyProvider | None = None,
) -> VerifiedModel:
    """Verify and load a model directory; raise a :class:`ModelError` subclass on any failure.

    ``key_provider``: for encrypted weights (default: $DIGITGUARD_MODEL_KEY_FILE or $DIGITGUARD_MODEL_KEY).
    """
    model_dir = Path(model_dir)
    encrypted = check_layout(model_dir)
    key = signing.verify_directory(model_dir, trust_store(extra_trust_dirs))
    manifest_bytes = (model_dir / MANIFEST_FILE).read_bytes()
    if encrypted:
        claimed = check_manifest_text(manifest_bytes, model_dir)
        source = model_dir / encryption.ENCRYPTED_WEIGHTS_FILE
        weights_bytes = encryption.decrypt(
            source.read_bytes(),
            claimed.weights_sha256,
            key_provider or encryption.default_key_provider(),
            str(source),
        )
    else:
        weights_bytes = (model_dir / WEIGHTS_FILE).read_bytes()
    manifest = check_manifest(manifest_bytes, weights_bytes, model_dir)
    model = build_model(manifest.architecture)
    _load_weights(model, model_dir / WEIGHTS_FILE, weights_bytes)
    model.eval()
    return VerifiedModel(model, manifest, manifest.weights_sha256, key, model_dir)


def check_layout(model_dir: Path) -> bool:
    """Refuse anything but the three artifact files; ``True`` when the weights are encrypted."""
    if not model_dir.is_dir():
        raise ArtifactLayoutError(f"{model_dir}: not a model directory")
    entries = {entry.name: entry for entry in model_dir.iterdir()}
    pickles = sorted(name for name in entries if name.endswith(PICKLE_SUFFIXES))
    if pickles:
        raise ArtifactLayoutError(
            f"{model_dir}: pickle-format file(s) {pickles} present; only safetensors weights are accepted"
        )
    links = sorted(name for name, entry in entries.items() if entry.is_symlink() or not entry.is_file())
    if links:
        raise ArtifactLayoutError(f"{model_dir}: only regular files are allowed, found {links}")
    if signing.SIGNATURE_FILE not in entries:
        # Reported as a signature problem: the directory is unsigned.
        signing.verify_directory(model_dir, signing.TrustStore({}))
    encrypted = encryption.ENCRYPTED_WEIGHTS_FILE in entries
    expected = ENCRYPTED_ARTIFACT_FILES if encrypted else ARTIFACT_FILES
    extra = sorted(set(entries) - expected)
    missing = sorted(expected - set(entries))
    if extra or missing:
        raise ArtifactLayoutError(
            f"{model_dir}: a model directory holds exactly {sorted(ARTIFACT_FILES)} (or "
            f"{encryption.ENCRYPTED_WEIGHTS_FILE} for encrypted weights); extra {extra}, missing {missing}"
        )
    return encrypted


def check_manifest_text(manifest_bytes: bytes, model_dir: Path) -> ModelManifest:
    """The manifest's own checks (size, encoding, fields), before the weights are at hand."""
    source = str(model_dir / MANIFEST_FILE)
    if len(manifest_bytes) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{source}: larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        text = manifest_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{source}: not UTF-8") from exc
    return ModelManifest.from_json(text, source)


def check_manifest(manifest_bytes: bytes, weights_bytes: bytes, model_dir: Path) -> ModelManifest:
    source = str(model_dir / MANIFEST_FILE)
    manifest = check_manifest_text(manifest_bytes, model_dir)
    actual = sha256_bytes(weights_bytes)
    if manifest.weights_sha256 != actual:
        raise ManifestError(
            f"{source}: weights_sha256 {manifest.weights_sha256} does not match {WEIGHTS_FILE} ({actual})"
        )
    if manifest.architecture not in ARCHITECTURES:
        raise ManifestError(f"{source}: architecture {manifest.architecture!r} is not registered")
    expected_count = parameter_count(build_model(manifest.architecture))
    if manifest.parameter_count != expected_count:
        raise ManifestError(
            f"{source}: parameter_count {manifest.parameter_count} != {expected_count} "
            f"of architecture {manifest.architecture!r}"
        )
    return manifest


def _check_safetensors_header(path: Path, data: bytes) -> None:
    if data[:2] in (b"PK", b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05"):
        raise WeightsError(f"{path}: is a pickle/zip (torch.save) file, not safetensors; refusing to load")
    if len(data) < 8:
        raise WeightsError(f"{path}: too short to be safetensors")
    header_length = int.from_bytes(data[:8], "little")
    if not 2 <= header_length <= min(MAX_SAFETENSORS_HEADER, len(data) - 8) or data[8:9] != b"{":
        raise WeightsError(f"{path}: not a safetensors file (bad header length or header)")


def _load_weights(model: nn.Module, path: Path, data: bytes) -> None:
    # From the bytes that were hashed and checked, not by reading the file again.
    _check_safetensors_header(path, data)
    try:
        tensors = load_safetensors(data)
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path}: unreadable safetensors: {exc}") from exc
    expected = model.state_dict()
    if set(tensors) != set(expected):
        raise WeightsError(
            f"{path}: tensor names differ from the architecture: "
            f"extra {sorted(set(tensors) - set(expected))}, missing {sorted(set(expected) - set(tensors))}"
        )
    for name, tensor in tensors.items():
        if tensor.shape != expected[name].shape or tensor.dtype != expected[name].dtype:
            raise WeightsError(
                f"{path}: tensor {name!r} is {tuple(tensor.shape)} {tensor.dtype}, "
                f"architecture expects {tuple(expected[name].shape)} {expected[name].dtype}"
            )
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise WeightsError(f"{path}: tensor {name!r} contains NaN or Inf")
    model.load_state_dict(tensors, strict=True)
