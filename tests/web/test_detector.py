"""The adversarial-input detector in serving: an abstention signal, recorded in the trail."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from digitguard.attacks.pgd import PGD
from digitguard.data import mnist
from digitguard.web import ConfigError, create_app
from tests.conftest import SHARED_MNIST
from tests.web.conftest import SHIPPED_MODEL
from tests.web.test_trail import records


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    if not (Path(SHARED_MNIST) / "SHA256SUMS").is_file():
        pytest.skip(f"the MNIST copy is not at {SHARED_MNIST}")
    test = mnist.load(SHARED_MNIST).test
    images = torch.from_numpy(test.images[:8].copy()).float().div(255).unsqueeze(1)
    return images, torch.from_numpy(test.labels[:8].astype(np.int64))


@pytest.fixture
def shipped_config(tmp_path: Path) -> dict:
    return {
        "TESTING": True,
        "MODEL_DIR": str(SHIPPED_MODEL),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'digitguard.db'}",
        "ANONYMOUS_LIMIT": "100000/minute",
    }


def predict(client, image: torch.Tensor) -> dict:
    response = client.post("/api/v1/predict", json={"pixels": image[0].tolist()})
    assert response.status_code == 200
    return response.get_json()


def test_a_clean_digit_is_answered_and_an_adversarial_one_is_flagged(shipped_config: dict, digits) -> None:
    torch.set_num_threads(1)
    app = create_app(shipped_config)
    predictor = app.extensions["digitguard"]
    assert predictor.detector is not None  # models/basic carries a calibration
    images, labels = digits
    clean = predict(app.test_client(), images[0])
    assert clean["digit"] == int(labels[0]) and clean["flagged_adversarial"] is False
    assert 0 <= clean["detector_score"] <= predictor.detector.threshold
    adversarial = PGD(predictor.model, 0.3, steps=20)(images[:1], labels[:1])
    attacked = predict(app.test_client(), adversarial[0])
    assert attacked["flagged_adversarial"] is True and attacked["abstained"] is True
    assert attacked["digit"] is None and attacked["detector_score"] > predictor.detector.threshold
    recorded = [r.details for r in records(app) if r.kind == "prediction"]
    assert [d["flagged_adversarial"] for d in recorded] == [False, True]
    assert recorded[1]["detector_scores"]["feature_squeezing"] == attacked["detector_score"]


def test_switched_off_there_is_no_score(shipped_config: dict, digits) -> None:
    app = create_app({**shipped_config, "ADVERSARIAL_DETECTOR": "off"})
    answer = predict(app.test_client(), digits[0][0])
    assert answer["detector_score"] is None and answer["flagged_adversarial"] is False


def test_on_refuses_a_model_without_a_calibration(app_config: dict) -> None:
    with pytest.raises(ConfigError, match="no adversarial_detector calibration"):
        create_app({**app_config, "ADVERSARIAL_DETECTOR": "on"})
    assert create_app(app_config).extensions["digitguard"].detector is None  # auto: none to use


def test_an_unknown_switch_value_stops_the_app(app_config: dict) -> None:
    with pytest.raises(ConfigError, match="ADVERSARIAL_DETECTOR must be one of"):
        create_app({**app_config, "ADVERSARIAL_DETECTOR": "maybe"})


def test_an_ensemble_is_served_and_recorded_member_by_member(
    shipped_config: dict, digits, app_config
) -> None:
    member = app_config["MODEL_DIR"]  # the untrained test model, signed by the test key
    app = create_app(
        {**shipped_config, "ENSEMBLE_MODEL_DIRS": [member], "TRUST_DIRS": app_config["TRUST_DIRS"]}
    )
    predictor = app.extensions["digitguard"]
    assert len(predictor.member_sha256s) == 2
    answer = predict(app.test_client(), digits[0][0])
    recorded = [r.details for r in records(app) if r.kind == "prediction"][-1]
    assert recorded["ensemble_sha256s"] == list(predictor.member_sha256s)
    # An untrained member pulls the mean towards uniform: the ensemble is less sure than the model alone.
    alone = predict(create_app(shipped_config).test_client(), digits[0][0])
    assert answer["confidence"] < alone["confidence"]
