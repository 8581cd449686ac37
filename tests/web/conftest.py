from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from flask import Flask
from flask.testing import FlaskClient

from digitguard.models.architectures import build_model
from digitguard.models.artifact import write_signed_artifact
from digitguard.web import create_app
from tests.conftest import REPO_ROOT, KeyPair
from tests.models.test_artifact import manifest_for

SHIPPED_MODEL = REPO_ROOT / "models" / "basic"


@pytest.fixture(scope="session")
def test_model_dir(tmp_path_factory: pytest.TempPathFactory, trusted_key: KeyPair) -> Path:
    """An untrained seed CNN signed by the test key: the API's plumbing, not its accuracy."""
    torch.manual_seed(0)
    model = build_model("seed-cnn")
    out = tmp_path_factory.mktemp("served") / "model"
    return write_signed_artifact(out, model, manifest_for(model), trusted_key.private)


GATE_ARCHITECTURE = "small-cnn-gate"


@pytest.fixture(scope="session")
def gate_model_dir(tmp_path_factory: pytest.TempPathFactory, trusted_key: KeyPair) -> Callable[[int], Path]:
    """``gate_model_dir(top)``: a signed 11-output gate whose top class is ``top`` for every input
    (10: "not a digit"), so a test decides what the gate reads."""
    built: dict[int, Path] = {}

    def make(top: int) -> Path:
        if top not in built:
            torch.manual_seed(0)
            model = build_model(GATE_ARCHITECTURE)
            last = model.classifier[-1]
            with torch.no_grad():  # whatever the features, the logits are the bias: 10 for ``top``
                last.weight.zero_()
                last.bias.copy_(torch.nn.functional.one_hot(torch.tensor(top), 11).float() * 10.0)
            out = tmp_path_factory.mktemp(f"gate-{top}") / "gate"
            manifest = manifest_for(model, name=f"gate-{top}", architecture=GATE_ARCHITECTURE)
            built[top] = write_signed_artifact(out, model, manifest, trusted_key.private)
        return built[top]

    return make


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'digitguard.db'}"


@pytest.fixture
def app_config(test_model_dir: Path, trusted_key: KeyPair, database_url: str) -> dict:
    return {
        "TESTING": True,
        "MODEL_DIR": str(test_model_dir),
        "TRUST_DIRS": [str(trusted_key.trust_dir)],
        "DATABASE_URL": database_url,
        "AUDIT_SIGNING_KEY_FILE": str(
            Path(database_url.removeprefix("sqlite:///")).parent / "audit-signing.pem"
        ),
        # Tests that are not about rate limits must not trip them; tests/web/test_limits.py sets its own.
        "ANONYMOUS_LIMIT": "100000/minute",
        "IP_LIMIT": "100000/minute",
        # Likewise the inference budget (tests/web/test_limits.py tests it): a loaded test machine
        # can take more than the default 2 s for an Integrated Gradients explanation.
        "INFERENCE_BUDGET_S": 60.0,
    }


@pytest.fixture
def app(app_config: dict) -> Flask:
    return create_app(app_config)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture(scope="session")
def shipped_app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    if not (SHIPPED_MODEL / "model.sig").is_file():
        pytest.fail("models/basic is missing: the release model must be committed")
    database = tmp_path_factory.mktemp("shipped") / "digitguard.db"
    # Generous limits: these tests replay thousands of requests from one address.
    return create_app(
        {
            "TESTING": True,
            "MODEL_DIR": str(SHIPPED_MODEL),
            "DATABASE_URL": f"sqlite:///{database}",
            "ANONYMOUS_LIMIT": "100000/minute",
            "IP_LIMIT": "100000/minute",
            "INFERENCE_BUDGET_S": 60.0,
        }
    )
