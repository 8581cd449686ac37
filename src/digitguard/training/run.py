"""A whole training run: verified data in, a signed model directory out.

``train_model`` verifies the data, splits off a validation set, trains with a
checkpoint after every epoch, evaluates on the test set and writes the signed
artifact atomically. It reports progress through callbacks and never prints.
"""

from __future__ import annotations

import dataclasses
import getpass
import platform
import shutil
import socket
import subprocess  # nosec B404
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import safetensors
import torch
from safetensors.torch import load_file, save_file

import digitguard
from digitguard.data import derived, mnist
from digitguard.errors import TrainingError
from digitguard.models.architectures import build_model, parameter_count
from digitguard.models.artifact import write_signed_artifact
from digitguard.models.manifest import ModelManifest
from digitguard.training import adversarial, distributed, precision, private
from digitguard.training.checkpoint import CheckpointState, checkpoint_path, load_checkpoint, save_checkpoint
from digitguard.training.config import TrainConfig
from digitguard.training.loop import Progress, no_progress, one_cycle_lr, predict, train_epoch
from digitguard.training.metrics import evaluate_predictions


@dataclass(frozen=True)
class TrainRequest:
    config: TrainConfig
    data_dir: Path
    out: Path
    signing_key: Path
    name: str
    resume: bool = False
    allow_unverified: bool = False
    init_from: Path | None = None  # a verified model whose weights start the run (config.init_from_sha256)
    created_by: str = field(default_factory=lambda: f"{getpass.getuser()}@{socket.gethostname()}")


@dataclass(frozen=True)
class TrainOutcome:
    out: Path
    manifest: ModelManifest | None  # None in the processes of a distributed run other than rank 0
    resumed_from_epoch: int


@dataclass(frozen=True)
class Splits:
    train_images: torch.Tensor
    train_labels: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor


def split_data(data: mnist.MnistData, config: TrainConfig) -> Splits:
    images = torch.from_numpy(data.train.images.copy())
    labels = torch.from_numpy(data.train.labels.astype(np.int64))
    if config.train_limit is not None:
        images, labels = images[: config.train_limit], labels[: config.train_limit]
    if config.validation_size >= len(images):
        raise TrainingError(f"validation_size {config.validation_size} leaves no training images")
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(config.seed))
    val, train = order[: config.validation_size], order[config.validation_size :]
    return Splits(
        images[train],
        labels[train],
        images[val],
        labels[val],
        torch.from_numpy(data.test.images.copy()),
        torch.from_numpy(data.test.labels.astype(np.int64)),
    )


JUNK_SEED_OFFSET = 7_919  # the junk pool's seed is the run's seed plus this: never the split's seed


def with_junk(splits: Splits, config: TrainConfig) -> Splits:
    """``splits`` with ``junk_fraction`` × (training digits) synthetic non-digits of the training
    families added to the training set as class 10 (validation and test stay digits only)."""
    if config.junk_fraction == 0:
        return splits
    from digitguard.data import junk
    from digitguard.inference.predictor import NOT_A_DIGIT_CLASS

    wanted = round(config.junk_fraction * len(splits.train_labels))
    pool = junk.junk_inputs(
        wanted,
        config.seed + JUNK_SEED_OFFSET,
        families=junk.TRAINING_FAMILIES,
        digits_u8=splits.train_images.numpy(),
    )
    images = torch.from_numpy(np.rint(pool.images * 255.0).astype(np.uint8))
    labels = torch.full((len(images),), NOT_A_DIGIT_CLASS, dtype=torch.int64)
    return dataclasses.replace(
        splits,
        train_images=torch.cat([splits.train_images, images]),
        train_labels=torch.cat([splits.train_labels, labels]),
    )


def recorded_splits(data: mnist.MnistData, training: dict[str, Any]) -> Splits:
    """The splits a finished run used, rebuilt from its manifest's ``training`` record
    (seed, validation size, image limit): what it trained on and what it held out."""
    config = TrainConfig(
        seed=int(training.get("seed", 0)),
        validation_size=int(training.get("validation_size", 0)),
        train_limit=int(training["train_limit"]) if training.get("train_limit") else None,
    )
    return split_data(data, config)


