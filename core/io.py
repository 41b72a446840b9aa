"""Read and write :class:`~ecglens.core.record.ECGRecord` as WFDB, CSV and JSON.

WFDB goes through the ``wfdb`` package. NaN samples are written as WFDB's invalid sample
value (-32768 in format 16) and come back as NaN; units are mV; age, sex, provenance and
per-lead confidence are kept in header comments (``# ecglens: {...json...}``).
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from ecglens.core.errors import InputError, RecordError
from ecglens.core.record import ECGRecord

log = logging.getLogger(__name__)

SIGNAL_SUFFIXES = {".hea", ".dat", ".csv", ".json", ""}
_WFDB_INVALID_16 = -32768
_ECGLENS_COMMENT = "ecglens:"


def _record_stem(path: Path) -> Path:
    """``rec``, ``rec.hea`` or ``rec.dat`` → ``rec`` (the WFDB record path without suffix)."""
    if path.suffix.lower() in {".hea", ".dat", ".mat"}:
        return path.with_suffix("")
    return path


def is_signal_file(path: str | Path) -> bool:
    """True if ``path`` names a WFDB record (with or without ``.hea``), a CSV or a JSON record."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in {".csv", ".json", ".hea"}:
        return True
    return suffix in {"", ".dat"} and _record_stem(path).with_suffix(".hea").exists()


@dataclasses.dataclass(frozen=True)
class Window:
    """A part of a recording to read: ``start_s`` seconds in, at most ``max_s`` seconds long
    (None: to the end)."""

    start_s: float = 0.0
    max_s: float | None = None

    def samples(self, fs: float, n_total: int) -> tuple[int, int]:
        """``(first, stop)`` sample indices of the window in a recording of ``n_total``."""
        first = min(n_total, max(0, round(self.start_s * fs)))
        stop = n_total if self.max_s is None else min(n_total, first + round(self.max_s * fs))
        return first, stop


