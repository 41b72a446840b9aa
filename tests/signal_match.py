"""Shared by the tests that compare a read lead with its truth in time."""
from __future__ import annotations

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
