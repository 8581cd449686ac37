"""``digitguard privacy audit``: how much a model gives away about which digits it was trained on.

A click adapter over :mod:`digitguard.privacy.membership`. Members are training digits the run
really trained on (its validation split, rebuilt from the manifest's seed and size, is left
out); non-members are MNIST test digits. Only the loss-threshold attack exists so far; the
stronger likelihood-ratio attack with shadow models (LiRA) is not built.
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

    from digitguard.cli import default_data_dir
    from digitguard.data import mnist
    from digitguard.models.artifact import load_verified
    from digitguard.privacy.membership import audit, per_sample_loss
    from digitguard.training.loop import to_model_input
    from digitguard.training.run import recorded_splits

    verified = load_verified(model_dir, list(trust_dirs))
    data = mnist.load(data_dir or default_data_dir())
    splits = recorded_splits(data, verified.manifest.training)  # members: what the run trained on
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
        **result.to_dict(),
        "targets": {
            "auc <= 0.55": result.auc <= AUC_TARGET,
            "tpr_at_0.1%_fpr <= 0.5%": result.tpr_at_0_1pct_fpr <= TPR_TARGET,
        },
        "not_measured": ["LiRA (likelihood-ratio attack with shadow models): not built"],
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


def _write(out: Path, document: dict[str, Any]) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5, 5), dpi=100)
    axes = figure.add_subplot()
    fpr, tpr = zip(*document["roc"], strict=True)
    axes.plot(
        [max(f, 1e-5) for f in fpr],
        [max(t, 1e-5) for t in tpr],
        label=f"loss threshold (AUC {document['auc']:.3f})",
    )
    axes.plot([1e-5, 1], [1e-5, 1], linestyle="--", color="grey", label="chance")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("false-positive rate")
    axes.set_ylabel("true-positive rate")
    axes.legend()
    axes.grid(alpha=0.3)
    write_outputs(
        out, {"membership-result.json": json_bytes(document), "membership-roc.png": figure_png(figure)}
    )
