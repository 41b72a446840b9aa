"""Data for the 12-lead classifier: PTB-XL / LUDB / CinC loading, label mapping, input
normalisation, paper-pattern masking and reading-error augmentation.

The model sees every signal the same way, whether it came from a WFDB file or was read off a
photograph (:func:`model_input`):

1. the 12 standard leads (absent → NaN), resampled to :data:`MODEL_FS_HZ` (100 Hz),
   cropped/padded to :data:`N_SAMPLES` (10 s; padding is NaN);
2. per lead, the median of the finite samples is removed (robust to NaN, unlike the mean);
3. NaN → 0, and 12 "observed" channels (1 where the sample was known) are appended, so that a
   gap is explicit: the input is ``(24, 1000)``.

Training draws, per record and epoch, an :class:`AugmentParams` from a seed
(:func:`draw_augment`) and applies it deterministically (:func:`apply_augment`): a paper
pattern (3x4, 3x4+1, 6x2 or 12x1) that blanks what a page does not print, a time-scale error
(±2 %), a gain error (±10 % per page and ±3 % per lead), Gaussian noise and per-segment
baseline offsets.
"""

from __future__ import annotations

import ast
import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ecglens.core.errors import InputError
from ecglens.core.record import STANDARD_LEADS, ECGRecord

log = logging.getLogger(__name__)

CLASSES: tuple[str, ...] = ("NORM", "MI", "STTC", "CD", "HYP")
"""PTB-XL diagnostic superclasses, in model output order."""

MODEL_FS_HZ = 100.0
"""Sampling rate the model works at (the PTB-XL benchmark's default)."""

N_SAMPLES = 1000
"""Samples per model input: 10 s at 100 Hz."""

N_LEADS = 12

PATTERNS: tuple[str, ...] = ("12x1", "3x4", "3x4+1", "6x2")
"""Paper patterns used by the masking augmentation (names of :mod:`ecglens.core.layouts`)."""

PATTERN_PROBS: tuple[float, ...] = (0.4, 0.2, 0.25, 0.15)


# ============================================================================ datasets
@dataclasses.dataclass(frozen=True)
class SignalSet:
    """A set of 12-lead records at 100 Hz with superclass labels.

    Attributes
    ----------
    signals
        ``(n_records, 1000, 12)`` float32, mV, NaN where unknown.
    labels
        ``(n_records, 5)`` float32 in {0, 1}, NaN where the source's labels do not map.
    record_ids
        Identifier of each record (``ptbxl:<ecg_id>``, ``ludb:<n>``, ``cinc:<name>``).
    folds
        PTB-XL ``strat_fold`` (1–10); 0 for records from other databases (training only).
    """

    signals: np.ndarray
    labels: np.ndarray
    record_ids: tuple[str, ...]
    folds: np.ndarray

    def __len__(self) -> int:
        return int(self.signals.shape[0])

    def subset(self, index: np.ndarray) -> SignalSet:
        """The records at ``index`` (integer or boolean array)."""
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        return SignalSet(self.signals[index], self.labels[index],
                         tuple(self.record_ids[i] for i in index), self.folds[index])

    @staticmethod
    def concat(sets: Sequence[SignalSet]) -> SignalSet:
        """All records of ``sets`` in order."""
        return SignalSet(np.concatenate([s.signals for s in sets]),
                         np.concatenate([s.labels for s in sets]),
                         tuple(r for s in sets for r in s.record_ids),
                         np.concatenate([s.folds for s in sets]))


def _fit_length(signal: np.ndarray, n: int = N_SAMPLES) -> np.ndarray:
    """Crop to the first ``n`` samples or pad the end with NaN."""
    if signal.shape[0] >= n:
        return signal[:n]
    pad = np.full((n - signal.shape[0], signal.shape[1]), np.nan, dtype=signal.dtype)
    return np.concatenate([signal, pad])


