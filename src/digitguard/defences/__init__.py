"""Defences against adversarial inputs that sit beside the classifier (detectors)."""
