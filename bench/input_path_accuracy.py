"""Accuracy of the whole input path on the full MNIST test set.

    python bench/input_path_accuracy.py [--data-dir D] [--samples 10000] [--model models/basic]

Each test digit is re-drawn as a canvas-like PNG (upscaled 6–12×, black on white, off-centre
on a larger blank canvas), sent through POST /api/v1/predict (Flask test client, no network),
and the top class is compared with the model's answer on the original 28×28 digit. Abstentions
are counted, and among them the inputs the adversarial-input detector flagged: its false
positives on drawings rather than on MNIST's own digits.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from digitguard.data import mnist  # noqa: E402
from digitguard.inference.redraw import as_canvas_png  # noqa: E402
from digitguard.training.loop import predict  # noqa: E402
from digitguard.web import create_app  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data-dir", type=Path, default=Path(os.environ.get("DIGITGUARD_DATA_DIR", "../shared/data/mnist"))
    )
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--model", type=Path, default=REPO / "models" / "basic")
    args = parser.parse_args()
    # Limits raised only so that one address may send the whole test set.
    raised = {"ANONYMOUS_LIMIT": "1000000/minute", "IP_LIMIT": "1000000/minute"}
    app = create_app({"MODEL_DIR": str(args.model), **raised})
    data = mnist.load(args.data_dir)
    images, labels = data.test.images[: args.samples], data.test.labels[: args.samples].astype(np.int64)
    direct = (
        predict(app.extensions["digitguard"].model, torch.from_numpy(images.copy())).numpy() == labels
    ).mean()
    client, rng, correct, abstained, flagged = app.test_client(), np.random.default_rng(0), 0, 0, 0
    for image, label in zip(images, labels, strict=True):
        body = client.post(
            "/api/v1/predict", data=as_canvas_png(image, rng), content_type="image/png"
        ).get_json()
        correct += int(np.argmax(body["probabilities"]) == label)
        abstained += int(body["abstained"])
        flagged += int(body["flagged_adversarial"])
    print(
        f"{len(labels)} test digits: original 28x28 {direct:.4f}, re-drawn canvas PNGs through the API "
        f"{correct / len(labels):.4f} (difference {100 * (correct / len(labels) - direct):+.2f} points); "
        f"abstained on {abstained}, of which {flagged} flagged as possibly adversarial"
    )


if __name__ == "__main__":
    main()
