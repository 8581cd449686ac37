"""What each detector adds to one prediction, in process (Predictor.predict, no HTTP, one thread).

    python bench/detector_cost.py [--predictions 200] [--repeats 5]

Variants on models/basic, interleaved, fastest round kept: the model alone; feature squeezing
(the adversarial-input detector, as served by default); patch occlusion and STRIP with 16
overlays (the trigger detectors; their thresholds here are placeholders — cost does not depend
on them); squeezing with occlusion together. The ratios are what this is for.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from digitguard.defences.occlusion import OcclusionCalibration  # noqa: E402
from digitguard.defences.squeeze import calibration_of  # noqa: E402
from digitguard.defences.strip import StripCalibration  # noqa: E402
from digitguard.inference.predictor import Predictor  # noqa: E402
from digitguard.models.artifact import load_verified  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--predictions", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)  # as each gunicorn worker does
    verified = load_verified(REPO / "models" / "basic")
    squeeze = calibration_of(verified.manifest.metrics)
    pool = np.random.default_rng(0).integers(0, 256, (16, 28, 28), dtype=np.uint8)
    occlusion, strip = (
        OcclusionCalibration(0.2, 0.01, 1, "bench"),
        StripCalibration(0.9, 0.01, 1, "bench", pool),
    )
    variants = {
        "model alone": Predictor(verified),
        "feature squeezing (served default)": Predictor(verified, detector=squeeze),
        "patch occlusion": Predictor(verified, trigger_detector=occlusion),
        "STRIP, 16 overlays": Predictor(verified, trigger_detector=strip),
        "squeezing + patch occlusion": Predictor(verified, detector=squeeze, trigger_detector=occlusion),
    }
    digit = np.zeros((28, 28), np.float32)
    digit[5:23, 12:16] = 1.0
    best = dict.fromkeys(variants, float("inf"))
    for predictor in variants.values():
        for _ in range(20):
            predictor.predict(digit)
    for _ in range(args.repeats):
        for name, predictor in variants.items():
            started = time.perf_counter()
            for _ in range(args.predictions):
                predictor.predict(digit)
            best[name] = min(best[name], (time.perf_counter() - started) / args.predictions * 1e3)
    alone = best["model alone"]
    print(f"{args.predictions} predictions a round, {args.repeats} interleaved repeats, fastest round kept")
    print(f"{'variant':<38}{'ms/prediction':>15}{'vs model':>10}")
    for name, ms in best.items():
        print(f"{name:<38}{ms:>15.3f}{ms / alone:>9.2f}x")


if __name__ == "__main__":
    main()
