"""review_items (migrations 2 and 3), SQLite and PostgreSQL: one entry per prediction, final decisions."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa

from digitguard.inference.predictor import Abstention
from digitguard.migrations import LATEST, MIGRATIONS, current_version, migrate, schema_version
from digitguard.review import store as review_store
from digitguard.review.queue import (
    AlreadyQueuedError,
    AlreadyReviewedError,
    Decision,
    InvalidSampleError,
    Reason,
    ReviewStoreError,
    Status,
    UnknownItemError,
)
from digitguard.review.store import ReviewStore
from tests.review.conftest import a_sample


class TestQueue:
    def test_an_enqueued_sample_comes_back_as_it_went_in(self, store: ReviewStore) -> None:
        sample = a_sample(Reason.FLAGGED, digit=4, suggested_label=1)
        item = store.enqueue(sample)
        assert item.sample == sample and item.status == Status.PENDING and item.decision is None
        assert store.get(item.id) == item and store.find(sample.request_id) == item

    @pytest.mark.parametrize("reason", [*Abstention, None])
    def test_an_abstention_comes_back_with_its_reason(self, store: ReviewStore, reason) -> None:
        item = store.enqueue(a_sample(abstention_reason=reason))
        assert item.sample.abstention_reason == reason and store.get(item.id) == item
        assert item.sample.abstention_reason is None or isinstance(item.sample.abstention_reason, Abstention)

    def test_an_unknown_stored_reason_is_refused_when_read(self, store: ReviewStore) -> None:
        item = store.enqueue(a_sample(abstention_reason=Abstention.NOT_A_DIGIT))
        with store.engine.begin() as connection:
            connection.execute(review_store.review_items.update().values(abstention_reason="because"))
        with pytest.raises(InvalidSampleError, match="an abstention reason is one of"):
            store.get(item.id)

    def test_one_entry_per_request_id(self, store: ReviewStore) -> None:
        sample = a_sample()
        store.enqueue(sample)
        with pytest.raises(AlreadyQueuedError, match="already in the review queue"):
            store.enqueue(replace(sample, reason=Reason.FLAGGED, digit=3))
        assert store.count() == 1

    def test_the_database_refuses_a_second_entry_even_without_the_check(self, store: ReviewStore) -> None:
        sample = a_sample()
        store.enqueue(sample)
        with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as connection:
            connection.execute(
                review_store.review_items.insert().values(
                    request_id=sample.request_id,
                    created_at="t",
                    reason="abstained",
                    input=sample.input,
                    input_sha256=sample.input_sha256,
                    model_sha256=sample.model_sha256,
                    probabilities="[]",
                    confidence=0.1,
                    status="pending",
                )
            )

    def test_pending_items_newest_first_in_pages(self, store: ReviewStore) -> None:
        ids = [store.enqueue(a_sample()).id for _ in range(7)]
        assert [item.id for item in store.items(limit=3)] == ids[::-1][:3]
        assert [item.id for item in store.items(offset=6, limit=3)] == [ids[0]]
        store.decide(ids[0], Decision(2, "key:r", "t"))
        assert store.count(Status.PENDING) == 6 and store.count(Status.LABELLED) == 1
        assert [item.id for item in store.items(Status.LABELLED)] == [ids[0]]
        assert store.count(None) == 7

    def test_an_unknown_item_is_refused_by_name(self, store: ReviewStore) -> None:
        with pytest.raises(UnknownItemError, match="no review item 99"):
            store.get(99)
        with pytest.raises(UnknownItemError):
            store.decide(99, Decision(1, "key:r", "t"))


class TestDecisions:
    def test_a_label_is_recorded_with_its_reviewer_and_time(self, store: ReviewStore) -> None:
        item = store.enqueue(a_sample())
        decided = store.decide(item.id, Decision(7, "key:reviewer", "2026-01-01T00:00:00+00:00"))
        assert decided.status == Status.LABELLED
        assert decided.decision == Decision(7, "key:reviewer", "2026-01-01T00:00:00+00:00")

    def test_not_a_digit_is_recorded_without_a_label(self, store: ReviewStore) -> None:
        item = store.enqueue(a_sample())
        assert store.decide(item.id, Decision(None, "key:r", "t")).status == Status.NOT_A_DIGIT

    def test_a_decision_is_final(self, store: ReviewStore) -> None:
        item = store.enqueue(a_sample())
        store.decide(item.id, Decision(7, "key:first", "t1"))
        with pytest.raises(AlreadyReviewedError, match="decided by key:first at t1; a decision is final"):
            store.decide(item.id, Decision(1, "key:second", "t2"))
        assert store.get(item.id).decision == Decision(7, "key:first", "t1")

    def test_the_database_refuses_a_label_on_an_undecided_or_rejected_item(self, store: ReviewStore) -> None:
        item = store.enqueue(a_sample())
        table = review_store.review_items
        for status, label in [("pending", 3), ("not_a_digit", 3), ("labelled", None), ("labelled", 10)]:
            with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as connection:
                connection.execute(
                    table.update().where(table.c.id == item.id).values(status=status, label=label)
                )


class TestExportSelection:
    def test_exportable_is_labelled_items_oldest_first(self, store: ReviewStore) -> None:
        first, rejected, pending, second = (store.enqueue(a_sample()) for _ in range(4))
        flagged = store.enqueue(a_sample(Reason.FLAGGED, digit=1, suggested_label=7))
        store.decide(second.id, Decision(2, "key:r", "t"))
        store.decide(first.id, Decision(1, "key:r", "t"))
        store.decide(rejected.id, Decision(None, "key:r", "t"))
        assert [i.id for i in store.exportable()] == [first.id, second.id]
        with_flags = store.exportable(include_flagged_unreviewed=True)
        assert [i.id for i in with_flags] == [first.id, second.id, flagged.id]
        assert pending.id not in [i.id for i in with_flags]


class TestMigration:
    def test_a_version_1_database_upgrades_to_the_review_queue_keeping_its_data(self, tmp_path: Path) -> None:
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'v1.db'}")
        with engine.begin() as connection:  # a database as digitguard 1-schema releases left it
            MIGRATIONS[0][2](connection)
            schema_version.create(connection)
            connection.execute(schema_version.insert().values(id=1, version=1))
            connection.exec_driver_sql(
                "INSERT INTO api_keys VALUES ('0123456789ab', 'ops', 'admin', 'h', '2026-01-01', NULL)"
            )
        assert "review_items" not in sa.inspect(engine).get_table_names()
        assert migrate(engine) == LATEST
        assert "review_items" in sa.inspect(engine).get_table_names()
        with engine.begin() as connection:
            assert current_version(connection) == LATEST
            assert connection.exec_driver_sql("SELECT name FROM api_keys").scalar() == "ops"
        assert ReviewStore(engine).enqueue(a_sample()).id == 1

    def test_a_version_2_queue_gains_the_abstention_reason_keeping_its_items(self, audit_url: str) -> None:
        engine = sa.create_engine(audit_url)
        with engine.begin() as connection:  # a database as digitguard 2-schema releases left it
            for _number, _description, step in MIGRATIONS[:2]:
                step(connection)
            connection.exec_driver_sql("ALTER TABLE review_items DROP COLUMN abstention_reason")
            schema_version.create(connection)
            connection.execute(schema_version.insert().values(id=1, version=2))
        old = a_sample()
        with engine.begin() as connection:
            connection.execute(
                review_store.review_items.insert().values(
                    request_id=old.request_id,
                    created_at="2026-01-01",
                    reason="abstained",
                    input=old.input,
                    input_sha256=old.input_sha256,
                    model_sha256=old.model_sha256,
                    probabilities=json.dumps(list(old.probabilities)),
                    confidence=old.confidence,
                    status="pending",
                )
            )
        assert migrate(engine) == LATEST == 3
        columns = {c["name"] for c in sa.inspect(engine).get_columns("review_items")}
        assert "abstention_reason" in columns
        store = ReviewStore(engine)
        [kept] = store.items()
        assert kept.sample == old and kept.sample.abstention_reason is None
        new = store.enqueue(a_sample(abstention_reason=Abstention.MODELS_DISAGREE))
        assert store.get(new.id).sample.abstention_reason == Abstention.MODELS_DISAGREE
        assert migrate(engine) == LATEST  # idempotent
        engine.dispose()

    def test_an_unreadable_queue_is_a_review_store_error(self, tmp_path: Path) -> None:
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
        migrate(engine)
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE review_items")
        with pytest.raises(ReviewStoreError, match="review queue unreadable"):
            ReviewStore(engine).items()
        with pytest.raises(ReviewStoreError, match="review queue not written"):
            ReviewStore(engine).enqueue(a_sample())
