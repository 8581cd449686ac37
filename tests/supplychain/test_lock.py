"""The lock file: pip's hash-checking format, read strictly; anything it does not understand is refused."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digitguard.errors import LockFileError
from digitguard.supplychain.lock import LockedPackage, format_lock, normalise, parse_lock
from tests.conftest import REPO_ROOT

DIGEST_A, DIGEST_B = "a" * 64, "b" * 64


def test_reads_pins_with_continued_hash_lines_and_comments() -> None:
    lock = parse_lock(
        f"""# header
Flask_Limiter==3.8.0 \\
    --hash=sha256:{DIGEST_A} \\
    --hash=sha256:{DIGEST_B}
numpy==2.4.6 --hash=sha256:{DIGEST_A}  # trailing comment
torch==2.13.0+cpu \\
    --hash=sha256:{DIGEST_B}
"""
    )
    assert lock.get("flask-limiter") == LockedPackage("flask-limiter", "3.8.0", (DIGEST_A, DIGEST_B))
    assert lock.get("NumPy") == LockedPackage("numpy", "2.4.6", (DIGEST_A,))
    assert lock.get("torch").version == "2.13.0+cpu"
    assert lock.get("scipy") is None


def test_a_pin_without_a_hash_is_read_so_the_audit_can_report_it() -> None:
    assert parse_lock("click==8.1.7\n").get("click").hashes == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("numpy>=2\n", "line 1: 'numpy>=2' is not an exact pin"),
        ("-e .\n", "line 1: '-e' is not an exact pin"),
        ("numpy==2.4.6 ; python_version < '3.12'\n", "line 1: ';' is not --hash"),
        (f"numpy==2.4.6 --hash=md5:{'a' * 32}\n", "is not --hash=sha256:<64 hex digits>"),
        (f"numpy==2.4.6 --hash=sha256:{'A' * 64}\n", "is not --hash=sha256"),
        (f"\n--hash=sha256:{DIGEST_A}\n", "line 2: a --hash before any pinned requirement"),
        ("numpy==2.4.6 \\\n", "the file ends inside a continued line"),
        ("numpy==2.4.6\nNumPy==2.4.7\n", "pinned more than once: numpy"),
        ("https://example.org/numpy.whl\n", "is not an exact pin"),
    ],
)
def test_refuses_what_it_does_not_understand(text: str, message: str) -> None:
    with pytest.raises(LockFileError, match=message.replace("(", r"\(").replace("+", r"\+")):
        parse_lock(text)


def test_format_then_parse_gives_back_the_same_packages() -> None:
    packages = [
        LockedPackage("zeta", "1.0", (DIGEST_A,)),
        LockedPackage("alpha", "2.0.post1", (DIGEST_A, DIGEST_B)),
    ]
    text = format_lock(packages, "generated\nby a test")
    assert text.startswith("# generated\n# by a test\nalpha==2.0.post1")
    assert parse_lock(text).packages == tuple(sorted(packages, key=lambda p: p.name))


def test_names_normalise_as_pep_503_says() -> None:
    assert normalise("Foo.Bar__baz-QUX") == "foo-bar-baz-qux"


@given(st.text(max_size=300))
def test_any_text_is_read_or_refused_with_a_lock_file_error(text: str) -> None:
    with contextlib.suppress(LockFileError):
        parse_lock(text)


def test_the_committed_lock_pins_every_distribution_with_a_hash() -> None:
    lock = parse_lock((REPO_ROOT / "requirements.lock").read_text(encoding="utf-8"))
    assert lock.get("torch") is not None and lock.get("pip") is not None
    assert all(package.hashes for package in lock.packages)
