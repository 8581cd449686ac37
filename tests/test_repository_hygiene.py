"""Rules about what the repository may contain: no private keys, no data set, no unsafe loading."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

PRIVATE_KEY_MARKER = re.compile(rb"-----BEGIN ([A-Z]+ )?" + b"PRIVATE KEY-----")
UNSAFE_LOADING = re.compile(
    r"(^|[^_a-z])pickle\.|torch\.load\(|cloudpickle|joblib\.load|yaml\.load\(|(?<![.\w])eval\(|(?<![.\w])exec\("
)


def tracked_files() -> list[Path]:
    try:
        listing = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [REPO_ROOT / name for name in listing.stdout.decode().split("\0") if name]


def test_no_tracked_file_contains_a_private_key() -> None:
    offenders = [str(p) for p in tracked_files() if p.is_file() and PRIVATE_KEY_MARKER.search(p.read_bytes())]
    assert offenders == []


def test_the_private_key_marker_pattern_would_catch_a_real_key(tmp_path: Path) -> None:
    from digitguard.models.signing import generate_keypair

    generate_keypair(tmp_path / "k.pem", tmp_path / "k.pub")
    assert PRIVATE_KEY_MARKER.search((tmp_path / "k.pem").read_bytes())
    assert not PRIVATE_KEY_MARKER.search((tmp_path / "k.pub").read_bytes())


def test_the_mnist_data_set_is_not_tracked() -> None:
    assert [p for p in tracked_files() if re.search(r"ubyte(\.gz)?$", p.name)] == []


def test_source_never_unpickles_or_evaluates() -> None:
    offenders = []
    for path in sorted((REPO_ROOT / "src").rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if UNSAFE_LOADING.search(line) and "weights_only=True" not in line:
                offenders.append(f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_every_trusted_key_is_a_public_key() -> None:
    keys = sorted((REPO_ROOT / "trust").glob("*.pub"))
    assert keys, "trust/ holds no release key"
    for key in keys:
        assert key.read_text().startswith("-----BEGIN PUBLIC KEY-----")


@pytest.mark.parametrize(
    ("line", "unsafe"),
    [
        ("state = torch.load(path)", True),
        ("data = pickle.loads(blob)", True),
        ("value = eval(text)", True),
        ("model.eval()", False),
        ("state = torch.load(path, weights_only=True)", True),  # flagged; the scan then exempts it
        ("from safetensors.torch import load_file", False),
    ],
)
def test_the_unsafe_loading_pattern(line: str, unsafe: bool) -> None:
    assert bool(UNSAFE_LOADING.search(line)) is unsafe


def test_no_instance_state_is_tracked() -> None:
    """instance/ holds the database, the generated secret key and the audit signing key."""
    tracked = [p.relative_to(REPO_ROOT).as_posix() for p in tracked_files()]
    assert [p for p in tracked if p.startswith("instance/") or p.endswith("secret_key")] == []
