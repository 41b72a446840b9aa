"""ecglens.digitize: paper ECG (scan, photo, PDF) → calibrated 12-lead record.

Also home of the shared record model (:class:`ECGRecord`), its I/O, the error family and the
Challenge-2024 scorer, since every other part of ecglens consumes what digitizing produces.
"""

from ecglens.core.errors import EcglensError, EcglensWarning
from ecglens.core.record import STANDARD_LEADS, ECGRecord, normalize_lead_name

__all__ = ["STANDARD_LEADS", "ECGRecord", "EcglensError", "EcglensWarning", "normalize_lead_name"]
