"""Adversarial images per second: the native PGD against ART's PGD, same model, batch and steps.

    python bench/attack_throughput.py [--images 500] [--steps 20] [--rounds 3] [--threads 1]

Both run from the zero start (ART's ``ProjectedGradientDescent`` with ``num_random_init=0``,
native ``PGD(random_start=False)``) at ε = 0.3 on the first MNIST test images through
``models/basic``, in interleaved rounds so machine noise hits both; the best round of each is
kept. Target (issue 6): native ≥ 1.0× ART. ``DIGITGUARD_DATA_DIR`` points at MNIST.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import numpy as np
    import torch

    from digitguard.attacks.art_attacks import ArtPGD
    from digitguard.attacks.pgd import PGD
    from digitguard.data import mnist
    from digitguard.models.artifact import load_verified
    from digitguard.training.loop import to_model_input

    torch.set_num_threads(args.threads)
    model = load_verified(REPO / "models" / "basic").model.eval()
    test = mnist.load(
        Path(os.environ.get("DIGITGUARD_DATA_DIR", REPO.parent / "shared" / "data" / "mnist"))
    ).test
    images = to_model_input(torch.from_numpy(test.images[: args.images].copy()))
    labels = torch.from_numpy(test.labels[: args.images].astype(np.int64))
    attacks = {
        "native PGD": PGD(model, 0.3, steps=args.steps, random_start=False),
        "ART PGD": ArtPGD(model, 0.3, steps=args.steps, batch_size=args.images),
    }
    best = dict.fromkeys(attacks, float("inf"))
    for _ in range(args.rounds):
        for name, attack in attacks.items():
            started = time.perf_counter()
            attack(images, labels)
            best[name] = min(best[name], time.perf_counter() - started)
    print(
        f"{args.images} images, {args.steps} steps, ε = 0.3, batch {args.images}, "
        f"{args.threads} torch thread(s)"
    )
    for name, seconds in best.items():
        print(f"{name:<12}{seconds:8.2f} s  {args.images / seconds:8.1f} adversarial images/s")
    print(f"native / ART throughput: {best['ART PGD'] / best['native PGD']:.2f}x (target >= 1.0)")


if __name__ == "__main__":
    main()
