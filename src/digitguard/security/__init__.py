"""Identities, roles and credentials — the core of access control, without Flask.

- ``keys``: API-key tokens, their slow (scrypt) hashes, roles.
- ``store``: the database tables (SQLAlchemy; SQLite by default, PostgreSQL for replicas)
  for keys and sign-in throttling, and :class:`KeyStore`.
- ``throttle``: growing lock-outs after failed sign-ins.
"""
