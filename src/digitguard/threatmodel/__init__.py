"""The threat model as code: what the system is, what threatens it, and what shows it is handled.

- :mod:`.model` — the vocabulary: zones, boundaries, elements, flows, controls, threats (frozen
  dataclasses), the STRIDE categories and the risk matrix; ``ThreatModel.problems()``.
- :mod:`.catalog` — digitguard's own model (``MODEL``), STRIDE per element and per interaction.
- :mod:`.seeds` — the two seed documents itemised, their mitigation checklists and corrections.
- :mod:`.evidence` — test, result-file and configuration evidence; ``gather`` reads, ``judge`` decides.
- :mod:`.junit` — the JUnit report of the last test run and the source hashes it recorded.
- :mod:`.status` — ``assess``: status and residual risk per threat, computed from the verdicts.
- :mod:`.baseline` — a recorded assessment, so CI fails on regressions only.
- :mod:`.report` — Markdown (with a Mermaid diagram) and HTML (with an SVG diagram) reports.

Nothing here imports Flask or click; ``threats_cli.py`` and ``web/threats.py`` are the adapters.
"""

from digitguard.threatmodel.model import Level, Stride, ThreatModel, ThreatModelError
from digitguard.threatmodel.status import Assessment, Status, assess

__all__ = ["Assessment", "Level", "Status", "Stride", "ThreatModel", "ThreatModelError", "assess"]
