"""The ``review_items`` table (schema migrations 2 and 3) and the queue's reads and writes.

``insert`` and ``decide`` take a connection, so the caller decides the transaction: the web app
writes a queue entry or a decision in the same transaction as its audit record (both or
neither). :class:`ReviewStore` wraps them in their own transactions for everything else.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from digitguard.review.queue import (
    AlreadyQueuedError,
    AlreadyReviewedError,
    Decision,
    Reason,
    ReviewItem,
    ReviewStoreError,
    Sample,
    Status,
    UnknownItemError,
    parse_abstention,
)

metadata = sa.MetaData()

review_items = sa.Table(
    "review_items",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("reason", sa.String(16), nullable=False),
    sa.Column("input", sa.LargeBinary, nullable=False),  # 784 bytes, 28x28 row-major, ink = 255
    sa.Column("input_sha256", sa.String(64), nullable=False),
    sa.Column("model_sha256", sa.String(64), nullable=False),
    sa.Column("digit", sa.SmallInteger, nullable=True),  # NULL: the model abstained
    sa.Column("probabilities", sa.Text, nullable=False),  # JSON array of ten numbers
    sa.Column("confidence", sa.Float, nullable=False),
    sa.Column("suggested_label", sa.SmallInteger, nullable=True),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("label", sa.SmallInteger, nullable=True),  # NULL unless status = 'labelled'
    sa.Column("reviewer", sa.String(200), nullable=True),
    sa.Column("reviewed_at", sa.String(40), nullable=True),
    # Migration 3. An Abstention code, checked by Sample rather than by a CHECK constraint, so
    # that a new reason needs no schema change; NULL for flags and for abstentions queued earlier.
    sa.Column("abstention_reason", sa.String(32), nullable=True),
    sa.CheckConstraint("reason IN ('abstained', 'flagged')", name="review_items_reason"),
    sa.CheckConstraint("status IN ('pending', 'labelled', 'not_a_digit')", name="review_items_status"),
    sa.CheckConstraint(
        "(status = 'labelled' AND label IS NOT NULL AND label BETWEEN 0 AND 9)"
        " OR (status <> 'labelled' AND label IS NULL)",
        name="review_items_label",
    ),
)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def insert(connection: Connection, sample: Sample, created_at: str | None = None) -> int:
    """Queue ``sample``; :class:`AlreadyQueuedError` if its request id is queued already."""
    exists = sa.select(review_items.c.id).where(review_items.c.request_id == sample.request_id)
    if connection.execute(exists).first() is not None:
        raise AlreadyQueuedError(f"request {sample.request_id} is already in the review queue")
    try:
        result = connection.execute(
            review_items.insert().values(
                request_id=sample.request_id,
                created_at=created_at or now_iso(),
                reason=Reason(sample.reason).value,
                input=sample.input,
                input_sha256=sample.input_sha256,
                model_sha256=sample.model_sha256,
                digit=sample.digit,
                probabilities=json.dumps(list(sample.probabilities), allow_nan=False),
                confidence=sample.confidence,
                suggested_label=sample.suggested_label,
                abstention_reason=sample.abstention_code,
                status=Status.PENDING.value,
            )
        )
    except sa.exc.IntegrityError as exc:  # queued by someone else since the check above
        raise AlreadyQueuedError(f"request {sample.request_id} is already in the review queue") from exc
    key = result.inserted_primary_key
    if not key:
        raise ReviewStoreError("the database returned no id for the new review item")
    return int(key[0])


def decide(connection: Connection, item_id: int, decision: Decision) -> None:
    """Record ``decision`` on a pending item; a decided item keeps its first decision."""
    result = connection.execute(
        review_items.update()
        .where(review_items.c.id == item_id, review_items.c.status == Status.PENDING.value)
        .values(
            status=decision.status.value,
            label=decision.label,
            reviewer=decision.reviewer,
            reviewed_at=decision.time,
        )
    )
    if result.rowcount == 1:
        return
    row = connection.execute(
        sa.select(review_items.c.reviewer, review_items.c.reviewed_at).where(review_items.c.id == item_id)
    ).first()
    if row is None:
        raise UnknownItemError(f"no review item {item_id}")
    raise AlreadyReviewedError(
        f"review item {item_id} was decided by {row.reviewer} at {row.reviewed_at}; a decision is final"
    )


def _item(row: Any) -> ReviewItem:
    sample = Sample(
        request_id=row.request_id,
        reason=Reason(row.reason),
        input=bytes(row.input),
        model_sha256=row.model_sha256,
        digit=row.digit,
        probabilities=tuple(json.loads(row.probabilities)),
        confidence=float(row.confidence),
        suggested_label=row.suggested_label,
        abstention_reason=parse_abstention(row.abstention_reason),
    )
    decision = None
    if row.status != Status.PENDING.value:
        decision = Decision(row.label, row.reviewer, row.reviewed_at)
    return ReviewItem(int(row.id), row.created_at, sample, decision)


class ReviewStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def enqueue(self, sample: Sample) -> ReviewItem:
        with self._transaction() as connection:
            item_id = insert(connection, sample)
        return self.get(item_id)

    def decide(self, item_id: int, decision: Decision) -> ReviewItem:
        with self._transaction() as connection:
            decide(connection, item_id, decision)
        return self.get(item_id)

    def get(self, item_id: int) -> ReviewItem:
        rows = self._select(review_items.select().where(review_items.c.id == item_id))
        if not rows:
            raise UnknownItemError(f"no review item {item_id}")
        return rows[0]

    def find(self, request_id: str) -> ReviewItem | None:
        rows = self._select(review_items.select().where(review_items.c.request_id == request_id))
        return rows[0] if rows else None

    def items(
        self, status: Status | None = Status.PENDING, *, offset: int = 0, limit: int = 25
    ) -> list[ReviewItem]:
        """Items with ``status`` (``None``: all), newest first."""
        query = review_items.select().order_by(review_items.c.id.desc()).offset(offset).limit(limit)
        if status is not None:
            query = query.where(review_items.c.status == Status(status).value)
        return self._select(query)

    def count(self, status: Status | None = Status.PENDING) -> int:
        query = sa.select(sa.func.count()).select_from(review_items)
        if status is not None:
            query = query.where(review_items.c.status == Status(status).value)
        try:
            with self.engine.connect() as connection:
                return int(connection.execute(query).scalar_one())
        except sa.exc.SQLAlchemyError as exc:
            raise ReviewStoreError(f"review queue unreadable: {exc}") from exc

    def exportable(self, *, include_flagged_unreviewed: bool = False) -> list[ReviewItem]:
        """Labelled items, oldest first; with the switch, also pending flagged items a user labelled."""
        condition = review_items.c.status == Status.LABELLED.value
        if include_flagged_unreviewed:
            condition = condition | (
                (review_items.c.status == Status.PENDING.value)
                & (review_items.c.reason == Reason.FLAGGED.value)
                & review_items.c.suggested_label.is_not(None)
            )
        return self._select(review_items.select().where(condition).order_by(review_items.c.id))

    def _select(self, query: sa.Select) -> list[ReviewItem]:
        try:
            with self.engine.connect() as connection:
                rows: Sequence[Any] = connection.execute(query).all()
        except sa.exc.SQLAlchemyError as exc:
            raise ReviewStoreError(f"review queue unreadable: {exc}") from exc
        return [_item(row) for row in rows]

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as connection:
                yield connection
        except sa.exc.SQLAlchemyError as exc:
            raise ReviewStoreError(f"review queue not written: {exc}") from exc
