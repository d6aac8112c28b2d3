"""Consent Service: a registry of who may edit whose face and voice, checked before every edit."""
