from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digitguard.errors import ManifestError
from digitguard.models.manifest import ModelManifest

GOLDEN = Path(__file__).parent / "golden" / "manifest.json"


def golden_manifest() -> ModelManifest:
    return ModelManifest(
        name="basic",
        architecture="seed-cnn",
        parameter_count=1_199_882,
        weights_sha256="ab" * 32,
        data={"files": {"t10k-labels-idx1-ubyte.gz": "cd" * 32}, "verified": True, "allow_unverified": False},
        training={"epochs": 15, "seed": 0},
        metrics={"test_accuracy": 0.9942},
        environment={"torch": "2.13.0+cpu"},
        git_commit="0" * 40,
        created_at="2026-11-23T00:00:00+00:00",
        created_by="release@digitguard",
    )


class TestManifestEncoding:
    def test_encoding_matches_the_golden_file(self) -> None:
        assert golden_manifest().to_json() == GOLDEN.read_text()

    def test_round_trips(self) -> None:
        assert ModelManifest.from_json(golden_manifest().to_json()) == golden_manifest()

    @pytest.mark.parametrize(
        ("text", "rule"),
        [
            ("[]", "must be a JSON object"),
            ("{", "not valid JSON"),
            ('{"name": "x"}', "missing fields"),
        ],
    )
    def test_malformed_manifests_name_the_rule(self, text: str, rule: str) -> None:
        with pytest.raises(ManifestError, match=rule):
            ModelManifest.from_json(text)

    def test_a_field_of_the_wrong_type_is_refused(self) -> None:
        text = golden_manifest().to_json().replace('"parameter_count": 1199882', '"parameter_count": "many"')
        with pytest.raises(ManifestError, match="'parameter_count' must be int"):
            ModelManifest.from_json(text)

    def test_an_unknown_format_version_is_refused(self) -> None:
        text = golden_manifest().to_json().replace("digitguard-model/1", "digitguard-model/99")
        with pytest.raises(ManifestError, match="format"):
            ModelManifest.from_json(text)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


class TestFuzzing:
    @settings(max_examples=300, deadline=None)
    @given(
        changes=st.dictionaries(st.sampled_from(sorted(golden_manifest().__dataclass_fields__)), json_values)
    )
    def test_any_field_values_give_a_manifest_or_a_manifest_error(self, changes: dict) -> None:
        values = {**json.loads(golden_manifest().to_json()), **changes}
        with contextlib.suppress(ManifestError):
            ModelManifest.from_json(json.dumps(values))

    @settings(max_examples=200, deadline=None)
    @given(text=st.text(max_size=300))
    def test_arbitrary_text_gives_a_manifest_error(self, text: str) -> None:
        with pytest.raises(ManifestError):
            ModelManifest.from_json(text)
