"""Standard AutoAttack per second: Croce & Hein's reference (pyautoattack) against the project's ART one.

    python bench/autoattack_throughput.py [--images 20] [--eps 0.3] [--threads 1,2] [--model DIR]

Both attack the same verified model (``--model``, default ``models/robust-pgd``) on the same first N
MNIST test images, float32, in one batch, at ε = 0.3, once per torch thread count. The reference
runs APGD-CE, APGD-T, FAB-T and Square (5,000 queries); the project's ``autoattack`` runs the same
minus FAB-T on ART's attacks. Each call is timed once (a call is minutes on a robust model), so the
machine's load average is printed beside the figures. Besides images/s and their ratio it prints
each one's robust accuracy and the images on which they disagree: a referee finding to explain,
not noise. ``DIGITGUARD_DATA_DIR`` points at MNIST.
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
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--eps", type=float, default=0.3)
    parser.add_argument("--threads", default="1,2", help="comma-separated torch thread counts")
    parser.add_argument("--model", type=Path, default=REPO / "models" / "robust-pgd")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import numpy as np
    import torch

    from digitguard.attacks.art_attacks import AutoAttackLinf
    from digitguard.attacks.base import check_budget
    from digitguard.attacks.reference_autoattack import ReferenceAutoAttack
    from digitguard.data import mnist
    from digitguard.models.artifact import load_verified
    from digitguard.training.loop import to_model_input

    verified = load_verified(args.model)
    model = verified.model.eval().float()
    test = mnist.load(
        Path(os.environ.get("DIGITGUARD_DATA_DIR", REPO.parent / "shared" / "data" / "mnist"))
    ).test
    images = to_model_input(torch.from_numpy(test.images[: args.images].copy()))  # float32
    labels = torch.from_numpy(test.labels[: args.images].astype(np.int64))
    with torch.no_grad():
        clean = model(images).argmax(1) == labels
    n = args.images
    accuracy = float(clean.double().mean())
    print(
        f"{args.model.name} (weights sha256 {verified.weights_sha256[:16]}…), first {n} MNIST test images, "
        f"ε = {args.eps}, batch {n}, float32, seed {args.seed}; clean accuracy {accuracy:.4f}"
    )
    print(f"load average at start {os.getloadavg()[0]:.2f}")
    header = f"{'threads':>7}  {'implementation':<34}{'seconds':>9}{'images/s':>10}{'robust acc.':>13}"
    print(header)
    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)
        attacks = {
            "pyautoattack 0.2.0 (reference)": ReferenceAutoAttack(
                model, args.eps, seed=args.seed, batch_size=n
            ),
            "digitguard autoattack (ART)": AutoAttackLinf(model, args.eps, seed=args.seed, batch_size=n),
        }
        seconds, robust = {}, {}
        for name, attack in attacks.items():
            started = time.perf_counter()
            adversarial = attack(images, labels)
            seconds[name] = time.perf_counter() - started
            check_budget(adversarial, images, args.eps, name)
            with torch.no_grad():
                robust[name] = clean & (model(adversarial).argmax(1) == labels)
            print(
                f"{threads:>7}  {name:<34}{seconds[name]:9.1f}{n / seconds[name]:10.3f}"
                f"{float(robust[name].double().mean()):13.4f}"
            )
        reference, art = (robust[name] for name in attacks)
        ratio = seconds["digitguard autoattack (ART)"] / seconds["pyautoattack 0.2.0 (reference)"]
        print(
            f"{threads:>7}  reference / ART throughput: {ratio:.2f}x; "
            f"robust under both {int((reference & art).sum())}, only under the reference "
            f"{int((reference & ~art).sum())}, only under ART {int((art & ~reference).sum())}; "
            f"ART's stages broke {_broken_by(attacks['digitguard autoattack (ART)'].settings())}"
        )
        flags = attacks["pyautoattack 0.2.0 (reference)"].settings()["flags"]
        print(f"{threads:>7}  reference's own checks: {flags or 'no flag'}")
    print(f"load average at end {os.getloadavg()[0]:.2f}")


def _broken_by(settings: dict[str, object]) -> str:
    counts = {k.removeprefix("broken_by_"): v for k, v in settings.items() if k.startswith("broken_by_")}
    return ", ".join(f"{stage} {count}" for stage, count in counts.items())


if __name__ == "__main__":
    main()
