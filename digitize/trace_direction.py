"""Trace direction: does a page's ECG read left to right with up as positive, or is it upside
down?

A page turned by 180° shows every trace reversed in time and inverted in amplitude
(``-x[::-1]``). An ECG is not symmetric under that turn: each QRS is followed closely by its
T wave and preceded, further off, by its P wave, and its slopes are not mirror images. A small
1-D network (:mod:`digitize.trace_direction_train`), trained on PTB-XL records of folds 1–8
against their turned copies, scores 2.5-s windows of trace; it is antisymmetric by
construction (``score(-x[::-1]) == -score(x)``), so upright and turned are judged alike.

Here the windows come from a rough centre line of each trace row on the ink darkness map
(the darkness-weighted centre of each column within half a row pitch), read at 25 mm/s (the
network was trained on speeds from about half to twice that) and normalised per window, so
no calibration is needed. The page's score is the mean window score: positive upright,
negative turned. It is evidence for the orientation stage (:mod:`digitize.orient`) where
calibration pulses and lead names say nothing.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
MODEL_FILE = "trace_direction.onnx"
FS_HZ = 100.0
"""Rate of the windows (the PTB-XL 100-Hz records the network was trained on)."""
ASSUMED_SPEED_MM_S = 25.0
"""Paper speed at which a row's centre line is read (50-mm/s pages read as slower ECGs)."""
WINDOW_S = 2.5
"""Window length: one printed lead of a 3x4 page."""
STEP_S = 1.25
"""Step between windows along a row."""
MAX_GAP_SHARE = 0.3
"""Windows with more columns without ink than this are not scored."""
MIN_WINDOW_STD = 1e-3
"""Windows flatter than this (in row-pitch units) are not scored (no trace)."""


def normalise_window(window: np.ndarray) -> np.ndarray:
    """A window centred on its median and scaled to unit standard deviation (float32)."""
    centred = window - np.median(window)
    return (centred / max(float(np.std(centred)), 1e-6)).astype(np.float32)


def row_centre_line(darkness: np.ndarray, centre_px: float, x_first_px: float,
                    x_last_px: float, pitch_px: float) -> np.ndarray:
    """Rough centre line (height above the row centre in px, NaN where a column has no ink)
    of one trace row, per column from ``x_first_px`` to ``x_last_px``."""
    h = darkness.shape[0]
    top = max(0, round(centre_px - pitch_px / 2))
    bottom = min(h, round(centre_px + pitch_px / 2) + 1)
    x0, x1 = max(0, int(x_first_px)), min(darkness.shape[1], int(x_last_px) + 1)
    if bottom - top < 3 or x1 - x0 < 3:
        return np.empty(0)
    band = np.asarray(darkness[top:bottom, x0:x1], dtype=np.float64) ** 2
    weight = band.sum(axis=0)
    ys = np.arange(top, bottom, dtype=np.float64)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        centre = (band * ys).sum(axis=0) / weight
    centre[weight < 1e-3] = np.nan
    return centre_px - centre


def row_windows(line_px: np.ndarray, px_per_mm_x: float) -> list[np.ndarray]:
    """Normalised windows of :data:`WINDOW_S` at :data:`FS_HZ` along one row's centre line."""
    if line_px.size < 3:
        return []
    step_px = px_per_mm_x * ASSUMED_SPEED_MM_S / FS_HZ
    positions = np.arange(0.0, line_px.size - 1, step_px)
    columns = np.arange(line_px.size, dtype=np.float64)
    finite = np.isfinite(line_px)
    if finite.sum() < 3:
        return []
    signal = np.interp(positions, columns[finite], line_px[finite])
    present = np.interp(positions, columns, finite.astype(np.float64)) > 0.5
    n = round(WINDOW_S * FS_HZ)
    step = round(STEP_S * FS_HZ)
    windows = []
    for start in range(0, len(signal) - n + 1, step):
        if 1.0 - present[start:start + n].mean() > MAX_GAP_SHARE:
            continue
        window = signal[start:start + n]
        if np.std(window) < MIN_WINDOW_STD:
            continue
        windows.append(normalise_window(window))
    return windows


@functools.lru_cache(maxsize=2)
def _session(path: str):  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def model_card(weights_dir: Path | None = None) -> dict[str, object]:
    """The committed model's metadata (``trace_direction.json``)."""
    folder = weights_dir or WEIGHTS_DIR
    return dict(json.loads((folder / "trace_direction.json").read_text()))


def window_scores(windows: list[np.ndarray] | np.ndarray,
                  weights_dir: Path | None = None) -> np.ndarray:
    """The network's score per window (> 0: upright, < 0: turned by 180°)."""
    if len(windows) == 0:
        return np.empty(0, dtype=np.float32)
    batch = np.stack([np.asarray(w, dtype=np.float32) for w in windows])[:, None, :]
    session = _session(str((weights_dir or WEIGHTS_DIR) / MODEL_FILE))
    return np.asarray(session.run(None, {"input": batch})[0], dtype=np.float32).reshape(-1)


def page_direction(darkness: np.ndarray, rows: list[tuple[float, float, float]],
                   pitch_px: float, px_per_mm_x: float) -> tuple[float, int]:
    """Mean window score over a page's rows (``(centre_px, x_first_px, x_last_px)`` each)
    and the number of windows scored (NaN, 0 where none could be)."""
    windows: list[np.ndarray] = []
    for centre, first, last in rows:
        windows += row_windows(row_centre_line(darkness, centre, first, last, pitch_px),
                               px_per_mm_x)
    if not windows:
        return math.nan, 0
    try:
        scores = window_scores(windows)
    except Exception as exc:  # missing weights or runtime: no evidence, with a reason
        log.warning("trace direction not scored (%s)", exc)
        return math.nan, 0
    return float(np.mean(np.clip(scores, -MAX_WINDOW_SCORE, MAX_WINDOW_SCORE))), len(windows)


MAX_WINDOW_SCORE = 5.0
"""Window scores are clipped to ±this before the mean, so that a few confident windows
(e.g. over a printed name or a pulse) cannot outvote the rest."""
