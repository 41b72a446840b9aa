"""Shared by the tests that compare a read lead with its truth in time."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def best_lag(truth: np.ndarray, read: np.ndarray, start: int, window: int, max_lag: int,
             step: int = 1) -> tuple[float, int]:
    """The correlation and lag (samples, every ``step``-th up to ±``max_lag``) at which ``read``
    best matches ``truth[start:start + window]``; lags whose read window is over 30 % unread are
    skipped; ``(-2.0, 0)`` where none is left."""
    ref = truth[start:start + window] - np.nanmean(truth[start:start + window])
    best = (-2.0, 0)
    for lag in range(-max_lag, max_lag + 1, step):
        lo = start + lag
        if lo < 0 or lo + window > len(read):
            continue
        seg = read[lo:lo + window]
        if np.isnan(seg).mean() > 0.3:
            continue
        seg = np.nan_to_num(seg - np.nanmean(seg))
        r = float((ref * seg).sum() / np.sqrt((ref ** 2).sum() * (seg ** 2).sum() + 1e-12))
        best = max(best, (r, lag))
    return best


def read_eik_page(shared_data: Path, stem: str) -> Any:
    """An ECG-Image-Kit synthetic page read without the final ECG check."""
    import cv2

    from ecglens.digitize.pipeline import digitize_image

    path = shared_data / "ecg_image_kit" / "synthetic" / "images" / f"{stem}.jpg"
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, path
    return digitize_image(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), source=stem, check=False)


def eik_lead_pair(shared_data: Path, stem: str, result: Any, lead: str
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The truth and the read of ``lead`` on ECG-Image-Kit page ``stem``."""
    import wfdb

    truth = wfdb.rdrecord(str(shared_data / "ecg_image_kit" / "synthetic" / "truth" / stem))
    read = result.record
    return (truth.p_signal[:, truth.sig_name.index(lead)],
            np.asarray(read.signal[:, list(read.leads).index(lead)], dtype=float))


def lead_correlations(record: Any, truth_path: Path, min_samples: int = 500) -> list[float]:
    """Pearson r of each lead of a read ``record`` with the truth record at ``truth_path``
    (WFDB, NaN outside its printed windows), over the samples both hold, for leads with more
    than ``min_samples`` of them."""
    import wfdb

    truth = wfdb.rdrecord(str(truth_path))
    names = list(truth.sig_name)
    correlations = []
    for lead in record.leads:
        x = truth.p_signal[:, names.index(lead)]
        y = record.lead(lead)[: len(x)]
        ok = np.isfinite(x[: len(y)]) & np.isfinite(y)
        if ok.sum() > min_samples:
            correlations.append(float(np.corrcoef(x[: len(y)][ok], y[ok])[0, 1]))
    return correlations
