"""Training-data poisoning: the BadNets attack made reproducible, and the scans that find it.

- :mod:`~digitguard.poisoning.triggers` — the trigger registry (``square3``: a 3×3 white square).
- :mod:`~digitguard.poisoning.poison` — the attack core: arrays in, poisoned arrays and the
  exact list of changed samples out (no files).
- :mod:`~digitguard.poisoning.backdoor` — clean accuracy and attack success rate of a model.
- :mod:`~digitguard.poisoning.scan` — data-level detection (spectral signatures, activation
  clustering, a loss check for flipped labels) and sanitisation.
- :mod:`~digitguard.poisoning.cli` — the click adapters (``digitguard poison``,
  ``attack-backdoor``, ``data scan``).

Writing a derived data directory (its own ``SHA256SUMS`` and ``dataset.json``) lives in
:mod:`digitguard.data.derived`, because training reads it.
"""
