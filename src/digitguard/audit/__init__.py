"""The tamper-evident audit trail.

- ``record``: :class:`AuditRecord` and its canonical encoding (the bytes that are hashed).
- ``chain``: sealing records into a hash chain, signed checkpoints, and verification that
  names the first record that was edited, deleted, inserted, reordered or cut off.
- ``store``: the trail in a database (SQLAlchemy; SQLite or PostgreSQL) with appends
  serialized in the database, so several processes and hosts extend one chain.
"""
