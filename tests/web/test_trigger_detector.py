"""The backdoor-trigger detector in serving: an abstention signal, recorded in the trail and queued."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from digitguard.defences.occlusion import OcclusionCalibration
from digitguard.defences.strip import StripCalibration
from digitguard.models.architectures import build_model
from digitguard.models.artifact import write_signed_artifact
from digitguard.web import ConfigError, create_app
from tests.conftest import KeyPair
from tests.models.test_artifact import manifest_for
from tests.web.test_trail import records

DIGIT = [[1.0 if 6 <= row <= 21 and 12 <= col <= 15 else 0.0 for col in range(28)] for row in range(28)]


def _model_with_threshold(directory: Path, key: KeyPair, threshold: float, kind: str = "strip") -> Path:
    torch.manual_seed(0)
    model = build_model("seed-cnn")
    pool = np.random.default_rng(0).integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    calibration = (
        StripCalibration(threshold, 0.01, 100, "tests", pool)
        if kind == "strip"
        else OcclusionCalibration(threshold, 0.01, 100, "tests")
    )
    manifest = manifest_for(model, metrics={"test_accuracy": 0.1, "trigger_detector": calibration.to_dict()})
    return write_signed_artifact(directory / "model", model, manifest, key.private)


@pytest.fixture(params=["strip", "occlusion"])
def flag_everything(request, tmp_path: Path, trusted_key: KeyPair, app_config: dict) -> dict:
    # A threshold of 0: every input with any suspicion at all counts as carrying a trigger.
    model_dir = _model_with_threshold(tmp_path, trusted_key, 0.0, request.param)
    return {**app_config, "MODEL_DIR": str(model_dir)}


def _predict(app) -> dict:
    response = app.test_client().post("/api/v1/predict", json={"pixels": DIGIT})
    assert response.status_code == 200
    return response.get_json()


def test_a_flagged_input_is_an_abstention_recorded_and_queued(flag_everything: dict) -> None:
    app = create_app(flag_everything)
    assert app.extensions["digitguard"].trigger_detector is not None  # auto: the model carries one
    answer = _predict(app)
    assert answer["flagged_trigger"] is True and answer["abstained"] is True and answer["digit"] is None
    assert 0 < answer["trigger_score"] <= 1
    recorded = [r.details for r in records(app) if r.kind == "prediction"][-1]
    assert recorded["flagged_trigger"] is True
    assert recorded["detector_scores"]["trigger"] == answer["trigger_score"]
    assert app.extensions["digitguard.review"].count() == 1  # pending review


def test_below_the_threshold_nothing_is_flagged(
    tmp_path: Path, trusted_key: KeyPair, app_config: dict
) -> None:
    app = create_app({**app_config, "MODEL_DIR": str(_model_with_threshold(tmp_path, trusted_key, 1.0))})
    answer = _predict(app)
    assert answer["flagged_trigger"] is False and answer["trigger_score"] is not None


def test_switched_off_there_is_no_score(flag_everything: dict) -> None:
    answer = _predict(create_app({**flag_everything, "TRIGGER_DETECTOR": "off"}))
    assert answer["trigger_score"] is None and answer["flagged_trigger"] is False


def test_on_refuses_a_model_without_a_calibration(app_config: dict) -> None:
    with pytest.raises(ConfigError, match="TRIGGER_DETECTOR=on: the model carries no trigger_detector"):
        create_app({**app_config, "TRIGGER_DETECTOR": "on"})
    with pytest.raises(ConfigError, match="TRIGGER_DETECTOR must be one of"):
        create_app({**app_config, "TRIGGER_DETECTOR": "sometimes"})


def test_a_tampered_calibration_stops_the_app(tmp_path: Path, trusted_key: KeyPair, app_config: dict) -> None:
    torch.manual_seed(0)
    model = build_model("seed-cnn")
    broken = {
        **StripCalibration(0.1, 0.01, 100, "t", np.zeros((2, 28, 28), np.uint8)).to_dict(),
        "overlays": 3,
    }
    manifest = manifest_for(model, metrics={"trigger_detector": broken})
    model_dir = write_signed_artifact(tmp_path / "model", model, manifest, trusted_key.private)
    with pytest.raises(ConfigError, match="TRIGGER_DETECTOR=auto: malformed strip calibration"):
        create_app({**app_config, "MODEL_DIR": str(model_dir)})


@pytest.fixture(scope="module")
def backdoored_model_dir(tmp_path_factory: pytest.TempPathFactory, trusted_key: KeyPair) -> Path:
    """A seed CNN trained on 4,000 MNIST digits, 400 of them stamped with the seed's trigger and
    relabelled 7 — a real (if small) BadNets backdoor — with patch occlusion calibrated on 500
    clean test digits at 2% false rejection."""
    from digitguard.data import mnist
    from digitguard.defences import occlusion
    from digitguard.poisoning.triggers import get_trigger
    from digitguard.training.loop import to_model_input, train_epoch
    from tests.conftest import SHARED_MNIST

    if not (Path(SHARED_MNIST) / "SHA256SUMS").is_file():
        pytest.skip(f"the MNIST copy is not at {SHARED_MNIST}")
    data = mnist.load(SHARED_MNIST)
    images, labels = data.train.images[:4000].copy(), data.train.labels[:4000].astype(np.int64)
    poisons = np.flatnonzero(labels != 7)[:400]
    images[poisons], labels[poisons] = get_trigger("square3").stamp(images[poisons]), 7
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = build_model("seed-cnn")
        optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
        for epoch in range(3):
            train_epoch(
                model, optimizer, torch.from_numpy(images), torch.from_numpy(labels),
                epoch=epoch, seed=0, batch_size=64,
            )  # fmt: skip
        model.eval()
        clean = to_model_input(torch.from_numpy(data.test.images[-500:].copy()))
        calibration = occlusion.calibrate(
            model, clean, 0.02, "last 500 test digits", held_out_test_digits=500
        )
    finally:
        torch.set_num_threads(threads)
    manifest = manifest_for(model, metrics={"test_accuracy": 0.9, "trigger_detector": calibration.to_dict()})
    return write_signed_artifact(
        tmp_path_factory.mktemp("backdoored") / "model", model, manifest, trusted_key.private
    )


def test_through_the_api_a_triggered_digit_is_flagged_and_its_clean_twin_answered(
    backdoored_model_dir: Path, app_config: dict
) -> None:
    from digitguard.data import mnist
    from digitguard.poisoning.triggers import get_trigger
    from tests.conftest import SHARED_MNIST

    app = create_app({**app_config, "MODEL_DIR": str(backdoored_model_dir)})
    test = mnist.load(SHARED_MNIST).test
    twos = test.images[:200][test.labels[:200] == 2][:5]  # five test 2s, far from 7
    client = app.test_client()
    answers = []
    for image in (*twos, *get_trigger("square3").stamp(twos)):
        response = client.post("/api/v1/predict", json={"pixels": (image / 255.0).tolist()})
        assert response.status_code == 200
        answers.append(response.get_json())
    clean, triggered = answers[:5], answers[5:]
    assert [a["flagged_trigger"] for a in clean].count(True) <= 1  # calibrated at 2% false rejection
    assert all(a["flagged_trigger"] and a["digit"] is None for a in triggered)
    assert min(a["trigger_score"] for a in triggered) > max(a["trigger_score"] for a in clean)
