"""Training precision: float32, or bfloat16 autocast on the CPU.

On CPUs with AVX-512 BF16, ``torch.autocast("cpu", dtype=torch.bfloat16)`` with channels_last
tensors trains the small CNNs here about twice as fast as float32 (``bench/train_throughput.py``).
The weights and the optimizer stay float32; only the convolutions and matrix products run in
bfloat16, and the logits come back as float32 so every loss is computed in float32. The model
is served and attacked in float32: its robustness is measured in the precision it is served in.
"""

from __future__ import annotations

import torch
from torch import nn


class BFloat16Autocast(nn.Module):
    """``inner`` run under CPU bfloat16 autocast on channels_last input; float32 logits out."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return self.inner(x.contiguous(memory_format=torch.channels_last)).float()


def for_training(model: nn.Module, precision: str) -> nn.Module:
    """The module the training loop calls: ``model`` itself in fp32, autocast-wrapped in bf16."""
    if precision == "fp32":
        return model
    if precision == "bf16":
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        return BFloat16Autocast(model)
    raise ValueError(f"unknown training precision {precision!r}; use fp32 or bf16")
