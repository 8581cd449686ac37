"""Training throughput: digitguard's loop against a plain PyTorch loop, same net, same data, one run.

    python bench/train_throughput.py [--data-dir D] [--images 12000] [--rounds 3]

Both loops train the seed CNN with Adam, batch 128, no augmentation, on the
same MNIST images; they alternate round by round so machine noise hits both.
Prints images/s for each and the ratio digitguard / plain (target >= 0.95).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from digitguard.data import mnist
from digitguard.models.architectures import build_model
from digitguard.training.loop import train_epoch

BATCH = 128


def plain_pytorch_epoch(images_u8: torch.Tensor, labels: torch.Tensor, seed: int) -> float:
    """The textbook loop: float tensors in a TensorDataset, a shuffling DataLoader."""
    torch.manual_seed(seed)
    model = build_model("seed-cnn")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    dataset = TensorDataset(images_u8.unsqueeze(1).float() / 255.0, labels)
    loader = DataLoader(dataset, batch_size=BATCH, shuffle=True)
    model.train()
    start = time.perf_counter()
    for x, y in loader:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
    return len(images_u8) / (time.perf_counter() - start)


def digitguard_epoch(images_u8: torch.Tensor, labels: torch.Tensor, seed: int) -> float:
    torch.manual_seed(seed)
    model = build_model("seed-cnn")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    start = time.perf_counter()
    train_epoch(model, optimizer, images_u8, labels, epoch=0, seed=seed, batch_size=BATCH, augment=False)
    return len(images_u8) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data-dir", type=Path, default=Path(os.environ.get("DIGITGUARD_DATA_DIR", "../shared/data/mnist"))
    )
    parser.add_argument("--images", type=int, default=12_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    data = mnist.load(args.data_dir)
    images = torch.from_numpy(data.train.images[: args.images].copy())
    labels = torch.from_numpy(data.train.labels[: args.images].astype(np.int64))
    threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, {threads} threads, {len(images)} images/epoch, batch {BATCH}")
    plain, ours = [], []
    for round_number in range(args.rounds):
        plain.append(plain_pytorch_epoch(images, labels, round_number))
        ours.append(digitguard_epoch(images, labels, round_number))
        print(f"round {round_number + 1}: plain {plain[-1]:7.1f} img/s   digitguard {ours[-1]:7.1f} img/s")
    plain_median, ours_median = statistics.median(plain), statistics.median(ours)
    print(
        f"median: plain {plain_median:.1f} img/s, digitguard {ours_median:.1f} img/s, "
        f"ratio digitguard/plain {ours_median / plain_median:.3f} (target >= 0.95)"
    )


if __name__ == "__main__":
    main()
