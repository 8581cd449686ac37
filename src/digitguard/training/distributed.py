"""Data-parallel training across processes with ``torch.distributed`` (launched by ``torchrun``).

``digitguard train`` started by ``torchrun --nproc_per_node N -m digitguard.cli train …`` finds
``WORLD_SIZE``/``RANK`` in its environment, joins the process group (gloo on CPU, NCCL when every
process has a GPU), wraps the model in ``DistributedDataParallel`` so that gradients are averaged
after every backward pass, and lets only rank 0 write checkpoints and the signed model. Started
without torchrun, it is a cluster of one and nothing changes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Cluster:
    rank: int = 0
    world_size: int = 1

    @property
    def is_writer(self) -> bool:
        return self.rank == 0

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module to train: ``model`` itself, or a DDP wrapper sharing its parameters."""
        if self.world_size == 1:
            return model
        return nn.parallel.DistributedDataParallel(model)

    def leave(self, trained: nn.Module) -> None:
        """Wait for every process, then leave the group (no-op for a cluster of one).

        ``trained`` is what :meth:`wrap` returned; it cannot train after this. Its DDP reducer is
        released first, while the group is still registered. Otherwise the reducer can hold the
        last reference to the gloo group, and the group's destructor then joins gloo's worker
        threads while holding the GIL that a worker needs to free its last tensors: the process
        hangs on its way out (pytorch/pytorch#56297; 13 of 40 runs of a two-process test
        here, with the hung rank's native stack in ``~Reducer`` → ``~ProcessGroupGloo``).
        """
        if self.world_size == 1:
            return
        torch.distributed.barrier()
        if isinstance(trained, nn.parallel.DistributedDataParallel):
            del trained.reducer
        torch.distributed.destroy_process_group()


def join() -> Cluster:
    """Join the process group torchrun describes in the environment, or run alone."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Cluster()
    backend = "nccl" if torch.cuda.is_available() and torch.distributed.is_nccl_available() else "gloo"
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend=backend)
    return Cluster(torch.distributed.get_rank(), torch.distributed.get_world_size())
