"""Privacy audits of trained models (issue 8)."""
