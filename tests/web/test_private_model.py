"""A differentially private scatter-cnn model is served, and the page states its guarantee."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from digitguard.models.architectures import build_model
from digitguard.models.artifact import write_signed_artifact
from digitguard.web import create_app
from tests.conftest import KeyPair
from tests.models.test_artifact import manifest_for
from tests.web.test_api import drawing_png

PRIVACY = {"epsilon": 2.9973, "delta": 1e-05, "noise_multiplier": 1.4142, "max_grad_norm": 0.1}


@pytest.fixture
def private_app(tmp_path: Path, trusted_key: KeyPair, app_config: dict):
    torch.manual_seed(0)
    model = build_model("scatter-cnn")
    manifest = manifest_for(model, architecture="scatter-cnn", training={"seed": 0, "privacy": PRIVACY})
    model_dir = write_signed_artifact(tmp_path / "private", model, manifest, trusted_key.private)
    return create_app({**app_config, "MODEL_DIR": str(model_dir)})


def test_the_page_states_the_privacy_guarantee_of_the_served_model(private_app) -> None:
    page = private_app.test_client().get("/").get_data(as_text=True)
    assert "trained with differential privacy: ε = 3.00, δ = 1e-05" in page
    assert "noise multiplier 1.41, clipping norm 0.1" in page


def test_a_model_without_dp_says_so(client) -> None:
    assert "trained without differential privacy" in client.get("/").get_data(as_text=True)


def test_a_scatter_cnn_answers_predictions_with_an_explanation(private_app) -> None:
    response = private_app.test_client().post(
        "/api/v1/predict?details=1", data=drawing_png(), headers={"Content-Type": "image/png"}
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert len(body["probabilities"]) == 10
    explanation = torch.tensor(body["explanation"])  # Integrated Gradients through the scattering
    assert explanation.shape == (28, 28) and explanation.abs().sum() > 0
