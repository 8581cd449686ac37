"""Reading OSV records and deciding which versions they affect."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import zipfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digitguard.errors import AdvisoryDataError
from digitguard.supplychain.advisories import MAX_RECORD_BYTES, build_database, load_database


def record(
    ident: str = "GHSA-test",
    package: str = "Jinja2",
    ranges: list | None = None,
    versions: list | None = None,
    **extra,
) -> dict:
    affected = {"package": {"ecosystem": "PyPI", "name": package}}
    if ranges is not None:
        affected["ranges"] = [{"type": "ECOSYSTEM", "events": events} for events in ranges]
    if versions is not None:
        affected["versions"] = versions
    document = {"id": ident, "modified": "2026-11-30T12:00:00Z", "summary": "a test", "affected": [affected]}
    return {**document, **extra}


def database(*records: dict):
    return build_database("test", [(f"{r['id']}.json", json.dumps(r).encode()) for r in records])


@pytest.mark.parametrize(
    ("events", "affected", "safe"),
    [
        ([{"introduced": "0"}, {"fixed": "3.1.3"}], ["2.0", "3.1.2", "3.1.3rc1"], ["3.1.3", "3.2"]),
        ([{"introduced": "2.0"}, {"fixed": "2.5"}], ["2.0", "2.4.9"], ["1.9", "2.5", "3.0"]),
        ([{"introduced": "1.0"}, {"last_affected": "1.4"}], ["1.0", "1.4"], ["0.9", "1.4.1", "2.0"]),
        ([{"introduced": "0"}], ["0.1", "99.0"], []),
        (
            [{"introduced": "1.0"}, {"fixed": "1.2"}, {"introduced": "2.0"}, {"fixed": "2.1"}],
            ["1.1", "2.0.5"],
            ["1.2", "1.9", "2.1"],
        ),
    ],
)
def test_ecosystem_ranges_follow_osv_evaluation(events, affected, safe) -> None:
    db = database(record(ranges=[events]))
    for version in affected:
        assert db.affecting("jinja2", version), version
    for version in safe:
        assert not db.affecting("jinja2", version), version


def test_listed_versions_count_and_names_are_normalised() -> None:
    db = database(record(package="Flask_Limiter", versions=["3.8.0"]))
    assert [a.id for a in db.affecting("flask-limiter", "3.8.0")] == ["GHSA-test"]
    assert db.affecting("flask-limiter", "3.8.1") == []


def test_withdrawn_records_and_other_ecosystems_are_ignored() -> None:
    npm = record(ident="npm-1", versions=["1.0"])
    npm["affected"][0]["package"]["ecosystem"] = "npm"
    db = database(record(versions=["1.0"], withdrawn="2026-11-01T00:00:00Z"), npm)
    assert db.affecting("jinja2", "1.0") == []
    assert db.records == 2


def test_the_newest_modified_time_is_kept() -> None:
    older = record(ident="old", versions=["1"], modified="2020-01-01T00:00:00Z")
    db = database(older, record(versions=["1"]))
    assert db.newest_modified == dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "not JSON"),
        (b"[]", "no string 'id'"),
        (json.dumps({"id": "x"}).encode(), "no 'modified' timestamp"),
        (json.dumps(record(modified="yesterday")).encode(), "not an ISO 8601 timestamp"),
        (json.dumps(record(ranges=[[{"introduced": "0", "fixed": "1"}]])).encode(), "is not one of"),
        (json.dumps(record(ranges=[[{"fixed": "not a version"}]])).encode(), "is not a PyPI version"),
    ],
)
def test_a_record_it_cannot_read_is_an_error_not_a_skip(raw: bytes, message: str) -> None:
    with pytest.raises(AdvisoryDataError, match=message):
        build_database("test", [("bad.json", raw)])


def test_an_empty_database_is_refused() -> None:
    with pytest.raises(AdvisoryDataError, match="no OSV records"):
        build_database("empty", [])


def test_reads_osvs_zip_and_a_directory_of_records(tmp_path: Path) -> None:
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("GHSA-test.json", json.dumps(record(versions=["1.0"])))
        zipped.writestr("README.txt", "ignored")
    directory = tmp_path / "records"
    directory.mkdir()
    (directory / "GHSA-test.json").write_text(json.dumps(record(versions=["1.0"])))
    for path in (archive, directory):
        assert load_database(path).affecting("jinja2", "1.0")


def test_an_oversized_zip_member_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("big.json", b" " * (MAX_RECORD_BYTES + 1))
    with pytest.raises(AdvisoryDataError, match="over the record limit"):
        load_database(archive)


def test_a_file_that_is_neither_zip_nor_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "osv.json").write_text("{}")
    with pytest.raises(AdvisoryDataError, match="neither a directory"):
        load_database(tmp_path / "osv.json")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
FIELDS = st.fixed_dictionaries(
    {"id": st.just("X"), "modified": st.just("2026-11-30T00:00:00Z")},
    optional={"affected": JSON, "withdrawn": JSON, "aliases": JSON, "summary": JSON},
)


@given(st.one_of(JSON, FIELDS, FIELDS.map(lambda r: {**r, "affected": [{"package": {"ecosystem": "PyPI"}}]})))
def test_any_json_is_read_or_refused_with_an_advisory_data_error(document) -> None:
    with contextlib.suppress(AdvisoryDataError):
        database_ = build_database("fuzz", [("x.json", json.dumps(document).encode())])
        database_.affecting("x", "1.0")


def test_a_damaged_zip_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("GHSA-test.json", json.dumps(record(versions=["1.0"])) * 50)
    data = bytearray(archive.read_bytes())
    data[60:90] = b"\x00" * 30  # inside the compressed record
    archive.write_bytes(bytes(data))
    with pytest.raises(AdvisoryDataError):
        load_database(archive)
