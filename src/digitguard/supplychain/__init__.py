"""The dependency supply chain: a hash lock enforced at install time and an offline vulnerability audit.

* :mod:`~digitguard.supplychain.lock` — the lock file (pip's hash-checking requirements format);
* :mod:`~digitguard.supplychain.advisories` — known vulnerabilities from an offline OSV copy;
* :mod:`~digitguard.supplychain.environment` — what is installed, and the archives a lock hashes;
* :mod:`~digitguard.supplychain.audit` — the pure comparison of the three, every rule failing closed.
"""