def record_to_array(record: ECGRecord) -> np.ndarray:
    """The 12 standard leads of ``record`` at 100 Hz, ``(1000, 12)`` float32 mV with NaN.

    Only the first 10 s are kept; shorter records are padded with NaN (unknown, not zero).
    """
    rec = record.standard12().resample(MODEL_FS_HZ)
    return _fit_length(rec.signal.astype(np.float32))


def superclass_labels(scp_codes: dict[str, float], statements: dict[str, str]) -> np.ndarray:
    """Superclass vector of one PTB-XL record (Strodthoff et al. 2021 rule).

    Every key of ``scp_codes`` counts whatever its likelihood; keys that are diagnostic
    statements (``statements`` maps code → diagnostic_class) give their class.
    """
    out = np.zeros(len(CLASSES), dtype=np.float32)
    for code in scp_codes:
        cls = statements.get(code)
        if cls in CLASSES:
            out[CLASSES.index(cls)] = 1.0
    return out


def read_ptbxl_table(root: Path) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    """ecg_ids, 100-Hz file names, folds and labels of a PTB-XL folder.

    Uses ``labels.csv`` (ecglens' shared subset) when present, otherwise derives the labels
    from PhysioNet's ``ptbxl_database.csv`` + ``scp_statements.csv`` (the full download).
    """
    import pandas as pd

    root = Path(root)
    labels_csv = root / "labels.csv"
    if labels_csv.exists():
        table = pd.read_csv(labels_csv)
        labels = table[list(CLASSES)].to_numpy(np.float32)
    else:
        db_csv, st_csv = root / "ptbxl_database.csv", root / "scp_statements.csv"
        if not (db_csv.exists() and st_csv.exists()):
            raise InputError(f"{root} is not a PTB-XL folder (no labels.csv, nor "
                             "ptbxl_database.csv + scp_statements.csv)", str(root))
        table = pd.read_csv(db_csv)
        st = pd.read_csv(st_csv, index_col=0)
        st = st[st["diagnostic"] == 1]
        statements = {str(k): str(v) for k, v in st["diagnostic_class"].items()}
        labels = np.stack([superclass_labels(ast.literal_eval(s), statements)
                           for s in table["scp_codes"]])
    return (table["ecg_id"].to_numpy(int), [str(f) for f in table["filename_lr"]],
            table["strat_fold"].to_numpy(int), labels)


def load_ptbxl(root: str | Path, cache: str | Path | None = None,
               max_records: int | None = None) -> SignalSet:
    """All PTB-XL 100-Hz records under ``root`` (PhysioNet layout) with superclass labels.

    Parameters
    ----------
    root
        Folder with ``records100/`` and ``labels.csv`` or ``ptbxl_database.csv``.
    cache
        Optional ``.npz`` to store/reuse the decoded signals (reading 21,799 records with
        wfdb takes minutes).
    max_records
        Keep only the first N rows (for quick checks).
    """
    import wfdb

    ids, files, folds, labels = read_ptbxl_table(Path(root))
    if max_records is not None:
        ids, files, folds, labels = ids[:max_records], files[:max_records], \
            folds[:max_records], labels[:max_records]
    cache = Path(cache) if cache else None
    if cache is not None and cache.exists():
        data = np.load(cache)
        if np.array_equal(data["ids"], ids):
            log.info("PTB-XL signals from cache %s", cache)
            return SignalSet(data["signals"], labels, tuple(f"ptbxl:{i}" for i in ids), folds)
    signals = np.empty((len(ids), N_SAMPLES, N_LEADS), dtype=np.float32)
    for k, name in enumerate(files):
        rec = wfdb.rdrecord(str(Path(root) / name))
        record = ECGRecord(rec.p_signal, rec.fs, tuple(rec.sig_name))
        signals[k] = record_to_array(record)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, ids=ids, signals=signals)
    return SignalSet(signals, labels, tuple(f"ptbxl:{i}" for i in ids), folds)


