"""What the running interpreter has installed, and the archives a lock is built from."""

from __future__ import annotations

import hashlib
import importlib.metadata
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from digitguard.errors import LockFileError
from digitguard.supplychain.lock import LockedPackage, normalise

PROJECT = "digitguard"  # installed from the checkout itself (editable), so never in its own lock

# A wheel is NAME-VERSION-(BUILD-)?PYTAG-ABITAG-PLATFORM.whl; an sdist NAME-VERSION.tar.gz or .zip.
_WHEEL = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)-.+\.whl$")
_SDIST = re.compile(r"^(?P<name>.+)-(?P<version>[^-]+)\.(?:tar\.gz|zip)$")


def installed_distributions(paths: Iterable[str] | None = None) -> dict[str, str]:
    """Normalised name → version of every distribution on ``paths`` (default ``sys.path``)."""
    found: dict[str, str] = {}
    search = (
        importlib.metadata.distributions()
        if paths is None
        else importlib.metadata.distributions(path=list(paths))
    )
    for distribution in search:
        name = distribution.metadata["Name"]
        if name and normalise(name) != PROJECT:
            found.setdefault(normalise(name), distribution.version)  # the first on the path wins
    return found


def archive_hashes(directory: Path) -> dict[tuple[str, str], list[str]]:
    """(normalised name, version) → SHA-256 of each wheel or sdist in ``directory`` (``pip download``)."""
    hashes: dict[tuple[str, str], list[str]] = {}
    for path in sorted(directory.iterdir()):
        parsed = _WHEEL.match(path.name) or _SDIST.match(path.name)
        if parsed is None or not path.is_file():
            continue
        key = (normalise(parsed["name"]), parsed["version"])
        hashes.setdefault(key, []).append(hashlib.sha256(path.read_bytes()).hexdigest())
    return hashes


def lock_packages(
    installed: Mapping[str, str], archives: Mapping[tuple[str, str], list[str]]
) -> list[LockedPackage]:
    """One pin per installed distribution with the hashes of its archives; refuses any without one."""
    missing = sorted(f"{n}=={v}" for n, v in installed.items() if (n, v) not in archives)
    if missing:
        raise LockFileError(f"no archive to hash for: {', '.join(missing)} (pip download them first)")
    return [LockedPackage(n, v, tuple(archives[(n, v)])) for n, v in sorted(installed.items())]
