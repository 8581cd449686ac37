"""The hash lock: every distribution the environment may hold, its exact version and archive hashes.

The format is pip's hash-checking requirements file, so ``pip install --require-hashes -r
requirements.lock`` enforces it at install time (pip refuses any archive whose SHA-256 is not
listed), and this module reads it back for the audit::

    # comment
    numpy==2.4.6 \\
        --hash=sha256:0123…

Only that subset is accepted: a ``name==version`` pin, then ``--hash=sha256:HEX`` options. Any
other line (ranges, markers, URLs, ``-e``, other options) is refused with its line number — a lock
this parser half-understood would let through what the lock was meant to stop.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from digitguard.errors import LockFileError

_PIN = re.compile(r"^(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)==(?P<version>[A-Za-z0-9.+!_-]+)$")
_HASH = re.compile(r"^--hash=sha256:(?P<digest>[0-9a-f]{64})$")


def normalise(name: str) -> str:
    """PEP 503 normalised project name: ``Flask_Limiter`` and ``flask-limiter`` are one project."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class LockedPackage:
    name: str  # normalised
    version: str
    hashes: tuple[str, ...]  # SHA-256 hex digests of the archives pip may install


@dataclass(frozen=True)
class Lock:
    packages: tuple[LockedPackage, ...]

    def get(self, name: str) -> LockedPackage | None:
        wanted = normalise(name)
        return next((p for p in self.packages if p.name == wanted), None)


def parse_lock(text: str) -> Lock:
    """Read a hash-pinned requirements file; :class:`LockFileError` names the first bad line."""
    packages: list[LockedPackage] = []
    current: tuple[str, str, list[str]] | None = None
    for number, tokens in _logical_lines(text):
        head, options = tokens[0], tokens[1:]
        if head.startswith("--hash="):
            if current is None:
                raise LockFileError(f"line {number}: a --hash before any pinned requirement")
            options = tokens
        else:
            if current is not None:
                packages.append(_package(current))
            pin = _PIN.match(head)
            if pin is None:
                raise LockFileError(f"line {number}: {head!r} is not an exact pin (name==version)")
            current = (normalise(pin["name"]), pin["version"], [])
        for option in options:
            digest = _HASH.match(option)
            if digest is None:
                raise LockFileError(f"line {number}: {option!r} is not --hash=sha256:<64 hex digits>")
            current[2].append(digest["digest"])
    if current is not None:
        packages.append(_package(current))
    names = [p.name for p in packages]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise LockFileError(f"pinned more than once: {', '.join(duplicated)}")
    return Lock(tuple(packages))


def format_lock(packages: list[LockedPackage], header: str) -> str:
    """The lock file text for ``packages`` (sorted by name), after a ``#`` comment header."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    for package in sorted(packages, key=lambda p: p.name):
        hashes = [f"    --hash=sha256:{digest}" for digest in package.hashes]
        lines.append(" \\\n".join([f"{package.name}=={package.version}", *hashes]))
    return "\n".join(lines) + "\n"


def _package(current: tuple[str, str, list[str]]) -> LockedPackage:
    name, version, hashes = current
    return LockedPackage(name, version, tuple(dict.fromkeys(hashes)))


def _logical_lines(text: str) -> list[tuple[int, list[str]]]:
    """(first physical line number, tokens) of each logical line: comments dropped, ``\\`` joined."""
    joined: list[tuple[int, list[str]]] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0] if not raw.lstrip().startswith("#") else ""
        if not pending:
            start = number
        continued = line.rstrip().endswith("\\")
        pending.extend(line.rstrip().removesuffix("\\").split())
        if not continued and pending:
            joined.append((start, pending))
            pending = []
    if pending:
        raise LockFileError(f"line {start}: the file ends inside a continued line")
    return joined
