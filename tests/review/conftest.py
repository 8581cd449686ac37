from __future__ import annotations

import uuid
from collections.abc import Iterator

import numpy as np
import pytest
import sqlalchemy as sa

from digitguard.inference.predictor import Abstention
from digitguard.migrations import migrate
from digitguard.review.queue import Reason, Sample, input_bytes
from digitguard.review.store import ReviewStore
from tests.audit.conftest import audit_url  # noqa: F401  (the SQLite/PostgreSQL fixture)


def a_bar(column: int = 14) -> np.ndarray:
    """A 28×28 vertical stroke: a plausible "1"."""
    grid = np.zeros((28, 28), dtype=np.float32)
    grid[4:24, column - 1 : column + 1] = 1.0
    grid[4:24, column + 1] = 0.5
    return grid


def a_sample(
    reason: Reason = Reason.ABSTAINED,
    *,
    digit: int | None = None,
    suggested_label: int | None = None,
    column: int = 14,
    model_sha256: str = "ab" * 32,
    abstention_reason: Abstention | None = None,
) -> Sample:
    probabilities = tuple([0.1] * 10)
    return Sample(
        request_id=uuid.uuid4().hex,
        reason=reason,
        input=input_bytes(a_bar(column)),
        model_sha256=model_sha256,
        digit=digit,
        probabilities=probabilities,
        confidence=0.1,
        suggested_label=suggested_label,
        abstention_reason=abstention_reason,
    )


@pytest.fixture
def store(audit_url: str) -> Iterator[ReviewStore]:  # noqa: F811
    engine = sa.create_engine(audit_url)
    migrate(engine)
    yield ReviewStore(engine)
    engine.dispose()