def read_record(path: str | Path, fs: float | None = None, window: Window | None = None
                ) -> ECGRecord:
    """Read a record from WFDB (``rec``/``rec.hea``), CSV or JSON.

    Parameters
    ----------
    path
        The file. For WFDB the header suffix is optional.
    fs
        Sampling rate in Hz for CSV files that carry no time column (default 500 Hz).
    window
        Read only this part (WFDB and CSV read no more than it from disk, so a long recording
        needs memory for the window only). The record's provenance gives ``window_s`` and the
        recording's ``total_s``.

    Raises
    ------
    InputError
        The file is missing, unreadable or not a record, or the window starts after its end;
        the message names the file.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return read_csv(path, fs=fs, window=window)
    if suffix == ".json":
        record = read_json(path)
        if window is None:
            return record
        first, stop = window.samples(record.fs, record.n_samples)
        if stop <= first:
            raise InputError(f"the window starts at {window.start_s:g} s, after the record's "
                             f"end ({record.duration_s:g} s)", path)
        return record.replace(signal=record.signal[first:stop], provenance={
            **record.provenance, "window_s": [first / record.fs, stop / record.fs],
            "total_s": record.duration_s})
    return read_wfdb(path, window=window)


# ---------------------------------------------------------------------------- WFDB
def _parse_comments(comments: list[str]) -> dict[str, Any]:
    info: dict[str, Any] = {"comments": list(comments)}
    for line in comments:
        text = line.strip()
        if text.startswith(_ECGLENS_COMMENT):
            try:
                info["ecglens"] = json.loads(text[len(_ECGLENS_COMMENT):])
            except json.JSONDecodeError:
                log.warning("ignoring an unreadable ecglens header comment: %s", text[:80])
            continue
        match = re.match(r"^<?\s*(age|sex)\s*>?\s*:\s*(.+)$", text, flags=re.IGNORECASE)
        if match:
            key, value = match.group(1).lower(), match.group(2).strip()
            if key == "age":
                number = re.match(r"^\d+(\.\d+)?", value)
                if number and float(number.group(0)) < 150:
                    info["age"] = float(number.group(0))
            else:
                info["sex"] = value
    return info


def read_wfdb(path: str | Path, check_gains: bool = True, window: Window | None = None
              ) -> ECGRecord:
    """Read a WFDB record in mV (any format wfdb reads, FLAC included).

    With ``check_gains`` a warning is logged when every lead spans exactly the same range
    (header gains that are a per-lead min-max normalisation, as in LUDB v1.0.1)."""
    import wfdb

    stem = _record_stem(Path(path))
    header = stem.with_suffix(".hea")
    if not header.exists():
        raise InputError("no such WFDB record (missing .hea header)", header)
    window_info: dict[str, Any] = {}
    try:
        if window is None:
            rec = wfdb.rdrecord(str(stem), return_res=64)
        else:
            head = wfdb.rdheader(str(stem))
            total = int(head.sig_len or 0)
            first, stop = window.samples(float(head.fs), total)
            if stop <= first:
                raise InputError(f"the window starts at {window.start_s:g} s, after the "
                                 f"record's end ({total / float(head.fs):g} s)", header)
            rec = wfdb.rdrecord(str(stem), sampfrom=first, sampto=stop, return_res=64)
            window_info = {"window_s": [first / float(head.fs), stop / float(head.fs)],
                           "total_s": total / float(head.fs)}
    except InputError:
        raise
    except FileNotFoundError as exc:
        missing = Path(exc.filename).name if getattr(exc, "filename", None) else "a signal file"
        raise InputError(f"WFDB signal file missing: {missing}", header) from exc
    except Exception as exc:  # wfdb raises many types for corrupt headers and data
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"corrupt or unreadable WFDB record ({reason})", header) from exc
    if rec.p_signal is None:
        raise InputError("WFDB record has no signal", header)
    signal = np.asarray(rec.p_signal, dtype=np.float64)
    units = [str(u or "mV").strip() for u in (rec.units or ["mV"] * signal.shape[1])]
    for k, unit in enumerate(units):
        scale = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "v": 1e3}.get(unit.lower())
        if scale is None:
            log.warning("%s: lead %s has unit %r; read as mV", header, rec.sig_name[k], unit)
            scale = 1.0
        signal[:, k] *= scale
    finite_leads = np.isfinite(signal).any(axis=0)
    if check_gains and finite_leads.sum() > 1:
        read = signal[:, finite_leads]
        spans = np.nanmax(read, axis=0) - np.nanmin(read, axis=0)
        if np.allclose(spans, spans[0], rtol=1e-6) and np.all(spans > 0):
            # e.g. LUDB v1.0.1: every lead's adc_gain equals its digital range
            log.warning("%s: every lead spans exactly %.3g %s; the header gains look like a "
                        "per-lead min-max normalisation, so amplitudes are not physical",
                        header, spans[0], units[0])
    info = _parse_comments(list(rec.comments or []))
    extra = info.get("ecglens") or {}
    provenance = dict(extra.get("provenance") or {})
    provenance.setdefault("source", str(stem))
    provenance.setdefault("producer", "wfdb file")
    provenance.update(window_info)
    confidence = extra.get("confidence")
    if confidence is not None and len(confidence) != signal.shape[1]:
        confidence = None
    try:
        return ECGRecord(
            signal=signal, fs=float(rec.fs), leads=tuple(rec.sig_name),
            age=extra.get("age", info.get("age")), sex=extra.get("sex", info.get("sex")),
            provenance=provenance,
            confidence=tuple(confidence) if confidence is not None else None,
        )
    except RecordError as exc:
        raise InputError(exc.reason, header) from exc


def write_wfdb(record: ECGRecord, path: str | Path) -> Path:
    """Write ``record`` as a WFDB record (format 16, mV, NaN → invalid sample).

    Returns the path of the header. The gain per lead is 1000 units/mV (1 µV) unless the
    lead's range needs less to fit 16 bits.
    """
    import wfdb

    stem = _record_stem(Path(path))
    stem.parent.mkdir(parents=True, exist_ok=True)
    signal = record.signal
    gains = []
    digital = np.empty(signal.shape, dtype=np.int32)
    for k in range(signal.shape[1]):
        column = signal[:, k]
        finite = np.isfinite(column)
        peak = float(np.max(np.abs(column[finite]))) if finite.any() else 0.0
        gain = 1000.0 if peak * 1000.0 < 32000 else float(np.floor(32000.0 / peak))
        gain = max(gain, 1.0)
        gains.append(gain)
        values = np.where(finite, np.round(np.nan_to_num(column) * gain), _WFDB_INVALID_16)
        digital[:, k] = np.clip(values, _WFDB_INVALID_16, 32767)
    meta = {
        "age": record.age, "sex": record.sex, "provenance": dict(record.provenance),
        "confidence": [round(c, 4) for c in record.lead_confidence],
    }
    comments = []
    if record.age is not None:
        comments.append(f"age: {record.age:g}")
    if record.sex is not None:
        comments.append(f"sex: {record.sex}")
    comments.append(_ECGLENS_COMMENT + " " + json.dumps(meta, default=str, separators=(",", ":")))
    n_leads = signal.shape[1]
    try:
        wfdb.wrsamp(
            record_name=stem.name, fs=record.fs, units=["mV"] * n_leads,
            sig_name=list(record.leads), d_signal=digital.astype(np.int16), fmt=["16"] * n_leads,
            adc_gain=gains, baseline=[0] * n_leads, comments=comments, write_dir=str(stem.parent),
        )
    except OSError as exc:
        raise InputError(f"cannot write WFDB record ({exc.strerror or exc})", stem) from exc
    return stem.with_suffix(".hea")


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename:
    the file is complete or untouched, never half-written."""
    import os
    import tempfile

    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# ---------------------------------------------------------------------------- CSV
