"""The hash chain, signed checkpoints, and verification.

Each record carries the hash of the one before it; a record's hash covers its own fields
and that link, so editing, deleting, inserting or reordering any record breaks the chain at
that point. Every so often the service signs (ECDSA P-256) a checkpoint — the sequence number
and hash of the newest record — with its own key, so that even someone who can rewrite the
whole table cannot re-chain it or cut off its tail unnoticed without that key.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from digitguard.audit.record import GENESIS_HASH, AuditFormatError, AuditRecord, parse_record


@dataclass(frozen=True)
class StoredRecord:
    """A row as the database holds it: the indexed columns and the canonical text."""

    seq: int
    body: str
    hash: str


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    time: str
    key_id: str
    signature: str  # base64 DER ECDSA over checkpoint_message(seq, hash, time)


@dataclass(frozen=True)
class Finding:
    seq: int | None
    problem: str


@dataclass(frozen=True)
class VerificationReport:
    records: int
    checkpoints: int
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def first(self) -> Finding | None:
        return self.findings[0] if self.findings else None


def checkpoint_message(seq: int, record_hash: str, time: str) -> bytes:
    return f"digitguard-audit-checkpoint/1|{seq}|{record_hash}|{time}".encode()


def sign_checkpoint(
    private_key: ec.EllipticCurvePrivateKey, key_id: str, seq: int, record_hash: str, time: str
) -> Checkpoint:
    signature = private_key.sign(checkpoint_message(seq, record_hash, time), ec.ECDSA(hashes.SHA256()))
    return Checkpoint(seq, record_hash, time, key_id, base64.b64encode(signature).decode())


def verify_chain(
    rows: Iterable[StoredRecord],
    checkpoints: Iterable[Checkpoint],
    public_keys: dict[str, ec.EllipticCurvePublicKey],
    head: tuple[int, str] | None,
) -> VerificationReport:
    """Re-walk the chain in sequence order; report every break, the first one first."""
    findings: list[Finding] = []
    hashes_by_seq: dict[int, str] = {}
    expected_seq, prev_hash, count = 1, GENESIS_HASH, 0
    for row in rows:
        count += 1
        findings.extend(_check_row(row, expected_seq, prev_hash))
        hashes_by_seq[row.seq] = row.hash
        expected_seq, prev_hash = row.seq + 1, row.hash
    checkpoint_list = list(checkpoints)
    findings.extend(_check_checkpoints(checkpoint_list, hashes_by_seq, public_keys))
    findings.extend(_check_head(head, expected_seq - 1, prev_hash))
    ordered = sorted(findings, key=lambda f: (f.seq is None, f.seq or 0))
    return VerificationReport(count, len(checkpoint_list), tuple(ordered))


def _check_row(row: StoredRecord, expected_seq: int, prev_hash: str) -> list[Finding]:
    problems = []
    if row.seq != expected_seq:
        kind = "missing (deleted?)" if row.seq > expected_seq else "repeated or out of order"
        problems.append(Finding(expected_seq, f"record {expected_seq} {kind}: next stored is {row.seq}"))
    try:
        record = parse_record(row.body)
    except AuditFormatError as exc:
        return [*problems, Finding(row.seq, f"record {row.seq} unreadable: {exc}")]
    if record.seq != row.seq:
        problems.append(Finding(row.seq, f"record {row.seq} says it is record {record.seq} (moved?)"))
    if record.digest() != row.hash:
        problems.append(
            Finding(row.seq, f"record {row.seq} was edited: its content no longer matches its hash")
        )
    if record.prev_hash != prev_hash:
        problems.append(
            Finding(
                row.seq,
                f"record {row.seq} does not link to the record before it "
                "(inserted, deleted or reordered records)",
            )
        )
    return problems


def _check_checkpoints(
    checkpoints: list[Checkpoint],
    hashes_by_seq: dict[int, str],
    public_keys: dict[str, ec.EllipticCurvePublicKey],
) -> list[Finding]:
    findings = []
    for checkpoint in checkpoints:
        key = public_keys.get(checkpoint.key_id)
        if key is None:
            findings.append(
                Finding(
                    checkpoint.seq,
                    f"checkpoint at {checkpoint.seq} signed by unknown key {checkpoint.key_id[:16]}…",
                )
            )
            continue
        try:
            key.verify(
                base64.b64decode(checkpoint.signature),
                checkpoint_message(checkpoint.seq, checkpoint.hash, checkpoint.time),
                ec.ECDSA(hashes.SHA256()),
            )
        except (InvalidSignature, ValueError):
            findings.append(Finding(checkpoint.seq, f"checkpoint at {checkpoint.seq} has a forged signature"))
            continue
        stored = hashes_by_seq.get(checkpoint.seq)
        if stored is None:
            findings.append(
                Finding(
                    checkpoint.seq,
                    f"record {checkpoint.seq}, signed at a checkpoint, is gone (truncated or deleted)",
                )
            )
        elif stored != checkpoint.hash:
            findings.append(
                Finding(
                    checkpoint.seq,
                    f"record {checkpoint.seq} differs from the signed checkpoint (the chain was rewritten)",
                )
            )
    return findings


def _check_head(head: tuple[int, str] | None, last_seq: int, last_hash: str) -> list[Finding]:
    if head is None:
        return [] if last_seq == 0 else [Finding(None, "the chain head is missing")]
    head_seq, head_hash = head
    if head_seq > last_seq:
        return [Finding(last_seq + 1, f"records {last_seq + 1}–{head_seq} are missing: the tail was cut off")]
    if head_seq < last_seq:
        return [Finding(head_seq + 1, f"records after {head_seq} were appended behind the head's back")]
    if head_hash != last_hash:
        return [Finding(head_seq, f"record {head_seq} does not match the chain head")]
    return []


def seal(record: AuditRecord) -> StoredRecord:
    return StoredRecord(record.seq, record.canonical(), record.digest())
