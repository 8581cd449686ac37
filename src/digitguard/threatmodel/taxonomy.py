"""The external catalogues threats are mapped to: MITRE ATLAS techniques and the OWASP ML Top 10.

Only the entries the model uses are listed, with their published names; a threat citing an id that
is not here is a problem of the model (a typo would otherwise pass silently).
"""

from __future__ import annotations

ATLAS_URL = "https://atlas.mitre.org/techniques/"
OWASP_ML_URL = "https://owasp.org/www-project-machine-learning-security-top-10/"

ATLAS: dict[str, str] = {
    "AML.T0005": "Create Proxy ML Model",
    "AML.T0007": "Discover ML Artifacts",
    "AML.T0010": "ML Supply Chain Compromise",
    "AML.T0010.001": "ML Supply Chain Compromise: ML Software",
    "AML.T0010.002": "ML Supply Chain Compromise: Data",
    "AML.T0010.003": "ML Supply Chain Compromise: Model",
    "AML.T0011.000": "User Execution: Unsafe ML Artifacts",
    "AML.T0012": "Valid Accounts",
    "AML.T0013": "Discover ML Model Ontology",
    "AML.T0014": "Discover ML Model Family",
    "AML.T0015": "Evade ML Model",
    "AML.T0018": "Backdoor ML Model",
    "AML.T0018.000": "Backdoor ML Model: Poison ML Model",
    "AML.T0019": "Publish Poisoned Datasets",
    "AML.T0020": "Poison Training Data",
    "AML.T0024.000": "Exfiltration via ML Inference API: Infer Training Data Membership",
    "AML.T0024.001": "Exfiltration via ML Inference API: Invert ML Model",
    "AML.T0024.002": "Exfiltration via ML Inference API: Extract ML Model",
    "AML.T0025": "Exfiltration via Cyber Means",
    "AML.T0029": "Denial of ML Service",
    "AML.T0031": "Erode ML Model Integrity",
    "AML.T0034": "Cost Harvesting",
    "AML.T0035": "ML Artifact Collection",
    "AML.T0040": "ML Model Inference API Access",
    "AML.T0041": "Physical Environment Access",
    "AML.T0043": "Craft Adversarial Data",
    "AML.T0043.000": "Craft Adversarial Data: White-Box Optimization",
    "AML.T0043.001": "Craft Adversarial Data: Black-Box Optimization",
    "AML.T0043.002": "Craft Adversarial Data: Black-Box Transfer",
    "AML.T0043.004": "Craft Adversarial Data: Insert Backdoor Trigger",
    "AML.T0044": "Full ML Model Access",
    "AML.T0046": "Spamming ML System with Chaff Data",
    "AML.T0048": "External Harms",
    "AML.T0049": "Exploit Public-Facing Application",
    "AML.T0055": "Unsecured Credentials",
}

OWASP_ML: dict[str, str] = {
    "ML01:2023": "Input Manipulation Attack",
    "ML02:2023": "Data Poisoning Attack",
    "ML03:2023": "Model Inversion Attack",
    "ML04:2023": "Membership Inference Attack",
    "ML05:2023": "Model Theft",
    "ML06:2023": "AI Supply Chain Attacks",
    "ML07:2023": "Transfer Learning Attack",
    "ML08:2023": "Model Skewing",
    "ML09:2023": "Output Integrity Attack",
    "ML10:2023": "Model Poisoning",
}
