"""The vocabulary of the threat model: elements, flows, boundaries, threats, controls.

Everything here is a frozen dataclass and pure: the catalogue (:mod:`.catalog`) builds one
:class:`ThreatModel` out of these, and :meth:`ThreatModel.problems` says what is incomplete or
inconsistent about it (a threat on an unknown element, a STRIDE category nobody considered, a flow
that crosses no boundary and is not declared internal, an unknown ATLAS or OWASP id…).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from digitguard.errors import DigitguardError
from digitguard.threatmodel.taxonomy import ATLAS, OWASP_ML

if TYPE_CHECKING:
    from digitguard.threatmodel.evidence import Evidence


class ThreatModelError(DigitguardError):
    """The threat model, its evidence or its baseline broke a rule. Exit status 2."""

    exit_code = 2


class Stride(enum.Enum):
    SPOOFING = "S"
    TAMPERING = "T"
    REPUDIATION = "R"
    INFORMATION_DISCLOSURE = "I"
    DENIAL_OF_SERVICE = "D"
    ELEVATION_OF_PRIVILEGE = "E"

    @property
    def title(self) -> str:
        return self.name.replace("_", " ").title().replace("Of", "of")


class Level(enum.IntEnum):
    """Likelihood runs LOW…HIGH; impact and risk run LOW…CRITICAL."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()


LIKELIHOODS = (Level.LOW, Level.MEDIUM, Level.HIGH)
IMPACTS = (Level.LOW, Level.MEDIUM, Level.HIGH, Level.CRITICAL)


def risk(likelihood: Level, impact: Level) -> Level:
    """The risk matrix: likelihood × impact, scored 1…12 (OWASP risk rating, 3×4).

    ======== ====== ====== ======== ========
    L \\ I    low    medium high     critical
    ======== ====== ====== ======== ========
    low      low    low    medium   medium
    medium   low    medium high     high
    high     medium high   critical critical
    ======== ====== ====== ======== ========
    """
    score = int(likelihood) * int(impact)
    if score >= 9:
        return Level.CRITICAL
    if score >= 6:
        return Level.HIGH
    if score >= 3:
        return Level.MEDIUM
    return Level.LOW


class Kind(enum.Enum):
    EXTERNAL_ENTITY = "external entity"
    PROCESS = "process"
    DATA_STORE = "data store"


@dataclass(frozen=True)
class Zone:
    """A region of equal trust; elements live in exactly one."""

    id: str
    title: str
    trust: str  # who controls it, in words


@dataclass(frozen=True)
class Boundary:
    """A trust boundary: the line between two zones that a flow crosses."""

    id: str
    title: str
    between: tuple[str, str]  # zone ids
    description: str


