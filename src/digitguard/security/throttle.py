"""Growing lock-outs after failed sign-ins.

Each failure counts against every subject of the attempt (the client address and, when the
credential names one, the key id). The first ``free_attempts`` failures cost nothing; after
that each failure locks the subject out for ``base_delay_s · 2^(k-1)`` seconds (k = failures
beyond the free ones), capped at ``max_delay_s``. A success clears the subject's record. State
is in the database, so every worker and replica sees the same count.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from math import ceil

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from digitguard.errors import DigitguardError
from digitguard.security.store import now, signin_failures, utc


class LockedOutError(DigitguardError):
    """Too many failed sign-ins: try again after ``retry_after_s`` seconds."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many failed sign-ins; try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class SigninThrottle:
    engine: Engine
    free_attempts: int = 3
    base_delay_s: float = 1.0
    max_delay_s: float = 900.0

    def check(self, subjects: Iterable[str]) -> None:
        """Raise :class:`LockedOutError` while any subject is locked out."""
        current = now()
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(signin_failures.c.locked_until).where(signin_failures.c.subject.in_(list(subjects)))
            ).all()
        waits = [(utc(row.locked_until) - current).total_seconds() for row in rows if row.locked_until]
        if waits and max(waits) > 0:
            raise LockedOutError(ceil(max(waits)))

    def record_failure(self, subjects: Iterable[str]) -> None:
        with self.engine.begin() as connection:
            for subject in subjects:
                row = connection.execute(
                    signin_failures.select().where(signin_failures.c.subject == subject)
                ).first()
                failures = (row.failures if row else 0) + 1
                locked_until = (
                    now() + timedelta(seconds=self.delay_after(failures))
                    if self.delay_after(failures)
                    else None
                )
                values = {"failures": failures, "locked_until": locked_until}
                if row is None:
                    connection.execute(signin_failures.insert().values(subject=subject, **values))
                else:
                    connection.execute(
                        signin_failures.update().where(signin_failures.c.subject == subject).values(**values)
                    )

    def record_success(self, subjects: Iterable[str]) -> None:
        with self.engine.begin() as connection:
            connection.execute(signin_failures.delete().where(signin_failures.c.subject.in_(list(subjects))))

    def delay_after(self, failures: int) -> float:
        beyond = failures - self.free_attempts
        return 0.0 if beyond <= 0 else min(self.max_delay_s, self.base_delay_s * 2 ** (beyond - 1))
