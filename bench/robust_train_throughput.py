"""Robust training throughput: the served model's recipe in float32 against bf16 autocast, one run.

    python bench/robust_train_throughput.py [--data-dir D] [--images 2048] [--rounds 3]

Trains ``small-cnn`` with the recipe of ``make train-robust`` (TRADES, 10 steps, ε = 0.3, drawing
augmentation) through digitguard's own loop, alternating float32 and bf16 round by round so that
machine noise hits both. Prints images/s for each and the ratio bf16 / fp32, and the seconds an
epoch of 55,000 images would take at each rate.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from digitguard.data import mnist
from digitguard.models.architectures import build_model
from digitguard.training import adversarial, precision
from digitguard.training.loop import train_epoch

EPOCH_IMAGES = 55_000


def one_round(precision_name: str, images: torch.Tensor, labels: torch.Tensor, seed: int) -> float:
    torch.manual_seed(seed)
    model = build_model("small-cnn")
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    settings = adversarial.AdversarialSettings("trades", 0.3, steps=10, trades_beta=6.0)
    start = time.perf_counter()
    train_epoch(
        precision.for_training(model, precision_name),
        optimizer,
        images,
        labels,
        epoch=0,
        seed=seed,
        batch_size=128,
        augment=True,
        augment_style="drawing",
        objective=adversarial.objective(settings, 0),
    )
    return len(labels) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("DIGITGUARD_DATA_DIR", ".")))
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    train = mnist.load(args.data_dir).train
    images = torch.from_numpy(train.images[: args.images].copy())
    labels = torch.from_numpy(train.labels[: args.images].astype(np.int64))
    rates: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for round_ in range(args.rounds):
        for name in rates:
            rates[name].append(one_round(name, images, labels, seed=round_))
    for name, values in rates.items():
        median = statistics.median(values)
        print(
            f"{name}: {median:7.1f} images/s (rounds {', '.join(f'{v:.0f}' for v in values)}); "
            f"an epoch of {EPOCH_IMAGES:,} images ≈ {EPOCH_IMAGES / median / 60:.1f} min"
        )
    ratio = statistics.median(rates["bf16"]) / statistics.median(rates["fp32"])
    print(f"bf16 / fp32: {ratio:.2f}x  (torch {torch.__version__}, {torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
