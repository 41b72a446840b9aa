"""ecglens: paper ECGs into calibrated 12-lead records, and records into findings.

The public API (``ecglens.__all__``) is loaded lazily, so ``import ecglens`` stays fast::

    import ecglens
    pages = ecglens.digitize_file("scan.png")        # one DigitizeResult per page
    record = ecglens.read_record("rec.hea")          # WFDB / CSV / JSON → ECGRecord (mV)
    report = ecglens.analyze_record(record)          # intervals, ST, STEMI rules
    result = ecglens.classify_record(record)         # PTB-XL superclass probabilities
    gate = ecglens.assess_measurability(record)      # is it a measurable ECG at all?

Sub-packages: :mod:`ecglens.core` (record model, I/O, errors, layouts, filters, the beat
detector), :mod:`ecglens.digitize`, :mod:`ecglens.analysis`, :mod:`ecglens.classify`,
:mod:`ecglens.synth` (ground-truth page renderer and distortions), :mod:`ecglens.score`
(Challenge-2024 scorer) and :mod:`ecglens.cli`.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "DISCLAIMER": "ecglens.core",
    "ECGRecord": "ecglens.core.record",
    "STANDARD_LEADS": "ecglens.core.record",
    "EcglensError": "ecglens.core.errors",
    "read_record": "ecglens.core.io",
    "write_wfdb": "ecglens.core.io",
    "digitize_file": "ecglens.digitize.pipeline",
    "analyze_record": "ecglens.analysis.report",
    "classify_record": "ecglens.classify.predict",
    "load_inputs": "ecglens.app.inputs",
    "assess_measurability": "ecglens.core.gate",
}

__all__ = ["__version__", *sorted(_PUBLIC)]


def __getattr__(name: str) -> Any:
    """Import a public name on first use (keeps ``import ecglens`` and ``ecglens --help`` fast)."""
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'ecglens' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
