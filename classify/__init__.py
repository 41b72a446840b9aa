"""ecglens.classify: one 12-lead 1-D CNN for PTB-XL superclasses, and an MIT-BIH beat classifier."""

DISCLAIMER = (
    "ecglens assists and does not replace a clinician: every finding must be checked "
    "by a qualified person."
)
"""Shown with every classification (same wording as the ``ecglens`` CLI)."""

__all__ = ["DISCLAIMER"]
