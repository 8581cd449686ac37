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
