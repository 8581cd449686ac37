"""Where trusted public keys come from.

The project's release keys live in ``trust/`` at the repository root (and are
installed as ``digitguard/trust`` in a wheel). More directories come from the
``DIGITGUARD_TRUST_DIRS`` environment variable (``os.pathsep``-separated) and
from ``--trust`` options.
"""

from __future__ import annotations

import os
from pathlib import Path

from digitguard.models.signing import TrustStore

TRUST_DIRS_ENV = "DIGITGUARD_TRUST_DIRS"


def builtin_trust_dir() -> Path:
    installed = Path(__file__).resolve().parents[1] / "trust"
    if installed.is_dir():
        return installed
    return Path(__file__).resolve().parents[3] / "trust"  # source checkout: <repo>/trust


def trust_dirs(extra: list[Path] | None = None) -> list[Path]:
    from_env = [Path(p) for p in os.environ.get(TRUST_DIRS_ENV, "").split(os.pathsep) if p]
    return [builtin_trust_dir(), *from_env, *(extra or [])]


def trust_store(extra: list[Path] | None = None) -> TrustStore:
    return TrustStore.from_dirs([d for d in trust_dirs(extra) if d.is_dir()])
