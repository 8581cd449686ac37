"""Audited appends per second: SQLite (WAL, synchronous=FULL) and PostgreSQL, one and four writers.

    python bench/audit_appends.py [--records 500] [--postgres URL]

SQLite runs twice: through digitguard's append path (a host-wide ``flock`` and a direct
``sqlite3`` connection) and through plain SQLAlchemy with SQLite's busy-wait, side by side.
Each append is one transaction: lock the chain head, insert the record, move the head (and
sign a checkpoint every 100 records). The PostgreSQL run uses a fresh schema it drops after.
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import ec

from digitguard.audit.store import AuditStore, CheckpointSigner, audit_engine

DETAILS = {
    "digit": 7,
    "abstained": False,
    "probabilities": [0.0] * 7 + [0.999] + [0.0] * 2,
    "confidence": 0.999,
    "input_sha256": "ab" * 32,
    "model_sha256": "cd" * 32,
    "latency_ms": 3.1,
}


SIGNER = CheckpointSigner(ec.derive_private_key(20261123, ec.SECP256R1()))  # a fixed benchmark-only key


def append_many(url: str, count: int, generic: bool = False) -> tuple[float, float]:
    """Append ``count`` records; returns when the appends started and ended (process start excluded)."""
    store = AuditStore(audit_engine(url), SIGNER)
    if generic:
        store.sqlite = None  # SQLAlchemy's path with SQLite's own busy-wait, as before the append lock
    store.append("prediction", "anonymous:0123456789abcdef", "bench-warm-up", DETAILS)
    started = time.time()
    for number in range(count):
        store.append("prediction", "anonymous:0123456789abcdef", f"bench-{number}", DETAILS)
    ended = time.time()
    store.engine.dispose()
    return started, ended


def rate(url: str, records: int, writers: int, generic: bool = False) -> float:
    """Appends per second from the first writer's first append to the last writer's last one."""
    AuditStore(audit_engine(url))  # create the schema once
    if writers == 1:
        spans = [append_many(url, records, generic)]
    else:
        with multiprocessing.get_context("spawn").Pool(writers) as pool:
            spans = pool.starmap(append_many, [(url, records // writers, generic)] * writers)
    elapsed = max(end for _start, end in spans) - min(start for start, _end in spans)
    assert AuditStore(audit_engine(url)).verify({SIGNER.key_id: SIGNER.private_key.public_key()}).ok
    return records / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=500)
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    print(f"{args.records} appends per run; the chain is verified after each run")
    for writers in (1, 4):
        for generic in (False, True):
            with tempfile.TemporaryDirectory() as tmp:
                sqlite_url = f"sqlite:///{Path(tmp) / 'a.db'}"
                label = "sqlite, SQLAlchemy, busy-wait" if generic else "sqlite, append lock, sqlite3"
                appends_per_s = rate(sqlite_url, args.records, writers, generic)
                print(f"{label:<32}{writers} writer(s): {appends_per_s:8.1f} appends/s")
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        admin = sa.create_engine(args.postgres)
        with admin.begin() as connection:
            connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        try:
            url = f"{args.postgres}?options=-csearch_path%3D{schema}"
            print(f"{'postgresql':<32}{writers} writer(s): {rate(url, args.records, writers):8.1f} appends/s")
        finally:
            with admin.begin() as connection:
                connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    main()
