"""digitguard — a secure MNIST digit recogniser, built to be attacked and audited.

The package splits into a core that does no I/O beyond its own files and thin
adapters at the edge:

- ``digitguard.data``: the strict IDX parser (``idx``) and the MNIST data set
  with pinned hashes, verification and mirrored download (``mnist``).
- ``digitguard.models``: the architecture registry (``architectures``), the
  manifest (``manifest``), signing and the trust store (``signing``,
  ``trust``) and the one loader that fails closed (``artifact.load_verified``).
- ``digitguard.training``: the configuration, the loop, checkpoints and a
  whole run from verified data to a signed artifact (``run.train_model``).
- ``digitguard.errors``: every deliberate error, each with its exit status.
- ``digitguard.cli``: the ``digitguard`` command, a thin click adapter.
"""

__version__ = "0.1.0"
