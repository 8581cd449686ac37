"""``digitguard supply-chain``: the lock it writes from archives, and the audit's report and exit status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from digitguard.supplychain.environment import installed_distributions
from digitguard.supplychain.lock import parse_lock
from tests.conftest import run_cli
from tests.supplychain.test_advisories import record


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code, out, err = run_cli(args, capsys)
    return code, out + err


def write_wheel(directory: Path, name: str, version: str, content: bytes) -> None:
    (directory / f"{name.replace('-', '_')}-{version}-py3-none-any.whl").write_bytes(content)


def test_lock_pins_every_installed_distribution_with_the_hash_of_its_archive(tmp_path: Path, capsys) -> None:
    archives = tmp_path / "archives"
    archives.mkdir()
    installed = installed_distributions()
    for name, version in installed.items():
        write_wheel(archives, name, version, f"{name} {version}".encode())
    out = tmp_path / "requirements.lock"
    code, output = run(["supply-chain", "lock", "--wheels", str(archives), "--out", str(out)], capsys)
    assert code == 0, output
    lock = parse_lock(out.read_text())
    assert {p.name: p.version for p in lock.packages} == installed
    assert "digitguard" not in installed  # the project is installed from the checkout, not locked


def test_lock_refuses_when_an_archive_is_missing(tmp_path: Path, capsys) -> None:
    args = ["supply-chain", "lock", "--wheels", str(tmp_path), "--out", str(tmp_path / "x")]
    code, output = run(args, capsys)
    assert code == 2
    assert "no archive to hash for" in output


def audit_args(tmp_path: Path, *extra: str) -> list[str]:
    return ["supply-chain", "audit", "--out", str(tmp_path / "out"), *extra]


def test_audit_of_this_environment_against_its_lock(tmp_path: Path, capsys) -> None:
    osv = tmp_path / "osv"
    osv.mkdir()
    advisory = record(ident="GHSA-numpy", package="numpy", versions=["0.1"])
    (osv / "GHSA-numpy.json").write_text(json.dumps(advisory))
    lock = tmp_path / "requirements.lock"
    lock.write_text(
        "".join(f"{n}=={v} --hash=sha256:{'d' * 64}\n" for n, v in installed_distributions().items())
    )
    code, _ = run(audit_args(tmp_path, "--lock", str(lock), "--osv", str(osv)), capsys)
    document = json.loads((tmp_path / "out" / "dependencies.json").read_text())
    assert document["kind"] == "supply-chain-audit"
    assert document["sources"] == {lock.as_posix(): document["lock"]["sha256"]}
    # The record's modified time is fixed, so only its age can make this audit fail.
    assert all(p["rule"] == "vulnerability-data" for p in document["problems"]), document["problems"]
    assert code == (1 if document["findings"] else 0)


def test_audit_without_vulnerability_data_exits_1_unless_told_otherwise(tmp_path: Path, capsys) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_text("")
    code, output = run(audit_args(tmp_path, "--lock", str(lock)), capsys)
    assert code == 1
    assert "not checked" in output and "unlocked" in output
    assert run(audit_args(tmp_path, "--lock", str(lock), "--exit-zero"), capsys)[0] == 0


def test_a_malformed_lock_is_a_clear_error(tmp_path: Path, capsys) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_text("numpy>=2\n")
    code, output = run(audit_args(tmp_path, "--lock", str(lock)), capsys)
    assert code == 2
    assert "is not an exact pin" in output
    assert not (tmp_path / "out").exists()


def test_a_lock_that_is_not_text_is_a_clear_error(tmp_path: Path, capsys) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_bytes(b"numpy==2.4.6 \xff\xfe\n")
    code, output = run(audit_args(tmp_path, "--lock", str(lock)), capsys)
    assert (code, "not UTF-8 text" in output, "Traceback" in output) == (2, True, False)
