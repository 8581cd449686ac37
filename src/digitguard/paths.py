"""Where digitguard keeps its state by default (database, generated secret key)."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

INSTANCE_DIR_ENV = "DIGITGUARD_INSTANCE_DIR"


def instance_dir() -> Path:
    """``$DIGITGUARD_INSTANCE_DIR``, else ``instance/`` in a source checkout, else the user data dir."""
    if os.environ.get(INSTANCE_DIR_ENV):
        return Path(os.environ[INSTANCE_DIR_ENV])
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file():
        return checkout / "instance"
    return Path(platformdirs.user_data_dir("digitguard"))


def default_database_url() -> str:
    return os.environ.get("DIGITGUARD_DATABASE_URL") or f"sqlite:///{instance_dir() / 'digitguard.db'}"
