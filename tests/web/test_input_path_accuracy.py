"""The whole input path: MNIST test digits re-drawn as big canvas PNGs must score like the originals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from flask import Flask

from digitguard.data import mnist
from digitguard.inference.redraw import as_canvas_png
from digitguard.training.loop import predict

SAMPLES = 1000


def test_redrawn_test_digits_score_within_one_point_of_the_originals(
    shipped_app: Flask, mnist_dir: Path
) -> None:
    data = mnist.load(mnist_dir)
    images, labels = data.test.images[:SAMPLES], data.test.labels[:SAMPLES].astype(np.int64)
    model = shipped_app.extensions["digitguard"].model
    direct = (predict(model, torch.from_numpy(images.copy())).numpy() == labels).mean()
    client, rng = shipped_app.test_client(), np.random.default_rng(0)
    correct = 0
    for image, label in zip(images, labels, strict=True):
        response = client.post("/api/v1/predict", data=as_canvas_png(image, rng), content_type="image/png")
        assert response.status_code == 200, response.get_json()
        correct += int(np.argmax(response.get_json()["probabilities"]) == label)
    through_api = correct / SAMPLES
    print(f"direct {direct:.4f}, through the API as canvas PNGs {through_api:.4f}")
    assert abs(through_api - direct) <= 0.01
