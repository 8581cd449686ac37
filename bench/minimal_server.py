"""The seed's server.py, roughly: a bare Flask endpoint that decodes a PNG and runs the same model.

No signature check at request time, no MNIST preprocessing (a plain resize to 28×28), no
validation, no security headers, no explanation — the baseline the real app is compared with.
Run under gunicorn: ``gunicorn -w 2 'bench.minimal_server:create_app()'`` (DIGITGUARD_MODEL_DIR set).
"""

from __future__ import annotations

import io
import os

import numpy as np
import torch
from flask import Flask, jsonify, request
from PIL import Image

from digitguard.models.artifact import load_verified


def create_app() -> Flask:
    app = Flask(__name__)
    model = load_verified(os.environ.get("DIGITGUARD_MODEL_DIR", "models/basic")).model
    torch.set_num_threads(1)

    @app.post("/predict")
    def predict():
        image = Image.open(io.BytesIO(request.get_data())).convert("L").resize((28, 28))
        x = torch.from_numpy(1.0 - np.asarray(image, dtype=np.float32) / 255.0).view(1, 1, 28, 28)
        with torch.inference_mode():
            probabilities = torch.softmax(model(x), 1)[0]
        return jsonify(digit=int(probabilities.argmax()), probabilities=probabilities.tolist())

    return app
