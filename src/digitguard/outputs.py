"""Writing result files: each through a temporary name and a rename, so a reader never sees half.

Shared by the commands that write measured results (``attack``, ``detector evaluate``,
``trigger evaluate``, ``privacy audit``, ``privacy lira``, ``redteam extract``, ``redteam replay``,
``report``, ``threats report``).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def json_bytes(document: Any) -> bytes:
    return (json.dumps(document, indent=2) + "\n").encode("utf-8")


def figure_png(figure: Figure) -> bytes:
    figure.tight_layout()
    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    return buffer.getvalue()


def write_outputs(out: Path, files: Mapping[str, bytes | str]) -> None:
    """Create ``out`` if needed and write every ``name → content`` in it atomically."""
    out.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        partial = out / f".{name}.part"
        partial.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        os.replace(partial, out / name)