# ---------------------------------------------------------------------------- LUDB
def ludb_labels(row: dict[str, str]) -> np.ndarray | None:
    """Superclass vector for one ``ludb.csv`` row; NaN where LUDB's labels do not map.

    Mapping (approximate; LUDB is not coded in SCP statements): CD ← any conduction
    abnormality; HYP ← any hypertrophy/overload; MI ← ``Stemi`` or ``Scar formation`` (1),
    ``Undefined ischemia/scar/supp.nstemi`` (unknown), else 0; STTC ← non-specific
    repolarisation abnormality or ``Ischemia:`` (1), ``Undefined ischemia`` (unknown), else 0;
    NORM ← sinus rhythm (incl. brady/tachy/arrhythmia) and every other column empty.
    Paced records return ``None`` (left out).
    """
    def cell(name: str) -> str:
        value = row.get(name)
        return "" if value is None or value != value else str(value).strip()  # NaN check

    if cell("Cardiac pacing"):
        return None
    ischemia = cell("Ischemia")
    out = np.zeros(len(CLASSES), dtype=np.float32)
    out[CLASSES.index("CD")] = float(bool(cell("Conduction abnormalities")))
    out[CLASSES.index("HYP")] = float(bool(cell("Hypertrophies")))
    undefined = "Undefined ischemia" in ischemia
    out[CLASSES.index("MI")] = 1.0 if ("Stemi" in ischemia or "Scar formation" in ischemia) \
        else (np.nan if undefined else 0.0)
    sttc = bool(cell("Non-specific repolarization abnormalities")) or "Ischemia:" in ischemia
    out[CLASSES.index("STTC")] = 1.0 if sttc else (np.nan if undefined else 0.0)
    sinus = cell("Rhythms").lower().startswith("sinus") and "\n" not in cell("Rhythms")
    abnormal = any(cell(c) for c in ("Conduction abnormalities", "Extrasystolies",
                                     "Hypertrophies", "Ischemia",
                                     "Non-specific repolarization abnormalities",
                                     "Other states"))
    out[CLASSES.index("NORM")] = float(sinus and not abnormal)
    return out


def load_ludb(root: str | Path) -> SignalSet:
    """LUDB's 200 records (500 Hz → 100 Hz) with mapped labels (see :func:`ludb_labels`)."""
    import pandas as pd

    from ecglens.core.io import read_record

    root = Path(root)
    table = pd.read_csv(root / "ludb.csv")
    signals, labels, ids = [], [], []
    for row in table.to_dict("records"):
        lab = ludb_labels(row)
        if lab is None:
            continue
        signals.append(record_to_array(read_record(root / "data" / str(row["ID"]))))
        labels.append(lab)
        ids.append(f"ludb:{row['ID']}")
    return SignalSet(np.stack(signals), np.stack(labels), tuple(ids), np.zeros(len(ids), int))


# ---------------------------------------------------------------------------- CinC
SNOMED_TO_CLASS: dict[str, str] = {
    # conduction disturbances
    "59118001": "CD", "164909002": "CD", "713427006": "CD", "713426002": "CD",
    "445118002": "CD", "270492004": "CD", "698252002": "CD", "251120003": "CD",
    "6374002": "CD", "445211001": "CD", "733534002": "CD",
    # hypertrophy / atrial enlargement / high voltage
    "164873001": "HYP", "89792004": "HYP", "67741000119109": "HYP", "446358003": "HYP",
    "55827005": "HYP",
    # ST/T changes
    "164934002": "STTC", "59931005": "STTC", "429622005": "STTC", "55930002": "STTC",
    "428750005": "STTC", "164861001": "STTC",
    # myocardial infarction
    "164865005": "MI", "54329005": "MI", "57054005": "MI", "413444003": "MI",
}
"""SNOMED-CT codes of the Challenge 2021 with an unambiguous PTB-XL superclass."""

SNOMED_SINUS = {"426783006", "426177001", "427084000", "427393009"}
"""Sinus rhythm, bradycardia, tachycardia, arrhythmia: compatible with NORM."""


