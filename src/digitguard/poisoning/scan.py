"""Data-level poison scans on a model's penultimate layer, and sanitisation.

Three complementary checks, each per *labelled* class, each flagging sample indices:

- ``spectral`` — spectral signatures (Tran, Li & Mądry, NeurIPS 2018): centre the class's
  penultimate activations, project them on the top singular vector; a backdoor's samples share
  the trigger feature and form the far tail of that projection.
- ``clustering`` — activation clustering (Chen et al., 2018): reduce the class's activations to
  ``components`` principal components, split them with 2-means; a cluster that is small and far
  from the rest (the model sorts triggered 3s with the 7s for a different reason than real 7s) is
  flagged.
- ``occlusion`` — trigger localisation at the data level (after SentiNet, Chou et al., 2018): find
  the ``occlusion_window``² patch that carries most of the labelled class's evidence
  (|gradient × input|) and blank it; a sample whose label then gets almost no probability, and
  whose evidence was concentrated in that one patch, was labelled by a small patch — a trigger —
  not by the digit.
- ``loss`` — a flipped label contradicts the image: the model (which fits clean structure long
  before it memorises noise) gives the labelled class little probability (< 5%) while preferring
  another class (> 50%).

``scan`` returns a :class:`ScanReport`; ``sanitize`` drops the flagged samples. The thresholds
are in :class:`ScanConfig`; docs/poisoning.md says how they were chosen and what they achieve.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from digitguard.defences.occlusion import blank_most_salient_patch
from digitguard.training.loop import to_model_input

METHODS = ("spectral", "clustering", "occlusion", "loss")


@dataclass(frozen=True)
class ScanConfig:
    spectral_z: float = 8.0  # robust z-score of the projection above which a sample is an outlier
    clustering_components: int = 10
    clustering_max_fraction: float = 0.25  # a poison cluster is at most this share of its class
    clustering_min_separation: float = 6.0  # gap between the clusters, in within-cluster spreads
    occlusion_window: int = 3
    occlusion_max_label_probability: float = 0.1  # label probability once the patch is blanked
    occlusion_min_concentration: float = 0.3  # share of the evidence inside the patch
    loss_max_label_probability: float = 0.05  # chosen on the 1% flip set of seed 0, checked on seed 1
    loss_min_confidence: float = 0.5
    methods: tuple[str, ...] = METHODS
    batch_size: int = 1000


@dataclass(frozen=True)
class ClassFindings:
    label: int
    samples: int
    flagged: dict[str, int]  # method -> number of samples it flagged in this class
    flagged_total: int


@dataclass(frozen=True)
class ScanReport:
    methods: tuple[str, ...]
    samples: int
    flagged: tuple[int, ...]  # sorted indices into the scanned training set
    by_method: dict[str, tuple[int, ...]]
    per_class: tuple[ClassFindings, ...]
    config: dict[str, object] = field(default_factory=dict)

    def summary(self) -> dict[str, object]:
        """Everything but the index lists — what a model manifest records."""
        return {
            "methods": list(self.methods),
            "samples": self.samples,
            "flagged": len(self.flagged),
            "by_method": {m: len(v) for m, v in self.by_method.items()},
            "per_class": [c.__dict__ for c in self.per_class],
            "config": self.config,
        }

    def to_dict(self) -> dict[str, object]:
        return {
            **self.summary(),
            "flagged_indices": list(self.flagged),
            "by_method_indices": {m: list(v) for m, v in self.by_method.items()},
        }


@dataclass(frozen=True)
class Features:
    activations: np.ndarray  # (n, d) float32: the input of the model's last linear layer
    probabilities: np.ndarray  # (n, 10) float32


@torch.inference_mode()
def extract_features(model: nn.Module, images: np.ndarray, batch_size: int = 1000) -> Features:
    """Penultimate activations and class probabilities for uint8 ``images`` ``(n, 28, 28)``."""
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    captured: list[torch.Tensor] = []
    hook = last.register_forward_pre_hook(lambda _m, inputs: captured.append(inputs[0].detach()))
    model.eval()
    probabilities = []
    try:
        for start in range(0, len(images), batch_size):
            batch = torch.from_numpy(np.array(images[start : start + batch_size]))
            probabilities.append(F.softmax(model(to_model_input(batch)), dim=1))
    finally:
        hook.remove()
    return Features(torch.cat(captured).numpy(), torch.cat(probabilities).numpy())


def spectral_outliers(activations: np.ndarray, z: float) -> np.ndarray:
    """Indices (into ``activations``) in the far tail of the top singular direction."""
    if len(activations) < 3:
        return np.empty(0, dtype=np.int64)
    centred = activations - activations.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    projection = centred @ vt[0]
    median = np.median(projection)
    spread = 1.4826 * np.median(np.abs(projection - median)) + 1e-12
    robust_z = (projection - median) / spread
    # The singular vector's sign is arbitrary: a backdoor is the heavier of the two tails.
    if -robust_z.min() > robust_z.max():
        robust_z = -robust_z
    return np.flatnonzero(robust_z > z)


def two_means(points: np.ndarray, iterations: int = 50) -> np.ndarray:
    """Deterministic 2-means (farthest-point initialisation); returns 0/1 assignments."""
    first = points[np.argmax(np.linalg.norm(points - points.mean(0), axis=1))]
    second = points[np.argmax(np.linalg.norm(points - first, axis=1))]
    centres = np.stack([first, second])
    assignment = np.zeros(len(points), dtype=np.int64)
    for _ in range(iterations):
        distances = np.linalg.norm(points[:, None, :] - centres[None], axis=2)
        new = distances.argmin(1)
        if np.array_equal(new, assignment) and _ > 0:
            break
        assignment = new
        for k in (0, 1):
            if (assignment == k).any():
                centres[k] = points[assignment == k].mean(0)
    return assignment


def cluster_outliers(
    activations: np.ndarray, components: int, max_fraction: float, min_separation: float
) -> np.ndarray:
    """Indices of the smaller 2-means cluster when it is small and well separated."""
    if len(activations) < 10:
        return np.empty(0, dtype=np.int64)
    centred = activations - activations.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    reduced = centred @ vt[:components].T
    assignment = two_means(reduced)
    small = int(np.bincount(assignment, minlength=2).argmin())
    members = np.flatnonzero(assignment == small)
    if not 0 < len(members) <= max_fraction * len(activations):
        return np.empty(0, dtype=np.int64)
    rest = reduced[assignment != small]
    centre_small, centre_rest = reduced[members].mean(0), rest.mean(0)
    axis = (centre_small - centre_rest) / (np.linalg.norm(centre_small - centre_rest) + 1e-12)
    along_small, along_rest = reduced[members] @ axis, rest @ axis
    spread = np.sqrt((along_small.var() + along_rest.var()) / 2) + 1e-12
    separation = (along_small.mean() - along_rest.mean()) / spread
    return members if separation >= min_separation else np.empty(0, dtype=np.int64)


def occlusion_scores(
    model: nn.Module, images: np.ndarray, labels: np.ndarray, window: int = 3, batch_size: int = 500
) -> tuple[np.ndarray, np.ndarray]:
    """Per sample: the label's probability with the most salient ``window``² patch blanked, and the
    share of the |gradient × input| evidence for the label inside that patch."""
    model.eval()
    label_p, concentration = [], []
    for start in range(0, len(images), batch_size):
        x = to_model_input(torch.from_numpy(np.array(images[start : start + batch_size])))
        y = torch.from_numpy(labels[start : start + batch_size].astype(np.int64))
        blanked_p, share = blank_most_salient_patch(model, x, y, window)
        label_p.append(blanked_p)
        concentration.append(share)
    return torch.cat(label_p).numpy(), torch.cat(concentration).numpy()


def loss_outliers(probabilities: np.ndarray, labels: np.ndarray, max_label_p: float, min_conf: float):
    """Indices whose label gets probability < ``max_label_p`` while another class gets > ``min_conf``."""
    label_p = probabilities[np.arange(len(labels)), labels]
    return np.flatnonzero((label_p < max_label_p) & (probabilities.max(1) > min_conf))


def scan(model: nn.Module, images: np.ndarray, labels: np.ndarray, config: ScanConfig | None = None):
    """Run the configured methods over the training set ``images``/``labels``."""
    config = config or ScanConfig()
    unknown = set(config.methods) - set(METHODS)
    if unknown:
        raise ValueError(f"unknown scan methods {sorted(unknown)}; known: {list(METHODS)}")
    features = extract_features(model, images, config.batch_size)
    labels = labels.astype(np.int64)
    by_method: dict[str, set[int]] = {m: set() for m in config.methods}
    per_class = []
    if "occlusion" in by_method:
        label_p, concentration = occlusion_scores(model, images, labels, config.occlusion_window)
        flagged = np.flatnonzero(
            (label_p < config.occlusion_max_label_probability)
            & (concentration > config.occlusion_min_concentration)
        )
        by_method["occlusion"].update(int(i) for i in flagged)
    if "loss" in by_method:
        flagged = loss_outliers(
            features.probabilities, labels, config.loss_max_label_probability, config.loss_min_confidence
        )
        by_method["loss"].update(int(i) for i in flagged)
    for label in range(10):
        members = np.flatnonzero(labels == label)
        acts = features.activations[members]
        if "spectral" in by_method:
            by_method["spectral"].update(int(i) for i in members[spectral_outliers(acts, config.spectral_z)])
        if "clustering" in by_method:
            found = cluster_outliers(
                acts,
                config.clustering_components,
                config.clustering_max_fraction,
                config.clustering_min_separation,
            )
            by_method["clustering"].update(int(i) for i in members[found])
    flagged_all = sorted(set().union(*by_method.values()))
    for label in range(10):
        in_class = {int(i) for i in np.flatnonzero(labels == label)}
        counts = {m: len(v & in_class) for m, v in by_method.items()}
        per_class.append(ClassFindings(label, len(in_class), counts, len(in_class.intersection(flagged_all))))
    return ScanReport(
        methods=tuple(config.methods),
        samples=len(labels),
        flagged=tuple(flagged_all),
        by_method={m: tuple(sorted(v)) for m, v in by_method.items()},
        per_class=tuple(per_class),
        config={k: v for k, v in config.__dict__.items() if k != "methods"},
    )


@dataclass(frozen=True)
class DetectionScore:
    poisoned: int
    found: int
    recall: float
    clean: int
    clean_removed: int
    false_removal_rate: float


def score(flagged: tuple[int, ...] | list[int], poisoned: list[int], samples: int) -> DetectionScore:
    """Recall on the known poisoned indices and the share of clean samples flagged."""
    flagged_set, poisoned_set = set(flagged), set(poisoned)
    found = len(flagged_set & poisoned_set)
    clean = samples - len(poisoned_set)
    clean_removed = len(flagged_set - poisoned_set)
    return DetectionScore(
        poisoned=len(poisoned_set),
        found=found,
        recall=found / len(poisoned_set) if poisoned_set else 1.0,
        clean=clean,
        clean_removed=clean_removed,
        false_removal_rate=clean_removed / clean if clean else 0.0,
    )


def train_proxy_model(images: np.ndarray, labels: np.ndarray, epochs: int = 2, seed: int = 0) -> nn.Module:
    """A seed CNN trained on the data being scanned (when no model is given): the scans read
    what a model *learns* from these samples, backdoor included."""
    from digitguard.models.architectures import build_model
    from digitguard.training.loop import one_cycle_lr, train_epoch

    torch.manual_seed(seed)
    model = build_model("seed-cnn")
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    x = torch.from_numpy(np.array(images))
    y = torch.from_numpy(labels.astype(np.int64))
    total = -(-len(x) // 128) * epochs
    for epoch in range(epochs):
        train_epoch(
            model,
            optimizer,
            x,
            y,
            epoch=epoch,
            seed=seed,
            batch_size=128,
            lr_at=lambda step: one_cycle_lr(step, total, 2e-3, 0.05),
        )
    return model.eval()
