"""Guardians: an account manages the subjects of children under 14 (PIPL Art. 31)."""