def cinc_labels(dx_codes: Sequence[str]) -> np.ndarray:
    """Superclass vector from Challenge Dx codes; a class is 1 when a mapped code names it.

    NORM is 1 only when every code is a sinus rhythm code; codes that map to no superclass
    (e.g. PAC, PVC, QT prolongation) make NORM unknown (NaN) rather than 0 or 1.
    """
    codes = [c.strip() for c in dx_codes if c.strip()]
    out = np.zeros(len(CLASSES), dtype=np.float32)
    for code in codes:
        if code in SNOMED_TO_CLASS:
            out[CLASSES.index(SNOMED_TO_CLASS[code])] = 1.0
    unmapped = [c for c in codes if c not in SNOMED_TO_CLASS and c not in SNOMED_SINUS]
    if out.any():
        out[CLASSES.index("NORM")] = 0.0
    elif unmapped:
        out[CLASSES.index("NORM")] = np.nan
    else:
        out[CLASSES.index("NORM")] = 1.0
    return out


def load_cinc(root: str | Path) -> SignalSet:
    """The shared CinC 2021 records (500 Hz → 100 Hz) with mapped labels."""
    import pandas as pd

    from ecglens.core.io import read_record

    root = Path(root)
    table = pd.read_csv(root / "records.csv", dtype=str)
    signals, labels, ids = [], [], []
    for row in table.to_dict("records"):
        signals.append(record_to_array(read_record(root / row["record"])))
        labels.append(cinc_labels(str(row["dx_snomed"]).split(",")))
        ids.append(f"cinc:{row['record']}")
    return SignalSet(np.stack(signals), np.stack(labels), tuple(ids), np.zeros(len(ids), int))


# ============================================================================ model input
def normalize(signal: np.ndarray) -> np.ndarray:
    """Model input from a ``(1000, 12)`` mV array with NaN: ``(24, 1000)`` float32.

    Per lead the median of the finite samples is removed; NaN becomes 0 and channels 12–23
    are the observed mask (1 = known sample). Identical for file and paper signals.
    """
    x = np.asarray(signal, dtype=np.float32)
    observed = np.isfinite(x)
    med = np.zeros(x.shape[1], dtype=np.float32)
    for k in np.flatnonzero(observed.any(axis=0)):
        med[k] = np.median(x[observed[:, k], k])
    centered = np.where(observed, x - med, 0.0)
    centered = np.clip(centered, -20.0, 20.0)
    return np.concatenate([centered.T, observed.T.astype(np.float32)]).astype(np.float32)


def model_input(record: ECGRecord) -> np.ndarray:
    """``(24, 1000)`` model input for any record (file or digitized page)."""
    return normalize(record_to_array(record))


# ============================================================================ augmentation
@dataclasses.dataclass(frozen=True)
class AugmentParams:
    """One draw of the training augmentation (all it takes to reproduce it).

    Attributes
    ----------
    pattern
        Paper pattern (see :data:`PATTERNS`): which spans of which leads stay observed.
    time_scale
        Factor on the time axis (0.98–1.02): a wrong px/s reading.
    page_gain
        Factor on every lead (0.9–1.1): a wrong mV/px reading.
    lead_gain
        ``(12,)`` per-lead factors (0.97–1.03).
    noise_mv
        Standard deviation of additive white noise, mV.
    noise_seed
        Seed of the noise samples.
    segment_offsets_mv
        ``(12, 4)`` baseline offset per lead and page column (mV).
    lag_samples
        Shift of the whole record in samples (± 0.3 s), edges become NaN.
    """

    pattern: str
    time_scale: float
    page_gain: float
    lead_gain: tuple[float, ...]
    noise_mv: float
    noise_seed: int
    segment_offsets_mv: tuple[tuple[float, ...], ...]
    lag_samples: int


