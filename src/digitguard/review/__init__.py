"""The human review queue: predictions a person should look at, and the labels they give.

- ``queue``: what crosses the boundary — :class:`Sample` (the 28×28 input as 784 bytes and the
  model's answer), :class:`Decision` (a reviewer's label, or "not a digit"), :class:`ReviewItem`
  (a queued sample and its decision, if any) — the byte form of a model input
  (:func:`input_bytes`), label parsing, and the errors, each naming the rule it enforces.
- ``store``: the ``review_items`` table (schema migration 2) and :class:`ReviewStore`; the writes
  take a connection, so that the web app writes a queue entry and its audit record in one
  transaction.
- ``export``: reviewed samples as a labelled IDX data set (the MNIST file names) plus a
  ``manifest.json`` of hashes, counts, request ids and model hashes, written atomically.

Nothing here imports Flask or click; ``web/review.py`` and ``review_cli.py`` are the adapters.
"""
