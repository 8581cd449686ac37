"""Audited appends per second: SQLite (WAL, synchronous=FULL) and PostgreSQL, one and four writers.

    python bench/audit_appends.py [--records 500] [--postgres URL]

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


def append_many(url: str, count: int) -> None:
    store = AuditStore(audit_engine(url), SIGNER)
    for number in range(count):
        store.append("prediction", "anonymous:0123456789abcdef", f"bench-{number}", DETAILS)
    store.engine.dispose()


def rate(url: str, records: int, writers: int) -> float:
    AuditStore(audit_engine(url))  # create the schema once
    started = time.perf_counter()
    if writers == 1:
        append_many(url, records)
    else:
        with multiprocessing.get_context("spawn").Pool(writers) as pool:
            pool.starmap(append_many, [(url, records // writers)] * writers)
    elapsed = time.perf_counter() - started
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
        with tempfile.TemporaryDirectory() as tmp:
            sqlite_url = f"sqlite:///{Path(tmp) / 'a.db'}"
            print(
                f"sqlite      {writers} writer(s): {rate(sqlite_url, args.records, writers):8.1f} appends/s"
            )
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        admin = sa.create_engine(args.postgres)
        with admin.begin() as connection:
            connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        try:
            url = f"{args.postgres}?options=-csearch_path%3D{schema}"
            print(f"postgresql  {writers} writer(s): {rate(url, args.records, writers):8.1f} appends/s")
        finally:
            with admin.begin() as connection:
                connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    main()