def train_model(
    request: TrainRequest,
    progress: Progress = no_progress,
    on_epoch: Callable[..., None] = lambda result, val, robust=None, epsilon=None: None,
) -> TrainOutcome:
    config = request.config
    if request.out.exists():
        raise TrainingError(f"{request.out}: output directory already exists; choose another --out")
    if not request.signing_key.is_file():
        raise TrainingError(
            f"{request.signing_key}: signing key not found (create one with `digitguard keygen`)"
        )
    commit = git_commit()  # the code that starts the run, not whatever HEAD is when it ends
    data = mnist.load(request.data_dir, allow_unverified=request.allow_unverified)
    dataset = derived.read_derived(request.data_dir, data.file_sha256)
    splits = with_junk(split_data(data, config), config)
    torch.manual_seed(config.seed)
    model = build_model(config.architecture)
    if request.init_from is not None:
        _start_from(model, request.init_from, config)
    cluster = distributed.join()
    trained = cluster.wrap(model)
    optimizer = _optimizer(model, config)
    ckpt = checkpoint_path(request.out)
    state = _start_or_resume(request, ckpt, model, optimizer, data.file_sha256)
    dp_run = _private_training(
        model, optimizer, splits, config, cluster.world_size, state.epochs_completed > 0
    )
    adversary = config.adversarial_settings()
    best_weights = best_weights_path(request.out)
    start_epoch = state.epochs_completed
    steps_per_epoch = -(-len(splits.train_images) // config.batch_size)
    total_steps = steps_per_epoch * config.epochs

    def lr_at(step: int) -> float:
        return one_cycle_lr(step, total_steps, config.learning_rate, config.warmup_fraction)

    history = list(state.history)
    stop = _early_stop(adversary, config, history)
    for epoch in range(start_epoch, config.epochs):
        if stop.stop:
            break
        result = (
            dp_run.train_epoch(epoch)
            if dp_run is not None
            else train_epoch(
                precision.for_training(trained, config.precision),
                optimizer,
                splits.train_images,
                splits.train_labels,
                epoch=epoch,
                seed=config.seed,
                batch_size=config.batch_size,
                augment=config.augment,
                augment_style=config.augment_style,
                lr_at=lr_at,
                progress=progress,
                objective=None if adversary is None else adversarial.objective(adversary, epoch),
                rank=cluster.rank,
                world_size=cluster.world_size,
            )
        )
        val_accuracy = _accuracy(model, splits.val_images, splits.val_labels)
        record: dict[str, Any] = {**result.__dict__, "validation_accuracy": val_accuracy}
        if adversary is not None:
            record["robust_validation_accuracy"] = _robust_validation(model, splits, config)
        if dp_run is not None:
            record["epsilon"] = dp_run.record((epoch + 1) * dp_run.schedule.steps_per_epoch)["epsilon"]
        history.append(record)
        stop = _early_stop(adversary, config, history)
        if cluster.is_writer:
            if adversary is not None and stop.best_epoch == epoch:
                _save_best(model, best_weights)
            progress_so_far = CheckpointState(epoch + 1, config.to_dict(), data.file_sha256, history)
            save_checkpoint(ckpt, model, optimizer, progress_so_far)
        if adversary is not None:
            on_epoch(result, val_accuracy, record["robust_validation_accuracy"])
        elif dp_run is not None:
            on_epoch(result, val_accuracy, epsilon=record["epsilon"])
        else:
            on_epoch(result, val_accuracy)
    if (
        cluster.is_writer
        and adversary is not None
        and stop.best_epoch is not None
        and stop.best_epoch != len(history) - 1
    ):
        model.load_state_dict(load_file(best_weights))  # safetensors this run wrote; never torch.load
    cluster.leave(trained)
    if not cluster.is_writer:
        return TrainOutcome(request.out, None, start_epoch)
    privacy = None
    if dp_run is not None:
        dp_run.close()
        privacy = dp_run.record(len(history) * dp_run.schedule.steps_per_epoch)
    test = evaluate_predictions(predict(model, splits.test_images), splits.test_labels)
    manifest = _manifest(request, model, data, dataset, history, test.to_dict(), commit, privacy)
    write_signed_artifact(request.out, model, manifest, request.signing_key)
    ckpt.unlink(missing_ok=True)
    best_weights.unlink(missing_ok=True)
    return TrainOutcome(request.out, manifest, start_epoch)


def _optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    if config.dp:
        return private.sgd_for(model, config.learning_rate)
    return torch.optim.Adam(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)


def _private_training(
    model: torch.nn.Module, optimizer, splits: Splits, config: TrainConfig, world_size: int, resumed: bool
) -> private.PrivateTraining | None:
    budget = config.privacy_budget()
    if budget is None:
        return None
    if world_size > 1:
        raise TrainingError("DP training runs in one process; its accountant does not cover torchrun")
    schedule = private.plan(
        budget,
        len(splits.train_labels),
        config.batch_size,
        config.epochs,
        private.statistics_noise_for(model),
    )
    # A resumed run's checkpoint holds the statistics released at its start.
    return private.PrivateTraining(
        model,
        optimizer,
        splits.train_images,
        splits.train_labels,
        budget,
        schedule,
        statistics_released=resumed,
    )


def _start_from(model: torch.nn.Module, model_dir: Path, config: TrainConfig) -> None:
    """Load a verified model's weights into ``model``; they must be the ones the config names."""
    from digitguard.models.artifact import load_verified

    verified = load_verified(model_dir)
    if verified.manifest.architecture != config.architecture:
        raise TrainingError(
            f"{model_dir}: architecture {verified.manifest.architecture!r}, not {config.architecture!r}"
        )
    if verified.weights_sha256 != config.init_from_sha256:
        raise TrainingError(
            f"{model_dir}: weights {verified.weights_sha256} are not the configured "
            f"init_from_sha256 {config.init_from_sha256}"
        )
    model.load_state_dict(verified.model.state_dict())


def _start_or_resume(request, ckpt, model, optimizer, data_sha256) -> CheckpointState:
    if not request.resume:
        if ckpt.exists():
            raise TrainingError(
                f"{ckpt}: a checkpoint of an interrupted run exists; pass --resume or delete it"
            )
        return CheckpointState(0, request.config.to_dict(), data_sha256, [])
    if not ckpt.exists():
        raise TrainingError(f"{ckpt}: --resume given but there is no checkpoint")
    state = load_checkpoint(ckpt, model, optimizer)
    if state.config != request.config.to_dict():
        raise TrainingError(
            f"{ckpt}: checkpoint was made with a different training configuration: {state.config}"
        )
    if state.data_sha256 != data_sha256:
        raise TrainingError(f"{ckpt}: checkpoint was made on different data files")
    return state


def best_weights_path(out: Path) -> Path:
    """Where an adversarial run keeps its best weights so far (by held-out PGD accuracy)."""
    return Path(out).with_name(Path(out).name + ".best.safetensors")


def _save_best(model, path: Path) -> None:
    """The weights of the best epoch so far, written to a temporary name and renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, partial)
    partial.replace(path)


def _robust_validation(model, splits: Splits, config: TrainConfig) -> float:
    size = min(config.robust_eval_size, len(splits.val_labels))
    images, labels = splits.val_images[:size], splits.val_labels[:size]
    steps = config.robust_eval_steps
    return adversarial.robust_accuracy(model, images, labels, config.eps, steps, config.seed)


def _early_stop(adversary, config: TrainConfig, history: list[dict[str, Any]]) -> adversarial.StopDecision:
    if adversary is None:
        return adversarial.StopDecision(False, None)
    robust = [float(epoch["robust_validation_accuracy"]) for epoch in history]
    return adversarial.early_stop(robust, config.early_stop_patience, config.collapse_drop)


def _accuracy(model, images: torch.Tensor, labels: torch.Tensor) -> float | None:
    if len(labels) == 0:
        return None
    return float((predict(model, images) == labels).double().mean())


def data_record(
    data: mnist.MnistData, dataset: derived.DatasetManifest | None, allow_unverified: bool
) -> dict[str, Any]:
    """What the model manifest and the audit trail say about the training data.

    ``source`` is ``official`` (the pinned MNIST hashes), ``derived`` (a directory whose
    ``dataset.json`` matched its files: its kind, parent hashes and transformation — for a
    sanitised set, the scan result — are recorded in ``dataset``) or ``unverified``.
    """
    source = "official" if data.verified else ("derived" if dataset else "unverified")
    return {
        "files": data.file_sha256,
        "verified": data.verified,
        "allow_unverified": allow_unverified,
        "source": source,
        "overrides": ["allow_unverified"] if allow_unverified else [],
        "dataset": dataset.to_dict() if dataset else None,
        "dataset_sha256": dataset.sha256 if dataset else None,
    }


def _manifest(
    request: TrainRequest,
    model,
    data: mnist.MnistData,
    dataset: derived.DatasetManifest | None,
    history,
    test_metrics,
    commit: str | None,
    privacy: dict[str, Any] | None = None,
) -> ModelManifest:
    from digitguard.models.artifact import weights_sha256_of

    return ModelManifest(
        name=request.name,
        architecture=request.config.architecture,
        parameter_count=parameter_count(model),
        weights_sha256=weights_sha256_of(model),
        data=data_record(data, dataset, request.allow_unverified),
        training={
            **request.config.to_dict(),
            "history": history,
            **({"privacy": privacy} if privacy is not None else {}),
        },
        metrics={
            "test_accuracy": test_metrics["accuracy"],
            "test_per_class_accuracy": test_metrics["per_class_accuracy"],
            "test_samples": test_metrics["samples"],
            "validation_accuracy": history[-1]["validation_accuracy"] if history else None,
        },
        environment=environment(),
        git_commit=commit,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        created_by=request.created_by,
    )


def environment() -> dict[str, str]:
    return {
        "digitguard": digitguard.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "safetensors": safetensors.__version__,
        "platform": platform.platform(),
    }


def git_commit() -> str | None:
    git = shutil.which("git")
    if git is None:
        return None
    try:
        # Fixed arguments, no shell.
        result = subprocess.run(  # noqa: S603  # nosec B603
            [git, "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = result.stdout.strip()
    return commit if result.returncode == 0 and len(commit) == 40 else None
