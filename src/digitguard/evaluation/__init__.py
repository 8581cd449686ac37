"""Measuring what users get: the served decision on clean digits, drawings, non-digits and attacks."""
