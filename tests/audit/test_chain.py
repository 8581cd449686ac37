"""Verification finds each kind of tampering, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from digitguard.audit.record import AuditRecord, canonical_json, parse_record
from digitguard.audit.store import (
    AuditStore,
    AuditStoreError,
    CheckpointSigner,
    audit_checkpoints,
    audit_head,
    audit_records,
)


def fill(trail: AuditStore, count: int = 12) -> None:
    for number in range(count):
        trail.append(
            "prediction",
            "anonymous:ab12",
            f"req-{number}",
            {"digit": number % 10, "confidence": 0.5 + number / 100},
        )


def keys(signer: CheckpointSigner) -> dict:
    return {signer.key_id: signer.private_key.public_key()}


def execute(trail: AuditStore, statement) -> None:
    with trail.engine.begin() as connection:
        connection.execute(statement)


class TestAnIntactTrail:
    def test_verifies_with_checkpoints_every_five_records(self, trail: AuditStore, audit_signer) -> None:
        fill(trail)
        report = trail.verify(keys(audit_signer))
        assert report.ok, report.findings
        assert report.records == 12 and report.checkpoints == 2
        assert trail.head()[0] == 12

    def test_records_chain_to_each_other(self, trail: AuditStore) -> None:
        first = trail.append("prediction", "anonymous:x", "r1", {})
        second = trail.append("key.created", "admin-key", None, {"key_id": "abc"})
        assert second.prev_hash == first.digest() and second.seq == first.seq + 1

    def test_find_by_request_id(self, trail: AuditStore) -> None:
        fill(trail, 3)
        (record,) = trail.find("req-1")
        assert record.details["digit"] == 1 and record.kind == "prediction"


class TestTamperingIsFound:
    def test_an_edited_field(self, trail: AuditStore, audit_signer) -> None:
        fill(trail)
        body = json.loads(next(r.body for r in trail.rows() if r.seq == 7))
        body["details"]["digit"] = 9
        execute(
            trail, audit_records.update().where(audit_records.c.seq == 7).values(body=canonical_json(body))
        )
        report = trail.verify(keys(audit_signer))
        assert report.first.seq == 7 and "edited" in report.first.problem

    def test_a_deleted_record(self, trail: AuditStore, audit_signer) -> None:
        fill(trail)
        execute(trail, audit_records.delete().where(audit_records.c.seq == 4))
        assert trail.verify(keys(audit_signer)).first.seq == 4

    def test_an_inserted_forged_record(self, trail: AuditStore, audit_signer) -> None:
        fill(trail)
        rows = list(trail.rows())
        execute(trail, audit_records.delete().where(audit_records.c.seq > 6))
        forged = AuditRecord(
            7, "2026-01-01T00:00:00+00:00", "prediction", "anonymous:evil", "forged", {}, rows[5].hash
        )
        execute(
            trail,
            audit_records.insert().values(
                seq=7,
                time=forged.time,
                kind="prediction",
                request_id="forged",
                body=forged.canonical(),
                hash=forged.digest(),
            ),
        )
        for row in rows[6:]:
            execute(
                trail,
                audit_records.insert().values(
                    seq=row.seq + 1,
                    time="t",
                    kind="prediction",
                    request_id=None,
                    body=row.body,
                    hash=row.hash,
                ),
            )
        report = trail.verify(keys(audit_signer))
        assert report.first.seq == 8  # the first genuine record after the forgery no longer links

    def test_two_swapped_records(self, trail: AuditStore, audit_signer) -> None:
        fill(trail)
        rows = {r.seq: r for r in trail.rows()}
        for a, b in ((3, 8), (8, 3)):
            execute(
                trail,
                audit_records.update()
                .where(audit_records.c.seq == a)
                .values(body=rows[b].body, hash=rows[b].hash),
            )
        report = trail.verify(keys(audit_signer))
        assert report.first.seq == 3

    def test_a_tail_cut_off_after_the_last_checkpoint(self, trail: AuditStore, audit_signer) -> None:
        fill(trail)  # checkpoints at 5 and 10
        execute(trail, audit_records.delete().where(audit_records.c.seq > 10))
        report = trail.verify(keys(audit_signer))
        assert report.first.seq == 11 and "cut off" in report.first.problem

    def test_a_tail_cut_off_with_the_head_rewritten_is_caught_by_the_checkpoint(
        self, trail, audit_signer
    ) -> None:
        fill(trail)
        rows = {r.seq: r for r in trail.rows()}
        execute(trail, audit_records.delete().where(audit_records.c.seq > 8))
        execute(trail, audit_head.update().values(seq=8, hash=rows[8].hash))
        report = trail.verify(keys(audit_signer))
        assert report.first.seq == 10 and "gone" in report.first.problem

    def test_a_rechained_table_is_caught_by_the_signed_checkpoints(
        self, trail: AuditStore, audit_signer
    ) -> None:
        fill(trail, 6)
        records = [parse_record(r.body) for r in trail.rows()]
        execute(trail, audit_records.delete())
        # An attacker with write access rebuilds a perfectly linked chain with one answer changed.
        prev = "0" * 64
        for record in records:
            details = {**record.details, "digit": 0} if record.seq == 2 else record.details
            rebuilt = AuditRecord(
                record.seq, record.time, record.kind, record.principal, record.request_id, details, prev
            )
            execute(
                trail,
                audit_records.insert().values(
                    seq=rebuilt.seq,
                    time=rebuilt.time,
                    kind=rebuilt.kind,
                    request_id=rebuilt.request_id,
                    body=rebuilt.canonical(),
                    hash=rebuilt.digest(),
                ),
            )
            prev = rebuilt.digest()
        execute(trail, audit_head.update().values(seq=6, hash=prev))
        report = trail.verify(keys(audit_signer))
        assert not report.ok and report.first.seq == 5 and "rewritten" in report.first.problem

    def test_a_forged_checkpoint_signature(self, trail: AuditStore, audit_signer) -> None:
        fill(trail)
        execute(
            trail, audit_checkpoints.update().where(audit_checkpoints.c.seq == 5).values(time="2000-01-01")
        )
        assert "forged signature" in trail.verify(keys(audit_signer)).first.problem

    def test_checkpoints_by_an_unknown_key(self, trail: AuditStore) -> None:
        fill(trail)
        assert "unknown key" in trail.verify({}).first.problem

    def test_an_unreadable_body(self, trail: AuditStore, audit_signer) -> None:
        fill(trail, 3)
        execute(
            trail, audit_records.update().where(audit_records.c.seq == 2).values(body='{"seq": 2, "x": 1}')
        )
        assert trail.verify(keys(audit_signer)).first.seq == 2


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_numbers_cannot_enter_a_record(trail: AuditStore, value: float) -> None:
    with pytest.raises(AuditStoreError, match="not written"):
        trail.append("prediction", "anonymous:x", None, {"confidence": value})
    assert trail.head()[0] == 0


def test_the_canonical_encoding_is_stable() -> None:
    record = AuditRecord(
        1,
        "2026-11-23T00:00:00.000000+00:00",
        "prediction",
        "anonymous:ab",
        "r",
        {"probabilities": [0.1, 0.9], "digit": 1},
        "0" * 64,
    )
    assert record.canonical() == (
        '{"details":{"digit":1,"probabilities":[0.1,0.9]},"format":"digitguard-audit/1","kind":"prediction",'
        '"prev_hash":"' + "0" * 64 + '","principal":"anonymous:ab","request_id":"r","seq":1,'
        '"time":"2026-11-23T00:00:00.000000+00:00"}'
    )
    assert parse_record(record.canonical()) == record


def test_the_database_column_types_keep_the_text_exact(trail: AuditStore) -> None:
    trail.append("prediction", "anonymous:x", None, {"confidence": 0.1 + 0.2, "text": "é ✓"})
    (row,) = trail.rows()
    assert parse_record(row.body).details == {"confidence": 0.30000000000000004, "text": "é ✓"}
    with trail.engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(audit_records)).scalar() == 1
