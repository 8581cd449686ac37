"""Several processes appending at once still produce one gap-free chain that verifies."""

from __future__ import annotations

import subprocess
import sys

from digitguard.audit.record import parse_record
from digitguard.audit.store import AuditStore
from tests.conftest import REPO_ROOT

PROCESSES, EACH = 4, 40


def test_concurrent_appenders_make_one_gap_free_verifiable_chain(trail: AuditStore, audit_url: str) -> None:
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.audit.appender", audit_url, str(EACH), f"p{index}"],
            cwd=REPO_ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in range(PROCESSES)
    ]
    for worker in workers:
        _, stderr = worker.communicate(timeout=300)
        assert worker.returncode == 0, stderr
    rows = list(trail.rows())
    assert [row.seq for row in rows] == list(range(1, PROCESSES * EACH + 1))
    report = trail.verify({})
    assert report.ok, report.findings[:3]
    principals = {
        record.principal for row in rows for record in trail.find(parse_record(row.body).request_id)
    }
    assert principals == {f"process:p{index}" for index in range(PROCESSES)}


def test_opening_the_trail_again_never_resets_or_trips_over_the_existing_head(audit_url: str) -> None:
    """Replicas starting together on a fresh database each create the head row: the two-replica
    test caught one failing on the duplicate. The insert must be a no-op when the row exists."""
    from digitguard.audit.store import audit_engine

    store = AuditStore(audit_engine(audit_url))
    store.append("prediction", "anonymous:x", "r1", {"digit": 1})
    again = AuditStore(audit_engine(audit_url))
    again._ensure_head()  # what a replica that lost the race does after the winner's insert
    assert again.head() == store.head() and store.head()[0] == 1  # type: ignore[index]
    for each in (store, again):
        each.engine.dispose()