@dataclass(frozen=True)
class Element:
    id: str
    title: str
    kind: Kind
    zone: str
    description: str
    # STRIDE categories that cannot apply to this element, each with the reason.
    not_applicable: Mapping[Stride, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Flow:
    id: str
    source: str
    target: str
    label: str
    # Boundaries the flow crosses; a flow inside one zone must say so with `internal`.
    crosses: tuple[str, ...] = ()
    internal: str | None = None  # why it crosses nothing
    not_applicable: Mapping[Stride, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SeedRef:
    """Where a threat came from in the seed documents (000 or 001) and what they claimed."""

    document: str  # "000" or "001"
    item: str  # an id from seeds.SEED_ITEMS


@dataclass(frozen=True)
class Acceptance:
    """An explicit, reasoned decision to live with a threat — never a default."""

    by: str
    reason: str
    until: dt.date

    def valid_on(self, day: dt.date) -> bool:
        return day <= self.until


@dataclass(frozen=True)
class Control:
    id: str
    title: str
    description: str
    evidence: tuple[Evidence, ...]
    # How far an effective control lowers the threat's likelihood and impact (in levels).
    reduces_likelihood: int = 0
    reduces_impact: int = 0


@dataclass(frozen=True)
class Threat:
    id: str
    title: str
    stride: Stride
    target: str  # an element id or a flow id
    description: str
    likelihood: Level
    impact: Level
    atlas: tuple[str, ...] = ()
    owasp: tuple[str, ...] = ()
    controls: tuple[str, ...] = ()  # control ids
    seeds: tuple[SeedRef, ...] = ()
    acceptance: Acceptance | None = None

    @property
    def inherent_risk(self) -> Level:
        return risk(self.likelihood, self.impact)


@dataclass(frozen=True)
class ThreatModel:
    zones: tuple[Zone, ...]
    boundaries: tuple[Boundary, ...]
    elements: tuple[Element, ...]
    flows: tuple[Flow, ...]
    controls: tuple[Control, ...]
    threats: tuple[Threat, ...]

    def element(self, element_id: str) -> Element:
        return _by_id(self.elements, element_id)

    def flow(self, flow_id: str) -> Flow:
        return _by_id(self.flows, flow_id)

    def control(self, control_id: str) -> Control:
        return _by_id(self.controls, control_id)

    def threats_on(self, target: str) -> tuple[Threat, ...]:
        return tuple(t for t in self.threats if t.target == target)

    def crossed_boundaries(self, flow: Flow) -> tuple[str, ...]:
        """The boundaries between the zones of the flow's two ends, derived from the zones."""
        zones = {self.element(flow.source).zone, self.element(flow.target).zone}
        return tuple(b.id for b in self.boundaries if set(b.between) == zones)

    def problems(self) -> list[str]:
        """Everything incomplete or inconsistent, as sentences; an empty list means complete."""
        return [
            *_unique_ids(self),
            *_element_problems(self),
            *_flow_problems(self),
            *_threat_problems(self),
            *_control_problems(self),
        ]


def _by_id(items, item_id: str):
    for item in items:
        if item.id == item_id:
            return item
    raise ThreatModelError(f"no such id in the threat model: {item_id!r}")


def _unique_ids(model: ThreatModel) -> list[str]:
    seen: set[str] = set()
    problems = []
    for group in (model.zones, model.boundaries, model.elements, model.flows, model.controls, model.threats):
        for item in group:
            if item.id in seen:
                problems.append(f"id {item.id!r} is used twice")
            seen.add(item.id)
    return problems


def _element_problems(model: ThreatModel) -> list[str]:
    zones = {z.id for z in model.zones}
    problems = [f"element {e.id}: unknown zone {e.zone!r}" for e in model.elements if e.zone not in zones]
    for element in model.elements:
        covered = {t.stride for t in model.threats_on(element.id)}
        for category in Stride:
            if category not in covered and not element.not_applicable.get(category):
                problems.append(f"element {element.id}: {category.title} neither has a threat nor a reason")
            if category in covered and category in element.not_applicable:
                problems.append(f"element {element.id}: {category.title} has threats and is marked N/A")
    return problems


def _flow_problems(model: ThreatModel) -> list[str]:
    elements = {e.id for e in model.elements}
    problems = []
    for flow in model.flows:
        if flow.source not in elements or flow.target not in elements:
            problems.append(f"flow {flow.id}: an end is not an element")
            continue
        derived = model.crossed_boundaries(flow)
        if set(flow.crosses) != set(derived):
            problems.append(f"flow {flow.id}: declares boundaries {flow.crosses}, its zones give {derived}")
        if not flow.crosses and not flow.internal:
            problems.append(f"flow {flow.id}: crosses no boundary and is not declared internal")
        if flow.crosses and flow.internal:
            problems.append(f"flow {flow.id}: crosses {flow.crosses} but is declared internal")
        covered = {t.stride for t in model.threats_on(flow.id)}
        # Data flows are subject to tampering, disclosure and denial of service (STRIDE per interaction).
        for category in (Stride.TAMPERING, Stride.INFORMATION_DISCLOSURE, Stride.DENIAL_OF_SERVICE):
            if category not in covered and not flow.not_applicable.get(category):
                problems.append(f"flow {flow.id}: {category.title} neither has a threat nor a reason")
    return problems


def _threat_problems(model: ThreatModel) -> list[str]:
    targets = {e.id for e in model.elements} | {f.id for f in model.flows}
    controls = {c.id for c in model.controls}
    problems = []
    for threat in model.threats:
        if threat.target not in targets:
            problems.append(f"threat {threat.id}: unknown element or flow {threat.target!r}")
        problems += [
            f"threat {threat.id}: unknown control {c!r}" for c in threat.controls if c not in controls
        ]
        problems += [f"threat {threat.id}: unknown ATLAS id {a!r}" for a in threat.atlas if a not in ATLAS]
        problems += [
            f"threat {threat.id}: unknown OWASP ML id {o!r}" for o in threat.owasp if o not in OWASP_ML
        ]
        if not threat.atlas and not threat.owasp:
            problems.append(f"threat {threat.id}: neither an ATLAS technique nor an OWASP ML Top 10 id")
        if threat.likelihood not in LIKELIHOODS:
            problems.append(f"threat {threat.id}: likelihood must be low, medium or high")
        if not threat.controls and threat.acceptance is None and threat.inherent_risk > Level.LOW:
            problems.append(f"threat {threat.id}: above low risk with neither a control nor an acceptance")
    return problems


def _control_problems(model: ThreatModel) -> list[str]:
    used = {c for t in model.threats for c in t.controls}
    problems = [f"control {c.id}: names no evidence" for c in model.controls if not c.evidence]
    problems += [f"control {c.id}: mitigates no threat" for c in model.controls if c.id not in used]
    return problems