def draw_augment(rng: np.random.Generator, paper_prob: float = 1.0) -> AugmentParams:
    """Draw augmentation parameters; ``paper_prob`` is the chance of a non-identity draw."""
    if rng.random() >= paper_prob:
        return identity_augment()
    pattern = str(rng.choice(PATTERNS, p=PATTERN_PROBS))
    return AugmentParams(
        pattern=pattern,
        time_scale=float(rng.uniform(0.98, 1.02)),
        page_gain=float(rng.uniform(0.9, 1.1)),
        lead_gain=tuple(float(g) for g in rng.uniform(0.97, 1.03, N_LEADS)),
        noise_mv=float(rng.choice([0.0, rng.uniform(0.0, 0.05)])),
        noise_seed=int(rng.integers(2**31)),
        segment_offsets_mv=tuple(tuple(float(v) for v in row)
                                 for row in rng.normal(0.0, 0.05, (N_LEADS, 4))),
        lag_samples=int(rng.integers(-30, 31)),
    )


def identity_augment() -> AugmentParams:
    """Parameters that leave the signal unchanged."""
    return AugmentParams("12x1", 1.0, 1.0, (1.0,) * N_LEADS, 0.0, 0,
                         ((0.0,) * 4,) * N_LEADS, 0)


def pattern_mask(pattern: str, n: int = N_SAMPLES) -> np.ndarray:
    """``(n, 12)`` bool: which samples of each standard lead a page of ``pattern`` prints.

    Cells come from :func:`ecglens.core.layouts.get_layout`; a lead printed in several cells
    (II in 3x4+1) is observed over their union.
    """
    from ecglens.core.layouts import get_layout

    mask = np.zeros((n, N_LEADS), dtype=bool)
    for cell in get_layout(pattern).cells:
        k = STANDARD_LEADS.index(cell.stored_lead)
        a, b = cell.record_span
        mask[round(a * n):round(b * n), k] = True
    return mask


def apply_augment(signal: np.ndarray, params: AugmentParams) -> np.ndarray:
    """Apply ``params`` to a ``(1000, 12)`` mV array (NaN kept); deterministic.

    Order: time scale and lag (linear interpolation, NaN outside), pattern mask, gains,
    one baseline offset per printed cell, white noise.
    """
    from ecglens.core.layouts import get_layout

    x = np.asarray(signal, dtype=np.float64)
    n = x.shape[0]
    if params.time_scale != 1.0 or params.lag_samples != 0:
        t_src = (np.arange(n) - params.lag_samples) * params.time_scale
        out = np.full_like(x, np.nan)
        valid = (t_src >= 0) & (t_src <= n - 1)
        i0 = np.clip(np.floor(t_src).astype(int), 0, n - 2)
        frac = (t_src - i0)[:, None]
        interp = x[i0] * (1 - frac) + x[i0 + 1] * frac
        out[valid] = interp[valid]
        x = out
    mask = pattern_mask(params.pattern, n)
    x = np.where(mask, x, np.nan)
    x = x * params.page_gain * np.asarray(params.lead_gain)[None, :]
    offsets = np.asarray(params.segment_offsets_mv)  # (12, 4)
    baseline = np.zeros_like(x)
    for j, cell in enumerate(get_layout(params.pattern).cells):
        k = STANDARD_LEADS.index(cell.stored_lead)
        a, b = cell.record_span
        baseline[round(a * n):round(b * n), k] = offsets[k, j % 4]
    x = x + baseline
    if params.noise_mv > 0:
        noise = np.random.default_rng(params.noise_seed).normal(0.0, params.noise_mv, x.shape)
        x = x + noise
    return x.astype(np.float32)


def augment_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of record ``index`` in ``epoch`` of a run seeded with ``seed``."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


def training_input(signal: np.ndarray, seed: int, paper_prob: float = 0.8) -> np.ndarray:
    """Augmented, normalised model input for one training record, drawn from ``seed``."""
    params = draw_augment(np.random.default_rng(seed), paper_prob)
    return normalize(apply_augment(signal, params))
