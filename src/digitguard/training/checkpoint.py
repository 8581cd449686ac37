"""Per-epoch training checkpoints in safetensors — no pickle, no torch.load.

One file holds the model's and the optimizer's tensors; the rest of the state
(epoch, history, optimizer hyper-parameters, the configuration and data hashes
the run was started with) travels as JSON in the safetensors metadata. The
file is written to a temporary name, fsynced and renamed, so a SIGKILL leaves
either the previous checkpoint or the new one.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from digitguard.errors import TrainingError

CHECKPOINT_FORMAT = "digitguard-checkpoint/1"


@dataclass(frozen=True)
class CheckpointState:
    epochs_completed: int
    config: dict[str, Any]
    data_sha256: dict[str, str]
    history: list[dict[str, Any]]


def checkpoint_path(out: Path) -> Path:
    return Path(out).with_name(Path(out).name + ".checkpoint.safetensors")


def save_checkpoint(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, state: CheckpointState
) -> None:
    tensors = {f"model.{k}": v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    optimizer_state = optimizer.state_dict()
    for param_id, param_state in optimizer_state["state"].items():
        for key, value in param_state.items():
            tensors[f"optimizer.{param_id}.{key}"] = torch.as_tensor(value).clone().contiguous()
    metadata = {
        "format": CHECKPOINT_FORMAT,
        "state": json.dumps(state.__dict__, sort_keys=True),
        "param_groups": json.dumps(optimizer_state["param_groups"]),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        with open(tmp, "rb") as written:
            os.fsync(written.fileno())
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def load_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> CheckpointState:
    """Restore ``model`` and ``optimizer`` in place from ``path``; return the saved run state."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
        if metadata.get("format") != CHECKPOINT_FORMAT:
            raise TrainingError(f"{path}: not a {CHECKPOINT_FORMAT} checkpoint")
        state = CheckpointState(**json.loads(metadata["state"]))
        param_groups = json.loads(metadata["param_groups"])
    except (SafetensorError, OSError, ValueError, KeyError, TypeError) as exc:
        raise TrainingError(f"{path}: unreadable checkpoint: {exc}") from exc
    model_tensors = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(model_tensors, strict=True)
        optimizer.load_state_dict(
            {"state": _optimizer_tensors(tensors), "param_groups": _tuples(param_groups)}
        )
    except (RuntimeError, ValueError, KeyError) as exc:
        raise TrainingError(f"{path}: checkpoint does not fit this model or optimizer: {exc}") from exc
    return state


def _optimizer_tensors(tensors: dict[str, torch.Tensor]) -> dict[int, dict[str, torch.Tensor]]:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, param_id, name = key.split(".", 2)
            state.setdefault(int(param_id), {})[name] = value
    return state


def _tuples(param_groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # JSON turns tuples such as Adam's betas into lists; the optimizer expects tuples.
    return [{k: tuple(v) if k == "betas" else v for k, v in group.items()} for group in param_groups]
