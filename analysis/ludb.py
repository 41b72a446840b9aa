"""LUDB helpers: a physically scaled reader, annotation reading and the ±150 ms matching rule.

**LUDB's header gains are per-lead min–max gains, not physical.** In LUDB v1.0.1 (the copy in
``shared/data/ludb``) every lead's ``adc_gain`` equals its digital range, so ``wfdb`` returns
every lead spanning exactly 1.0 "mV" and Einthoven's law fails on the physical values
(II − I − III has 7–180 % of II's standard deviation), while the stored integers obey it exactly
(residual 0). The integers therefore share one scale; read at 1 µV per unit (1000 units/mV) the
lead-II range is 0.7–3.1 mV, as expected for a 12-lead ECG. :func:`read_ludb_record` uses that
scale; the amplitudes are still an assumption (the common gain is not stated by LUDB).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ecglens.core.record import ECGRecord

LUDB_LEADS: tuple[str, ...] = ("i", "ii", "iii", "avr", "avl", "avf",
                               "v1", "v2", "v3", "v4", "v5", "v6")
LUDB_UNITS_PER_MV = 1000.0
TOLERANCE_S = 0.150


def read_ludb_record(path: str | Path) -> ECGRecord:
    """Read a LUDB record at 1 µV per stored unit (see the module docstring).

    Parameters
    ----------
    path
        Record path without suffix, e.g. ``shared/data/ludb/data/7``.
    """
    import wfdb

    from ecglens.core.io import read_wfdb

    header_record = read_wfdb(path, check_gains=False)  # age, sex, provenance, lead names
    raw = wfdb.rdrecord(str(path), physical=False)
    digital = raw.d_signal.astype(np.float64) - np.asarray(raw.baseline, dtype=np.float64)
    signal = digital / LUDB_UNITS_PER_MV
    provenance = dict(header_record.provenance)
    provenance["scale"] = "LUDB integers read at 1 µV/unit (header gains are per-lead min-max)"
    return header_record.replace(signal=signal, provenance=provenance)


def read_fiducials(ludb: Path, record_id: int, lead: str) -> dict[str, np.ndarray]:
    """Annotated fiducials of one lead, in samples.

    Returns ``qrs_onset``, ``j_point`` (QRS offset), ``t_end``, ``p_onset``, ``r`` and ``span``
    (first and last annotated sample: LUDB annotates only the middle of each record).
    """
    import wfdb

    ann = wfdb.rdann(str(Path(ludb) / "data" / str(record_id)), lead)
    symbols = list(ann.symbol)
    samples = np.asarray(ann.sample, dtype=int)
    out: dict[str, list[int]] = {"qrs_onset": [], "j_point": [], "t_end": [], "p_onset": [],
                                 "r": []}
    for i, sym in enumerate(symbols):
        before = int(samples[i - 1]) if i > 0 and symbols[i - 1] == "(" else None
        after = int(samples[i + 1]) if i + 1 < len(symbols) and symbols[i + 1] == ")" else None
        if sym == "N":
            out["r"].append(int(samples[i]))
            if before is not None:
                out["qrs_onset"].append(before)
            if after is not None:
                out["j_point"].append(after)
        elif sym == "t" and after is not None:
            out["t_end"].append(after)
        elif sym == "p" and before is not None:
            out["p_onset"].append(before)
    result = {k: np.array(v, dtype=int) for k, v in out.items()}
    result["span"] = (np.array([samples.min(), samples.max()]) if len(samples)
                      else np.array([0, 0]))
    return result


def match_fiducials(truth: np.ndarray, pred: np.ndarray, fs: float,
                    span: np.ndarray | None = None) -> tuple[np.ndarray, int, int]:
    """Nearest prediction within ±150 ms of every true point (torch_ecg / Moskalenko 2020).

    Predictions outside the annotated span (± 150 ms) are dropped first (record edges are not
    annotated). Returns ``(errors_ms = pred − truth of the matches, n_missed, n_extra)``.
    """
    pred = np.asarray(pred, dtype=float)
    pred = pred[np.isfinite(pred)]
    tol = TOLERANCE_S * fs
    if span is not None:
        pred = pred[(pred >= span[0] - tol) & (pred <= span[1] + tol)]
    errors: list[float] = []
    missed = 0
    for t in np.asarray(truth):
        if pred.size == 0:
            missed += 1
            continue
        k = int(np.argmin(np.abs(pred - t)))
        if abs(pred[k] - t) <= tol:
            errors.append(float(pred[k] - t) / fs * 1000.0)
        else:
            missed += 1
    return np.array(errors), missed, max(0, int(pred.size) - len(errors))
