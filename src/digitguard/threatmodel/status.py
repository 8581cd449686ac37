"""Status and residual risk, computed from evidence verdicts — never typed in.

:func:`assess` is pure: the same model, verdicts and day give the same assessment.

- A control is *effective* when it names evidence and every piece of it is passing; failing,
  stale and missing evidence all count as "not shown".
- A threat is *mitigated* when every one of its controls is effective; *accepted* when not, but
  it carries an :class:`~digitguard.threatmodel.model.Acceptance` still valid on the day;
  *partly mitigated* when some control is effective; *not mitigated* otherwise.
- Residual likelihood and impact are the inherent ones lowered by the effective controls'
  declared reductions (never below low); the residual risk is the risk matrix on those.
- A *gap* is a threat whose residual risk is above low and that is neither mitigated nor accepted:
  what ``digitguard threats check`` fails on.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass

from digitguard.threatmodel.evidence import Evidence, State, Verdict, evidence_key
from digitguard.threatmodel.model import Control, Level, Threat, ThreatModel, risk


class Status(enum.Enum):
    MITIGATED = "mitigated"
    ACCEPTED = "accepted"
    PARTLY = "partly mitigated"
    NOT = "not mitigated"

    @property
    def rank(self) -> int:
        """0 is best; a higher rank is a regression."""
        return {"mitigated": 0, "accepted": 0, "partly mitigated": 1, "not mitigated": 2}[self.value]


@dataclass(frozen=True)
class ControlAssessment:
    control: Control
    verdicts: tuple[tuple[Evidence, Verdict], ...]

    @property
    def effective(self) -> bool:
        return bool(self.verdicts) and all(v.state is State.PASSING for _, v in self.verdicts)


@dataclass(frozen=True)
class ThreatAssessment:
    threat: Threat
    status: Status
    controls: tuple[ControlAssessment, ...]
    residual_likelihood: Level
    residual_impact: Level

    @property
    def residual(self) -> Level:
        return risk(self.residual_likelihood, self.residual_impact)

    @property
    def gap(self) -> bool:
        return self.residual > Level.LOW and self.status not in (Status.MITIGATED, Status.ACCEPTED)


@dataclass(frozen=True)
class Assessment:
    model: ThreatModel
    threats: tuple[ThreatAssessment, ...]
    verdicts: Mapping[str, Verdict]
    day: dt.date

    def of(self, threat_id: str) -> ThreatAssessment:
        return next(a for a in self.threats if a.threat.id == threat_id)

    def gaps(self) -> list[ThreatAssessment]:
        return [a for a in self.threats if a.gap]

    def counts(self) -> dict[Status, int]:
        return {status: sum(a.status is status for a in self.threats) for status in Status}


def control_assessments(model: ThreatModel, verdicts: Mapping[str, Verdict]) -> dict[str, ControlAssessment]:
    """Every control of ``model`` — also those that only a seed mitigation names — judged."""
    missing = Verdict(State.MISSING, "not evaluated")
    return {
        c.id: ControlAssessment(c, tuple((e, verdicts.get(evidence_key(e), missing)) for e in c.evidence))
        for c in model.controls
    }


def assess(model: ThreatModel, verdicts: Mapping[str, Verdict], day: dt.date) -> Assessment:
    controls = control_assessments(model, verdicts)
    return Assessment(model, tuple(_threat(t, controls, day) for t in model.threats), dict(verdicts), day)


def _threat(threat: Threat, controls: Mapping[str, ControlAssessment], day: dt.date) -> ThreatAssessment:
    mine = tuple(controls[c] for c in threat.controls)
    effective = [c for c in mine if c.effective]
    if mine and len(effective) == len(mine):
        status = Status.MITIGATED
    elif threat.acceptance is not None and threat.acceptance.valid_on(day):
        status = Status.ACCEPTED
    elif effective:
        status = Status.PARTLY
    else:
        status = Status.NOT
    likelihood = _lower(threat.likelihood, sum(c.control.reduces_likelihood for c in effective))
    impact = _lower(threat.impact, sum(c.control.reduces_impact for c in effective))
    return ThreatAssessment(threat, status, mine, likelihood, impact)


def _lower(level: Level, steps: int) -> Level:
    return Level(max(int(Level.LOW), int(level) - steps))
