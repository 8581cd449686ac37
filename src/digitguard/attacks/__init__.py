"""Adversarial attacks and how robust a model is against them.

A map of the package:

* :mod:`~digitguard.attacks.base` — the :class:`Attack` interface (``attack(images, labels) ->
  adversarial``: torch tensors, pixels in [0, 1], untargeted, L∞), ε parsing and the budget check.
* :mod:`~digitguard.attacks.fgsm`, :mod:`~digitguard.attacks.pgd` — native PyTorch FGSM and PGD,
  one attack per module.
* :mod:`~digitguard.attacks.art_attacks` — C&W L∞ and AutoAttack through the Adversarial
  Robustness Toolbox, and ART's FGSM and PGD as referees of the native ones.
* :mod:`~digitguard.attacks.reference_autoattack` — Croce & Hein's own AutoAttack (``pyautoattack``),
  the referee of the ART-based one.
* :mod:`~digitguard.attacks.sharded` — a per-image evaluation over a range of test images, sharded
  across ``torch.distributed`` processes, resumable, merged into one file whatever the world size.
* :mod:`~digitguard.attacks.registry` — the names the command line accepts.
* :mod:`~digitguard.attacks.evaluate` — clean and robust accuracy and attack success rate per ε,
  and the referee comparison, as frozen, JSON-able reports.
* :mod:`~digitguard.attacks.plots` — accuracy against ε and a grid of adversarial digits, as PNG.

The seed CNN takes pixels in [0, 1] directly (no normalisation layer in front of it), so the
attacks work on the model as loaded; a model that normalises its input must do so inside its
``forward`` for ε to keep its meaning in pixel space.
"""
