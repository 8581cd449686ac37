"""Train a fresh model on in-memory data: no files, no checkpoints, no signing.

For models that are measured and thrown away — the shadow models of a membership-inference
audit (:mod:`digitguard.privacy.lira`) — trained with the recipe a real run's manifest records.
Release models go through :func:`digitguard.training.run.train_model` instead.
"""

from __future__ import annotations

import torch
from torch import nn

from digitguard.models.architectures import build_model
from digitguard.training import adversarial, precision, private
from digitguard.training.config import TrainConfig
from digitguard.training.loop import one_cycle_lr, train_epoch


def fit(
    config: TrainConfig,
    images: torch.Tensor,
    labels: torch.Tensor,
    privacy: private.PrivacySchedule | None = None,
) -> nn.Module:
    """A model of ``config.architecture`` trained on uint8 ``images`` ``(n, 28, 28)``.

    A DP config trains with DP-SGD; ``privacy`` fixes its sampling rate and noise (a shadow model
    mimics its target's) instead of planning them from the budget.
    """
    torch.manual_seed(config.seed)
    model = build_model(config.architecture)
    budget = config.privacy_budget()
    if budget is not None:
        schedule = privacy or private.plan(
            budget, len(labels), config.batch_size, config.epochs, private.statistics_noise_for(model)
        )
        run = private.PrivateTraining(
            model, private.sgd_for(model, config.learning_rate), images, labels, budget, schedule
        )
        for epoch in range(schedule.epochs):
            run.train_epoch(epoch)
        run.close()
        return model.eval()
    optimizer = torch.optim.Adam(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    total_steps = -(-len(labels) // config.batch_size) * config.epochs
    adversary = config.adversarial_settings()
    for epoch in range(config.epochs):
        train_epoch(
            precision.for_training(model, config.precision),
            optimizer,
            images,
            labels,
            epoch=epoch,
            seed=config.seed,
            batch_size=config.batch_size,
            augment=config.augment,
            augment_style=config.augment_style,
            lr_at=lambda step: one_cycle_lr(step, total_steps, config.learning_rate, config.warmup_fraction),
            objective=None if adversary is None else adversarial.objective(adversary, epoch),
        )
    return model.eval()
