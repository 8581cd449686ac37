"""PRADA: detect model-extraction attacks from one client's stream of queries — no I/O.

Juuti, Szyller, Marchal & Asokan, "PRADA: Protecting against DNN Model Stealing Attacks",
EuroS&P 2019 (arXiv:1805.02628). Natural queries, drawn from the distribution the model serves,
lie at distances from each other that are roughly normally distributed; the synthetic queries of
an extraction attack (Jacobian-based augmentation, small steps from a few seeds) cluster at
tiny distances from earlier ones and make the distribution far from normal. Per client:

- for each query ``x`` predicted as class ``c``, ``d`` = the smallest L2 distance from ``x`` to the
  client's *growing set* of class ``c`` (skipped for the class's first query, and for exact
  repeats — a deterministic model's answer to the same input tells the caller nothing new);
- ``d`` joins the client's distance record ``D``; ``x`` joins the growing set when ``d`` exceeds
  that set's own threshold (mean − std of its members' recorded distances), so near-duplicates
  do not inflate it;
- once ``D`` holds at least ``min_distances`` values, the Shapiro–Wilk statistic ``W`` of the
  most recent ``window`` of them is computed; ``W < delta`` raises the alarm.

Memory per client is bounded (``max_per_class`` stored inputs a class, ``window`` distances), and
the number of clients tracked is bounded too (least recently seen dropped first).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import shapiro

DEFAULT_DELTA = 0.9
DEFAULT_MIN_DISTANCES = 100


@dataclass(frozen=True)
class PradaSettings:
    delta: float = DEFAULT_DELTA  # alarm when Shapiro–Wilk W falls below this
    min_distances: int = DEFAULT_MIN_DISTANCES  # distances needed before W is trusted
    window: int = 500  # most recent distances tested
    max_per_class: int = 300  # inputs kept per class in a growing set
    max_clients: int = 10_000

    def __post_init__(self) -> None:
        if not 0 < self.delta < 1:
            raise ValueError(f"PRADA delta must be in (0, 1), got {self.delta}")
        if not 3 <= self.min_distances <= self.window:
            raise ValueError("PRADA needs 3 <= min_distances <= window")
        if self.max_per_class < 1 or self.max_clients < 1:
            raise ValueError("PRADA max_per_class and max_clients must be >= 1")


@dataclass(frozen=True)
class PradaVerdict:
    queries: int  # this client's queries so far
    distances: int  # distances recorded
    statistic: float | None  # Shapiro–Wilk W of the recent distances (None until min_distances)
    alarm: bool


@dataclass
class _GrowingSet:
    capacity: int
    members: np.ndarray = field(init=False)  # (capacity, features), the first ``size`` rows in use
    size: int = 0
    member_distances: list[float] = field(default_factory=list)

    def add(self, x: np.ndarray) -> None:
        if self.size == 0:
            self.members = np.empty((self.capacity, x.size), dtype=np.float32)
        self.members[self.size] = x
        self.size += 1

    def nearest(self, x: np.ndarray) -> float:
        return float(np.sqrt(((self.members[: self.size] - x) ** 2).sum(axis=1).min()))

    def threshold(self) -> float:
        if not self.member_distances:
            return 0.0
        values = np.asarray(self.member_distances)
        return float(values.mean() - values.std())


@dataclass
class _Client:
    queries: int = 0
    alarmed: bool = False
    classes: dict[int, _GrowingSet] = field(default_factory=dict)
    distances: deque[float] = field(default_factory=deque)


class PradaDetector:
    """Per-client PRADA state; ``observe`` one query at a time. Not thread-safe: one per process."""

    def __init__(self, settings: PradaSettings | None = None) -> None:
        self.settings = settings or PradaSettings()
        self._clients: OrderedDict[str, _Client] = OrderedDict()

    def observe(self, client: str, image: np.ndarray, predicted: int) -> PradaVerdict:
        """Record ``image`` (any shape, values in [0, 1]) answered as ``predicted`` for ``client``."""
        state = self._client(client)
        state.queries += 1
        x = np.asarray(image, dtype=np.float32).ravel()
        growing = state.classes.get(int(predicted))
        if growing is None:
            growing = state.classes[int(predicted)] = _GrowingSet(self.settings.max_per_class)
        if growing.size:
            distance = growing.nearest(x)
            if distance == 0.0:  # an exact repeat reveals nothing new to the caller: not recorded
                return PradaVerdict(
                    state.queries, len(state.distances), self._statistic(state.distances), state.alarmed
                )
            state.distances.append(distance)
            if len(state.distances) > self.settings.window:
                state.distances.popleft()
            if distance > growing.threshold() and growing.size < growing.capacity:
                growing.add(x)
                growing.member_distances.append(distance)
        else:
            growing.add(x)
        statistic = self._statistic(state.distances)
        if statistic is not None and statistic < self.settings.delta:
            state.alarmed = True
        return PradaVerdict(state.queries, len(state.distances), statistic, state.alarmed)

    def is_alarmed(self, client: str) -> bool:
        state = self._clients.get(client)
        return state is not None and state.alarmed

    def forget(self, client: str) -> None:
        self._clients.pop(client, None)

    def _client(self, client: str) -> _Client:
        state = self._clients.get(client)
        if state is None:
            state = self._clients[client] = _Client()
            while len(self._clients) > self.settings.max_clients:
                self._clients.popitem(last=False)
        else:
            self._clients.move_to_end(client)
        return state

    def _statistic(self, distances: deque[float]) -> float | None:
        if len(distances) < self.settings.min_distances:
            return None
        values = np.asarray(distances, dtype=np.float64)
        if np.ptp(values) == 0:  # identical distances (e.g. one image over and over): not natural
            return 0.0
        return float(shapiro(values).statistic)
