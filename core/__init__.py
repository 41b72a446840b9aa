"""ecglens.core: what every part of ecglens shares.

Record model (:mod:`.record`), record I/O (:mod:`.io`), the error family (:mod:`.errors`),
page layouts (:mod:`.layouts`), signal filters (:mod:`.filters`) and the one beat detector
(:mod:`.beats`). Nothing here imports the digitizer, the analysis or the classifier.
"""

DISCLAIMER = (
    "ecglens assists and does not replace a clinician: every finding must be checked "
    "by a qualified person."
)
"""Shown with every clinical output (analysis and classification, CLI and JSON)."""

__all__ = ["DISCLAIMER"]
