"""The model manifest: what a model is, how it was made, and how well it did.

``manifest.json`` is written with sorted keys so that the same manifest
always has the same bytes (the signature covers them).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from digitguard.errors import ManifestError

MANIFEST_FILE = "manifest.json"
WEIGHTS_FILE = "model.safetensors"
MANIFEST_FORMAT = "digitguard-model/1"
MAX_MANIFEST_BYTES = 1 << 20


@dataclass(frozen=True)
class ModelManifest:
    name: str
    architecture: str
    parameter_count: int
    weights_sha256: str
    data: dict[str, Any]  # {"files": {name: sha256}, "verified": bool, "allow_unverified": bool}
    training: dict[str, Any]
    metrics: dict[str, Any]
    environment: dict[str, str]
    git_commit: str | None
    created_at: str
    created_by: str
    format: str = MANIFEST_FORMAT
    weights_file: str = WEIGHTS_FILE

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = MANIFEST_FILE) -> ModelManifest:
        try:
            values = json.loads(text)
        except ValueError as exc:
            raise ManifestError(f"{source}: not valid JSON: {exc}") from exc
        if not isinstance(values, dict):
            raise ManifestError(f"{source}: must be a JSON object")
        fields = {field.name: field for field in dataclasses.fields(cls)}
        missing = sorted(
            name for name, f in fields.items() if name not in values and f.default is dataclasses.MISSING
        )
        unknown = sorted(set(values) - set(fields))
        if missing or unknown:
            raise ManifestError(f"{source}: missing fields {missing}, unknown fields {unknown}")
        manifest = cls(**values)
        manifest._check_types(source)
        return manifest

    def _check_types(self, source: str) -> None:
        if self.format != MANIFEST_FORMAT:
            raise ManifestError(f"{source}: format {self.format!r} is not {MANIFEST_FORMAT!r}")
        if self.weights_file != WEIGHTS_FILE:
            raise ManifestError(f"{source}: weights_file must be {WEIGHTS_FILE!r}")
        expected = {
            "name": str,
            "architecture": str,
            "parameter_count": int,
            "weights_sha256": str,
            "data": dict,
            "training": dict,
            "metrics": dict,
            "environment": dict,
            "created_at": str,
            "created_by": str,
        }
        for name, kind in expected.items():
            if not isinstance(getattr(self, name), kind):
                raise ManifestError(f"{source}: field {name!r} must be {kind.__name__}")
