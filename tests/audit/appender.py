"""Run as a separate process by the concurrency test: append N records to the trail at URL."""

from __future__ import annotations

import sys

from digitguard.audit.store import AuditStore, audit_engine

if __name__ == "__main__":
    url, count, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    store = AuditStore(audit_engine(url))
    for number in range(count):
        store.append("prediction", f"process:{name}", f"{name}-{number}", {"n": number})