_TIME_COLUMNS = {"time", "t", "time_s", "seconds", "sec", "s"}


def read_csv(path: str | Path, fs: float | None = None, window: Window | None = None
             ) -> ECGRecord:
    """Read a CSV with one column per lead (header row of lead names), values in mV.

    A first column named ``time``/``time_s``/``t`` gives the sampling rate; otherwise ``fs``
    (default 500 Hz). Empty cells and ``nan`` are NaN. With ``window`` only the rows inside it
    are parsed and kept (the file is streamed, never held whole).
    """
    path = Path(path)
    if not path.exists():
        raise InputError("no such file", path)
    try:
        with path.open(newline="") as handle:
            rows = (row for row in csv.reader(handle) if row and not row[0].startswith("#"))
            header = [cell.strip() for cell in next(rows, [])]
            head = [_csv_values(row, len(header), path)
                    for row in itertools.islice(rows, _CSV_RATE_ROWS)]
            if not header or not head:
                raise InputError("CSV has no data rows", path)
            timed = header[0].lower() in _TIME_COLUMNS
            if timed:
                fs = _csv_rate([r[0] for r in head], path)
            elif fs is None:
                log.info("%s: no time column; assuming 500 Hz", path)
                fs = 500.0
            first, stop = (0, 2**62) if window is None else window.samples(fs, 2**62)
            kept = head[first:stop]
            n_rows = len(head)
            for row in rows:
                if first <= n_rows < stop:
                    kept.append(_csv_values(row, len(header), path))
                n_rows += 1
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"unreadable CSV ({exc})", path) from exc
    provenance: dict[str, Any] = {"source": str(path), "producer": "csv file"}
    if window is not None:
        first, stop = window.samples(fs, n_rows)
        if stop <= first:
            raise InputError(f"the window starts at {window.start_s:g} s, after the record's "
                             f"end ({n_rows / fs:g} s)", path)
        provenance.update({"window_s": [first / fs, stop / fs], "total_s": n_rows / fs})
    values = np.array(kept, dtype=np.float64)
    if timed:
        header, values = header[1:], values[:, 1:]
    try:
        return ECGRecord(signal=values, fs=fs, leads=tuple(header), provenance=provenance)
    except RecordError as exc:
        raise InputError(exc.reason, path) from exc


def _csv_values(row: list[str], n_columns: int, path: Path) -> list[float]:
    """One CSV row as floats (empty, ``nan``, ``NA`` → NaN)."""
    if len(row) != n_columns:
        raise InputError("CSV rows do not all have one value per header column", path)
    try:
        return [float(cell) if cell.strip() not in {"", "nan", "NaN", "NA"} else np.nan
                for cell in row]
    except ValueError as exc:
        raise InputError(f"CSV has a non-numeric cell ({exc})", path) from exc


_CSV_RATE_ROWS = 1000
"""The sampling rate of a timed CSV is the median step of its first rows."""


def _csv_rate(times: list[float], path: Path) -> float:
    """Sampling rate from the time column's median step."""
    steps = np.diff(np.asarray(times, float))
    if len(steps) == 0 or not np.all(steps > 0):
        raise InputError("CSV time column is not increasing", path)
    return 1.0 / float(np.median(steps))


def write_csv(record: ECGRecord, path: str | Path) -> Path:
    """Write ``time_s`` plus one column per lead in mV; NaN as an empty cell."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["time_s", *record.leads])
        for i, t in enumerate(record.time_s):
            writer.writerow([f"{t:.6f}"] + ["" if not np.isfinite(v) else f"{v:.6f}"
                                            for v in record.signal[i]])
    return path


# ---------------------------------------------------------------------------- JSON
def read_json(path: str | Path) -> ECGRecord:
    """Read a record written by :func:`write_json`."""
    path = Path(path)
    if not path.exists():
        raise InputError("no such file", path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"unreadable JSON ({exc})", path) from exc
    try:
        return ECGRecord.from_dict(data)
    except RecordError as exc:
        raise InputError(exc.reason, path) from exc


def write_json(record: ECGRecord, path: str | Path) -> Path:
    """Write the record as JSON (NaN → ``null``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record.to_dict(), default=str))
    return path
