"""``digitguard privacy audit``: how much a model gives away about which digits it was trained on.

A click adapter over :mod:`digitguard.privacy.membership`. Members are training digits the run
really trained on (its validation split, rebuilt from the manifest's seed and size, is left
out); non-members are MNIST test digits. ``privacy audit`` runs the loss-threshold attack;
``privacy lira`` the likelihood-ratio attack with shadow models (:mod:`digitguard.privacy.lira`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from digitguard.cli_options import data_dir_option, trust_option
from digitguard.outputs import figure_png, json_bytes, write_outputs

AUC_TARGET, TPR_TARGET = 0.55, 0.005


@click.group("privacy")
def privacy() -> None:
    """Privacy audits of a trained model."""


@privacy.command("audit")
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option(
    "--samples",
    type=click.IntRange(min=100),
    default=10_000,
    show_default=True,
    help="Members and non-members each.",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Which training digits are drawn as members."
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="membership-result.json + ROC plot.",
)
@click.option("--json", "as_json", is_flag=True)
@data_dir_option
@trust_option
def audit_command(
    model_dir: Path,
    samples: int,
    seed: int,
    out: Path | None,
    as_json: bool,
    data_dir: Path | None,
    trust_dirs: tuple[Path, ...],
) -> None:
    """Loss-threshold membership inference on MODEL_DIR: ROC AUC, advantage, TPR at 0.1% FPR."""
    import numpy as np
    import torch

    from digitguard.privacy.membership import audit, per_sample_loss
    from digitguard.training.loop import to_model_input

    verified, data, splits = _target(model_dir, trust_dirs, data_dir)
    chosen = torch.randperm(len(splits.train_images), generator=torch.Generator().manual_seed(seed))[:samples]
    test = data.test
    count = min(samples, len(test.images))
    model = verified.model.eval()
    result = audit(
        per_sample_loss(model, to_model_input(splits.train_images[chosen]), splits.train_labels[chosen]),
        per_sample_loss(
            model,
            to_model_input(torch.from_numpy(test.images[:count].copy())),
            torch.from_numpy(test.labels[:count].astype(np.int64)),
        ),
    )
    document: dict[str, Any] = {
        "model": str(model_dir),
        "model_sha256": verified.weights_sha256,
        "attack": "loss-threshold",
        "privacy": verified.manifest.training.get("privacy"),  # the DP record, None without DP
        **result.to_dict(),
        "targets": {
            "auc <= 0.55": result.auc <= AUC_TARGET,
            "tpr_at_0.1%_fpr <= 0.5%": result.tpr_at_0_1pct_fpr <= TPR_TARGET,
        },
        "not_measured": [f"LiRA: see digitguard privacy lira {model_dir}"],
        "command": f"digitguard privacy audit {model_dir} --samples {samples} --seed {seed}",
    }
    if out is not None:
        _write(out, document)
    if as_json:
        click.echo(json.dumps(document))
        return
    click.echo(
        f"{model_dir} (weights {verified.weights_sha256[:12]}…), loss-threshold attack on "
        f"{result.members} members / {result.non_members} non-members: AUC {result.auc:.4f} "
        f"(target ≤ 0.55), advantage {result.membership_advantage:.4f}, TPR at 0.1% FPR "
        f"{result.tpr_at_0_1pct_fpr:.2%} (target ≤ 0.5%), at 1% FPR {result.tpr_at_1pct_fpr:.2%}"
    )


@privacy.command("lira")
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option(
    "--pool",
    type=click.IntRange(min=20),
    default=2000,
    show_default=True,
    help="Candidates attacked: half training digits (members), half test digits.",
)
@click.option(
    "--filler",
    type=click.IntRange(min=0),
    default=8000,
    show_default=True,
    help="Other training digits every shadow model trains on.",
)
@click.option("--shadows", type=click.IntRange(min=4), default=8, show_default=True, help="Even.")
@click.option(
    "--shadow-epochs",
    type=click.IntRange(min=1),
    default=None,
    help="Epochs per shadow model (default: the target's).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--out", type=click.Path(path_type=Path, file_okay=False), default=None, help="lira-result.json + ROC."
)
@click.option("--json", "as_json", is_flag=True)
@data_dir_option
@trust_option
def lira_command(
    model_dir: Path,
    pool: int,
    filler: int,
    shadows: int,
    shadow_epochs: int | None,
    seed: int,
    out: Path | None,
    as_json: bool,
    data_dir: Path | None,
    trust_dirs: tuple[Path, ...],
) -> None:
    """Likelihood-ratio membership inference (LiRA) on MODEL_DIR with shadow models of its recipe."""
    from digitguard.privacy.lira import run_lira

    if shadows % 2:
        raise click.BadParameter("the number of shadow models must be even", param_hint="--shadows")
    verified, _data, splits = _target(model_dir, trust_dirs, data_dir)
    training = verified.manifest.training
    pool_images, pool_labels, is_member, filler_images, filler_labels = _lira_candidates(
        splits, pool, filler, seed
    )
    trainer, recipe = _shadow_trainer(training, shadow_epochs, seed)
    result = run_lira(
        verified.model,
        pool_images,
        pool_labels,
        is_member,
        filler_images,
        filler_labels,
        train_shadow=trainer,
        shadows=shadows,
        seed=seed,
        on_shadow=lambda index: click.echo(f"shadow model {index + 1}/{shadows} trained", err=True),
    )
    document: dict[str, Any] = {
        "model": str(model_dir),
        "model_sha256": verified.weights_sha256,
        "attack": "lira",
        "privacy": training.get("privacy"),
        "shadows": shadows,
        "pool": pool,
        "filler": len(filler_labels),
        "shadow_recipe": recipe,
        "online": result.online.to_dict(),
        "offline": result.offline.to_dict(),
        "auc": result.online.auc,
        "tpr_at_0_1pct_fpr": result.online.tpr_at_0_1pct_fpr,
        "targets": {
            "auc <= 0.55": result.online.auc <= AUC_TARGET,
            "tpr_at_0.1%_fpr <= 0.5%": result.online.tpr_at_0_1pct_fpr <= TPR_TARGET,
        },
        "command": (
            f"digitguard privacy lira {model_dir} --pool {pool} --filler {filler} --shadows {shadows}"
            + (f" --shadow-epochs {shadow_epochs}" if shadow_epochs else "")
            + f" --seed {seed}"
        ),
    }
    if out is not None:
        _write(
            out,
            document,
            "lira",
            {"online LiRA": result.online.to_dict(), "offline LiRA": result.offline.to_dict()},
        )
    if as_json:
        click.echo(json.dumps(document))
        return
    for name, side in (("online", result.online), ("offline", result.offline)):
        click.echo(
            f"{model_dir} (weights {verified.weights_sha256[:12]}…), {name} LiRA with {shadows} shadows on "
            f"{side.members} members / {side.non_members} non-members: AUC {side.auc:.4f} (target ≤ 0.55), "
            f"TPR at 0.1% FPR {side.tpr_at_0_1pct_fpr:.2%} (target ≤ 0.5%), "
            f"at 1% FPR {side.tpr_at_1pct_fpr:.2%}"
        )


def _target(model_dir: Path, trust_dirs: tuple[Path, ...], data_dir: Path | None):
    """The verified model, MNIST, and the splits its run used — members are what it trained on
    (its validation split, rebuilt from the manifest's seed and size, is left out)."""
    from digitguard.cli import default_data_dir
    from digitguard.data import mnist
    from digitguard.models.artifact import load_verified
    from digitguard.training.run import recorded_splits

    verified = load_verified(model_dir, list(trust_dirs))
    data = mnist.load(data_dir or default_data_dir())
    return verified, data, recorded_splits(data, verified.manifest.training)


def _lira_candidates(splits, pool: int, filler: int, seed: int):
    """(pool images, pool labels, is_member, filler images, filler labels): half the pool from what
    the target trained on, half from the test set; the filler from the rest of its training set."""
    import numpy as np
    import torch

    generator = torch.Generator().manual_seed(seed)
    half = min(pool // 2, len(splits.test_labels))
    train_order = torch.randperm(len(splits.train_labels), generator=generator)
    members, rest = train_order[:half], train_order[half : half + filler]
    outsiders = torch.randperm(len(splits.test_labels), generator=generator)[:half]
    images = torch.cat([splits.train_images[members], splits.test_images[outsiders]])
    labels = torch.cat([splits.train_labels[members], splits.test_labels[outsiders]])
    is_member = np.r_[np.ones(half, dtype=bool), np.zeros(half, dtype=bool)]
    return images, labels, is_member, splits.train_images[rest], splits.train_labels[rest]


def _shadow_trainer(training: dict[str, Any], shadow_epochs: int | None, seed: int):
    """Shadow models trained with the target's recorded recipe (from scratch; DP ones with the
    target's sampling rate and noise multiplier) — and the recipe, for the report."""
    import dataclasses

    from digitguard.training.config import TrainConfig
    from digitguard.training.fit import fit
    from digitguard.training.private import PrivacySchedule

    recorded = {k: v for k, v in training.items() if k not in ("history", "privacy", "init_from_sha256")}
    config = TrainConfig.from_dict({**recorded, "train_limit": None})
    if shadow_epochs is not None:
        config = dataclasses.replace(config, epochs=shadow_epochs)
    privacy = training.get("privacy")
    schedule = None
    if privacy:
        rate = float(privacy["sample_rate"])
        statistics = privacy.get("statistics_noise_multiplier")
        schedule = PrivacySchedule(
            rate,
            max(1, round(1 / rate)),
            config.epochs,
            float(privacy["noise_multiplier"]),
            None if statistics is None else float(statistics),
        )

    def train(index: int, images, labels):
        return fit(dataclasses.replace(config, seed=seed * 1000 + index), images, labels, schedule)

    # Shadows always start from scratch: a fine-tuned target's starting model saw the OUT candidates.
    return train, {**config.to_dict(), "target_was_fine_tuned": "init_from_sha256" in training}


def _write(out: Path, document: dict[str, Any], stem: str = "membership", curves=None) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5, 5), dpi=100)
    axes = figure.add_subplot()
    for label, curve in (curves or {"loss threshold": document}).items():
        fpr, tpr = zip(*curve["roc"], strict=True)
        axes.plot(
            [max(f, 1e-5) for f in fpr],
            [max(t, 1e-5) for t in tpr],
            label=f"{label} (AUC {curve['auc']:.3f})",
        )
    axes.plot([1e-5, 1], [1e-5, 1], linestyle="--", color="grey", label="chance")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("false-positive rate")
    axes.set_ylabel("true-positive rate")
    axes.legend()
    axes.grid(alpha=0.3)
    write_outputs(out, {f"{stem}-result.json": json_bytes(document), f"{stem}-roc.png": figure_png(figure)})
