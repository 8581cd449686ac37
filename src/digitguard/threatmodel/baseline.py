"""A recorded baseline, so that CI can fail on *regressions* while known gaps remain open.

``docs/threat-baseline.json`` holds, per threat, its status, residual risk and the evidence that
was passing. ``threats check --baseline`` fails when a threat is worse than recorded (a worse
status, a higher residual risk), when evidence that passed no longer does (failing, stale,
missing), when a recorded threat disappeared from the model, or when a new threat is a gap.
Improvements never fail; ``threats baseline`` records them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from digitguard.threatmodel.evidence import State, evidence_key
from digitguard.threatmodel.model import Level, ThreatModelError
from digitguard.threatmodel.status import Assessment, Status

FORMAT = "digitguard-threat-baseline/1"


def snapshot(assessment: Assessment) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "day": assessment.day.isoformat(),
        "threats": {
            a.threat.id: {
                "status": a.status.value,
                "residual": a.residual.label,
                "passing": sorted(
                    evidence_key(e) for c in a.controls for e, v in c.verdicts if v.state is State.PASSING
                ),
            }
            for a in assessment.threats
        },
    }


def load(path: Path) -> dict[str, Any]:
    try:
        baseline = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ThreatModelError(f"{path}: cannot read the baseline ({exc})") from exc
    if not isinstance(baseline, dict) or baseline.get("format") != FORMAT:
        raise ThreatModelError(f"{path}: not a {FORMAT} document")
    if not isinstance(baseline.get("threats"), dict):
        raise ThreatModelError(f"{path}: no threats")
    return baseline


def regressions(assessment: Assessment, baseline: dict[str, Any]) -> list[str]:
    recorded: dict[str, Any] = baseline["threats"]
    found = []
    now = {a.threat.id: a for a in assessment.threats}
    found += [f"{tid}: in the baseline but gone from the model" for tid in sorted(set(recorded) - set(now))]
    for tid, current in now.items():
        before = recorded.get(tid)
        if before is None:
            if current.gap:
                found.append(
                    f"{tid}: new threat, {current.status.value} with {current.residual.label} residual risk"
                )
            continue
        try:
            status, residual = Status(before["status"]), Level[str(before["residual"]).upper()]
        except (KeyError, ValueError) as exc:
            raise ThreatModelError(f"baseline entry {tid} is malformed ({exc})") from exc
        if current.status.rank > status.rank:
            found.append(f"{tid}: {status.value} → {current.status.value}")
        if current.residual > residual:
            found.append(f"{tid}: residual risk {residual.label} → {current.residual.label}")
        passing = {evidence_key(e): v for c in current.controls for e, v in c.verdicts}
        for key in before.get("passing", []):
            verdict = passing.get(key)
            if verdict is None or verdict.state is not State.PASSING:
                state = verdict.state.value if verdict else "no longer named"
                found.append(f"{tid}: evidence {key} was passing, now {state}")
    return found
