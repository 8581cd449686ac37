"""Known vulnerabilities from an offline copy of the OSV database (https://osv.dev), PyPI ecosystem.

OSV publishes every PyPI advisory as one zip of JSON records
(``https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip``); the audit reads that zip, or
a directory of the records, and never the network, so it runs the same on an air-gapped build
machine as anywhere else. A version is affected when the record lists it under ``versions`` or
an ``ECOSYSTEM`` range covers it (``introduced`` ≤ v < ``fixed``, or v ≤ ``last_affected``);
withdrawn records are ignored. A record this module cannot read is an error, not a skip.
"""

from __future__ import annotations

import datetime as dt
import json
import zipfile
import zlib
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from digitguard.errors import AdvisoryDataError
from digitguard.supplychain.lock import normalise

MAX_RECORD_BYTES = 2 * 1024 * 1024  # the largest PyPI record is tens of kilobytes; this bounds a bomb


@dataclass(frozen=True)
class Advisory:
    id: str
    aliases: tuple[str, ...]
    summary: str
    fixed: tuple[str, ...]  # versions that fix it, where the record names them
    affected_versions: frozenset[str]
    ranges: tuple[tuple[Mapping[str, str], ...], ...]  # each ECOSYSTEM range's events

    def affects(self, version: str) -> bool:
        if version in self.affected_versions:
            return True
        parsed = Version(version)
        return any(_in_range(parsed, events) for events in self.ranges)


@dataclass(frozen=True)
class AdvisoryDatabase:
    source: str
    records: int
    newest_modified: dt.datetime | None  # a lower bound on when the copy was taken
    by_package: Mapping[str, tuple[Advisory, ...]]

    def affecting(self, name: str, version: str) -> list[Advisory]:
        return [a for a in self.by_package.get(normalise(name), ()) if a.affects(version)]


def load_database(path: Path) -> AdvisoryDatabase:
    """Read OSV records from a zip (OSV's ``all.zip``) or a directory of ``*.json`` files."""
    documents: Iterable[tuple[str, bytes]]
    if path.is_dir():
        documents = [(p.name, p.read_bytes()) for p in sorted(path.glob("*.json"))]
    elif zipfile.is_zipfile(path):
        documents = _zip_members(path)
    else:
        raise AdvisoryDataError(f"{path}: neither a directory of OSV records nor a zip of them")
    return build_database(str(path), documents)


def build_database(source: str, documents: Iterable[tuple[str, bytes]]) -> AdvisoryDatabase:
    by_package: dict[str, list[Advisory]] = defaultdict(list)
    count, newest = 0, None
    for name, raw in documents:
        record = _parse_record(name, raw)
        count += 1
        modified = _timestamp(name, record.get("modified"))
        newest = modified if newest is None or modified > newest else newest
        if record.get("withdrawn"):
            continue
        try:
            for package, advisory in _advisories(name, record):
                by_package[package].append(advisory)
        except (AttributeError, TypeError, KeyError) as exc:  # a field of the wrong JSON type
            raise AdvisoryDataError(f"{name}: not an OSV record ({type(exc).__name__}: {exc})") from None
    if count == 0:
        raise AdvisoryDataError(f"{source}: no OSV records")
    return AdvisoryDatabase(source, count, newest, {k: tuple(v) for k, v in by_package.items()})


def _zip_members(path: Path) -> Iterator[tuple[str, bytes]]:
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.infolist():
                if member.is_dir() or not member.filename.endswith(".json"):
                    continue
                if member.file_size > MAX_RECORD_BYTES:
                    raise AdvisoryDataError(
                        f"{member.filename}: {member.file_size} bytes, over the record limit"
                    )
                with archive.open(member) as stream:
                    data = stream.read(MAX_RECORD_BYTES + 1)
                if len(data) > MAX_RECORD_BYTES:  # the header understated the size
                    raise AdvisoryDataError(f"{member.filename}: over the record limit")
                yield member.filename, data
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise AdvisoryDataError(f"{path}: a damaged zip ({exc})") from None


def _parse_record(name: str, raw: bytes) -> dict[str, Any]:
    try:
        record = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AdvisoryDataError(f"{name}: not JSON ({exc})") from None
    if not isinstance(record, dict) or not isinstance(record.get("id"), str):
        raise AdvisoryDataError(f"{name}: not an OSV record (no string 'id')")
    return record


def _advisories(name: str, record: dict[str, Any]) -> Iterator[tuple[str, Advisory]]:
    for affected in record.get("affected") or ():
        package = affected.get("package") or {}
        if package.get("ecosystem") != "PyPI" or not isinstance(package.get("name"), str):
            continue
        ranges = tuple(
            tuple(_checked_events(name, r.get("events") or ()))
            for r in affected.get("ranges") or ()
            if r.get("type") == "ECOSYSTEM"
        )
        fixed = tuple(e["fixed"] for events in ranges for e in events if "fixed" in e)
        yield (
            normalise(package["name"]),
            Advisory(
                id=record["id"],
                aliases=tuple(str(a) for a in record.get("aliases") or ()),
                summary=str(record.get("summary") or record.get("details") or "")[:200],
                fixed=fixed,
                affected_versions=frozenset(str(v) for v in affected.get("versions") or ()),
                ranges=ranges,
            ),
        )


_EVENT_KINDS = ("introduced", "fixed", "last_affected", "limit")


def _checked_events(name: str, events: Iterable[Any]) -> Iterator[Mapping[str, str]]:
    for event in events:
        kinds = [k for k in _EVENT_KINDS if isinstance(event, dict) and k in event]
        if len(kinds) != 1:
            raise AdvisoryDataError(f"{name}: range event {event!r} is not one of {', '.join(_EVENT_KINDS)}")
        value = str(event[kinds[0]])
        if not (kinds[0] == "introduced" and value == "0"):
            try:
                Version(value)
            except InvalidVersion:
                raise AdvisoryDataError(
                    f"{name}: {kinds[0]} version {value!r} is not a PyPI version"
                ) from None
        yield {kinds[0]: value}


def _in_range(version: Version, events: tuple[Mapping[str, str], ...]) -> bool:
    """OSV's evaluation: the state set by the last event at or below ``version``, in version order."""
    affected = False
    for event in sorted(events, key=_event_order):
        kind, value = next(iter(event.items()))
        bound = Version("0") if value == "0" else Version(value)
        if kind == "introduced" and version >= bound:
            affected = True
        elif (kind in ("fixed", "limit") and version >= bound) or (
            kind == "last_affected" and version > bound
        ):
            affected = False
    return affected


def _event_order(event: Mapping[str, str]) -> tuple[Version, int]:
    kind, value = next(iter(event.items()))
    return (Version("0") if value == "0" else Version(value), _EVENT_KINDS.index(kind))


def _timestamp(name: str, value: object) -> dt.datetime:
    if not isinstance(value, str):
        raise AdvisoryDataError(f"{name}: no 'modified' timestamp")
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise AdvisoryDataError(f"{name}: 'modified' {value!r} is not an ISO 8601 timestamp") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
