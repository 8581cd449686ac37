"""Options several commands share (kept apart from ``cli.py`` so sub-command modules can import them)."""

from __future__ import annotations

from pathlib import Path

import click

DATA_DIR_ENV = "DIGITGUARD_DATA_DIR"

data_dir_option = click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help=f"MNIST directory (default: ${DATA_DIR_ENV} or the per-user cache directory).",
)
trust_option = click.option(
    "--trust",
    "trust_dirs",
    multiple=True,
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="Extra directory of trusted public keys (repeatable); trust/ is always used.",
)
