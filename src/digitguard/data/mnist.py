"""The MNIST data set: pinned hashes, verification, download and loading.

``verify_directory`` checks the four files against SHA-256 values pinned in
this module; ``fetch`` downloads them from a list of mirrors, verifying each
before it is atomically moved into place; ``load`` returns verified arrays.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from digitguard.data import idx
from digitguard.errors import DataError, DownloadError, HashMismatchError, IdxFormatError

TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"

PINNED_SHA256: dict[str, str] = {
    TRAIN_IMAGES: "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    TRAIN_LABELS: "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    TEST_IMAGES: "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    TEST_LABELS: "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
EXPECTED_COUNTS = {"train": 60_000, "test": 10_000}

DEFAULT_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
ALLOWED_SCHEMES = frozenset({"https", "http", "file"})
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024  # the largest file is 9.9 MB
DOWNLOAD_TIMEOUT_S = 60


@dataclass(frozen=True)
class Split:
    """One split as arrays: images ``(n, 28, 28)`` uint8 and labels ``(n,)`` uint8."""

    images: np.ndarray
    labels: np.ndarray


@dataclass(frozen=True)
class MnistData:
    train: Split
    test: Split
    file_sha256: dict[str, str]
    verified: bool


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_file(path: Path) -> str:
    """Check one file against its pinned hash; return the hash."""
    if not path.is_file():
        raise IdxFormatError(path, "file not found")
    actual = sha256_file(path)
    expected = PINNED_SHA256[path.name]
    if actual != expected:
        raise HashMismatchError(path, f"SHA-256 mismatch: pinned {expected}, file has {actual}")
    return actual


def verify_directory(data_dir: Path) -> dict[str, str]:
    """Check all four MNIST files in ``data_dir``; return name → SHA-256."""
    return {name: verify_file(Path(data_dir) / name) for name in PINNED_SHA256}


def load(data_dir: Path, *, allow_unverified: bool = False) -> MnistData:
    """Load both splits, verifying the pinned hashes unless explicitly overridden.

    With ``allow_unverified`` the hashes are still computed and returned (so the
    manifest records exactly which bytes were used), but not compared; the
    strict IDX checks apply either way.
    """
    data_dir = Path(data_dir)
    if allow_unverified:
        hashes = {name: _hash_existing(data_dir / name) for name in PINNED_SHA256}
    else:
        hashes = verify_directory(data_dir)
    train = Split(*idx.read_pair(data_dir / TRAIN_IMAGES, data_dir / TRAIN_LABELS))
    test = Split(*idx.read_pair(data_dir / TEST_IMAGES, data_dir / TEST_LABELS))
    verified = not allow_unverified or hashes == PINNED_SHA256
    return MnistData(train=train, test=test, file_sha256=hashes, verified=verified)


def _hash_existing(path: Path) -> str:
    if not path.is_file():
        raise IdxFormatError(path, "file not found")
    return sha256_file(path)


def mirrors_from_env(value: str | None) -> tuple[str, ...]:
    """Mirrors from a whitespace- or comma-separated list (``DIGITGUARD_MNIST_MIRRORS``)."""
    if not value:
        return DEFAULT_MIRRORS
    return tuple(part for part in value.replace(",", " ").split() if part)


def fetch(data_dir: Path, mirrors: Sequence[str] = DEFAULT_MIRRORS) -> dict[str, str]:
    """Download any missing or corrupt MNIST file, verifying before it lands.

    Each file is downloaded into a temporary file in ``data_dir``, checked
    against the pinned hash and the IDX rules, and only then renamed into
    place. A file that fails on every mirror raises :class:`DownloadError`
    and leaves nothing behind.
    """
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    for name in PINNED_SHA256:
        target = data_dir / name
        if target.is_file() and sha256_file(target) == PINNED_SHA256[name]:
            continue
        _fetch_one(name, target, mirrors)
    return verify_directory(data_dir)


def _fetch_one(name: str, target: Path, mirrors: Iterable[str]) -> None:
    failures = []
    for mirror in mirrors:
        url = urllib.parse.urljoin(mirror if mirror.endswith("/") else mirror + "/", name)
        try:
            _download_verified(url, target)
            return
        except (DataError, OSError, urllib.error.URLError, ValueError) as exc:
            failures.append(f"{url}: {exc}")
    raise DownloadError(target, "no mirror delivered the pinned file; " + "; ".join(failures))


def _download_verified(url: str, target: Path) -> None:
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ALLOWED_SCHEMES:
        raise ValueError(f"scheme {scheme!r} not allowed (allowed: {sorted(ALLOWED_SCHEMES)})")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            # The scheme is checked against ALLOWED_SCHEMES just above.
            with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:  # noqa: S310  # nosec B310
                _copy_bounded(response, out)
            out.flush()
            os.fsync(out.fileno())
        _check_download(tmp, target.name)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _copy_bounded(response: BinaryIO, out: BinaryIO) -> None:
    total = 0
    for block in iter(lambda: response.read(1 << 20), b""):
        total += len(block)
        if total > MAX_DOWNLOAD_BYTES:
            raise DownloadError(out.name, f"download larger than {MAX_DOWNLOAD_BYTES} bytes")
        out.write(block)


def _check_download(tmp: Path, name: str) -> None:
    actual = sha256_file(tmp)
    if actual != PINNED_SHA256[name]:
        raise HashMismatchError(name, f"SHA-256 mismatch: pinned {PINNED_SHA256[name]}, got {actual}")
