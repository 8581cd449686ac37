"""How often a two-process gloo DDP run hangs on its way out, with and without Cluster.leave.

    python bench/ddp_teardown.py [--pairs 40] [--timeout 20]

Each pair is two spawned ranks that train a small DDP model for one epoch of 128 images with
digitguard's own loop and save their weights (as ``tests/training/test_adversarial.py`` does), then
leave the group either as ``digitguard train`` does (``Cluster.leave(trained)``: barrier, the
reducer released, then ``destroy_process_group``) or as the test once did
(``destroy_process_group`` alone, the reducer freed with the module afterwards). A pair whose
ranks have not both exited within ``--timeout`` seconds counts as hung and is killed. The two
variants alternate pair by pair. Prints the hangs of each. The hang this counts is
pytorch/pytorch#56297 (see ``Cluster.leave``).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

VARIANTS = ("cluster-leave", "destroy-only")


def rank_main(rank: int, init_file: str, variant: str) -> None:
    import torch.distributed as dist
    from safetensors.torch import save_file
    from torch import nn

    from digitguard.training.distributed import Cluster
    from digitguard.training.loop import train_epoch

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))
    trained = Cluster(rank, 2).wrap(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    generator = torch.Generator().manual_seed(2)
    images = torch.randint(0, 256, (128, 28, 28), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (128,), generator=generator)
    train_epoch(trained, optimizer, images, labels, epoch=0, seed=5, batch_size=32, rank=rank, world_size=2)
    weights = {name: value.contiguous() for name, value in model.state_dict().items()}
    save_file(weights, str(Path(init_file).with_name(f"rank{rank}.safetensors")))  # as the test does
    if variant == "cluster-leave":
        Cluster(rank, 2).leave(trained)
    else:
        dist.destroy_process_group()


def run_pair(variant: str, timeout_s: float) -> bool:
    """True when both ranks exited with status 0 within ``timeout_s``."""
    context = torch.multiprocessing.get_context("spawn")
    init_file = str(Path(tempfile.mkdtemp(prefix="ddp-teardown-")) / "init")
    processes = [context.Process(target=rank_main, args=(rank, init_file, variant)) for rank in (0, 1)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout_s)
    finished = [process.exitcode for process in processes] == [0, 0]
    for process in processes:
        if process.is_alive():
            process.kill()
            process.join(10)
    return finished


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=40, help="pairs per variant")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds before a pair counts as hung")
    args = parser.parse_args()
    hung = dict.fromkeys(VARIANTS, 0)
    for _ in range(args.pairs):
        for variant in VARIANTS:
            hung[variant] += not run_pair(variant, args.timeout)
    print(f"{args.pairs} two-process pairs per variant, hung after {args.timeout:.0f} s:")
    for variant in VARIANTS:
        print(f"  {variant:<14} {hung[variant]:>3} of {args.pairs}")


if __name__ == "__main__":
    main()
