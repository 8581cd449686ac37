"""How far the feature-squeezing detector of models/basic falls under its adaptive attacks.

    DIGITGUARD_DATA_DIR=/work/shared/data/mnist OMP_NUM_THREADS=1 \\
        python bench/squeeze_break.py [--first 0] [--count 100] [--eps 0.3] [--steps 100] [--seed 0]

On MNIST test digits [first, first + count) at L∞ ε, with the detector threshold τ that the signed
manifest of models/basic carries: the share of attacked digits classified correctly or flagged,
under (a) straight-through squeeze-aware PGD (``SqueezeAwarePGD``, both modes, as
``digitguard detector evaluate`` runs it), (b) the binarised-image search
(``BinarisedSearchAttack``, every wrong class), and the worst case per digit of the two. The side
by side ratio is what this is for: (b) over (a) in digits that get past the detector.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from digitguard.attacks.adaptive import SqueezeAwarePGD  # noqa: E402
from digitguard.attacks.base import Attack, Setting  # noqa: E402
from digitguard.attacks.binarised_search import BinarisedSearchAttack  # noqa: E402
from digitguard.cli import default_data_dir  # noqa: E402
from digitguard.data import mnist  # noqa: E402
from digitguard.defences.evaluate import clean_flag_rate, evaluate_worst_case  # noqa: E402
from digitguard.defences.squeeze import calibration_of  # noqa: E402
from digitguard.models.artifact import load_verified  # noqa: E402
from digitguard.training.loop import to_model_input  # noqa: E402


class Timed(Attack):
    """Another attack, unchanged, with the seconds each of its calls took."""

    seconds: ClassVar[dict[str, float]] = {}  # per attack name, over all its calls

    def __init__(self, inner: Attack) -> None:
        super().__init__(inner.model, inner.eps)
        self.inner, self.name = inner, inner.name  # type: ignore[misc]

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        started = time.perf_counter()
        adversarial = self.inner(images, labels)
        Timed.seconds[self.name] = Timed.seconds.get(self.name, 0.0) + time.perf_counter() - started
        return adversarial

    def settings(self) -> dict[str, Setting]:
        return self.inner.settings()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--eps", type=float, default=0.3)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    verified = load_verified(REPO / "models" / "basic")
    model, threshold = verified.model.eval(), calibration_of(verified.manifest.metrics).threshold
    test = mnist.load(default_data_dir()).test
    chosen = slice(args.first, args.first + args.count)
    images = to_model_input(torch.from_numpy(test.images[chosen].copy()))
    labels = torch.from_numpy(test.labels[chosen].astype(np.int64))
    rows = evaluate_worst_case(
        model,
        [
            lambda e: Timed(SqueezeAwarePGD(model, e, threshold=threshold, steps=args.steps, seed=args.seed)),
            lambda e: Timed(
                BinarisedSearchAttack(model, e, threshold=threshold, steps=args.steps, seed=args.seed)
            ),
        ],
        images,
        labels,
        args.eps,
        threshold,
    )
    clean = clean_flag_rate(model, images, labels, threshold)
    print(f"model models/basic, weights sha256 {verified.weights_sha256}")
    last = args.first + len(labels) - 1
    print(f"detector τ = {threshold:.6f} (from the signed manifest); MNIST test digits {args.first}–{last}")
    print(f"clean: accuracy {clean['accuracy']:.1%}, flagged {clean['flagged']:.1%}; ε = {args.eps} (L∞)")
    print(f"{'attack':<20}{'robust acc':>12}{'fooled':>8}{'TPR':>8}{'correct|flagged':>17}{'seconds':>9}")
    for row in rows:
        seconds = Timed.seconds.get(row.attack, sum(Timed.seconds.values()))
        print(
            f"{row.attack:<20}{row.robust_accuracy:>12.1%}{row.fooled:>8}{row.flagged_of_fooled:>8.1%}"
            f"{row.correct_or_flagged:>17.1%}{seconds:>9.0f}"
        )
    straight, searched = (1 - row.correct_or_flagged for row in rows[:2])
    print(f"past the detector: binarised search {searched:.1%} vs straight-through {straight:.1%}", end="")
    print(f" ({searched / straight:.1f}x)" if straight else "")


if __name__ == "__main__":
    main()
