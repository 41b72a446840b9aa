"""A deep, narrow S wave whose path stays on specks at the baseline is read to its bottom."""

from __future__ import annotations

import numpy as np

from ecglens.digitize import trace
from ecglens.digitize.trace import follow_strokes, read_columns


def _s_wave_under_a_shortcut() -> tuple[np.ndarray, np.ndarray]:
    """One band of 160 columns x 140 px: a flat trace at 30 px; column 6 strokes down to 90 px,
    columns 7-9 hold the dark turning point (80-110 px), column 10 strokes back up (30-90 px).
    Grey one-pixel specks sit at 30 px in columns 7-9 (what is left of a grid line), and the
    path runs straight across at 30 px, as the path search does where climbing the faint
    strokes costs more than a few columns of specks."""
    dark = np.zeros((160, 140), dtype=np.float32)     # a row of 160 columns
    dark[:, 29:32] = 1.0
    dark[7:10, 29:32] = 0.0
    dark[7:10, 30] = 0.6
    dark[6, 30:91] = 0.6
    dark[7:10, 80:111] = 1.0
    dark[10, 30:91] = 0.6
    return dark[None], np.full((1, 160), 30)


def test_the_s_wave_is_read_to_its_bottom() -> None:
    bands, path = _s_wave_under_a_shortcut()
    values = read_columns(bands, path, np.zeros(1, dtype=int), 0.5, 2.0)[0][0]
    assert np.nanmax(values[7:10]) > 105           # the turning point's bottom (110 px)
    assert abs(values[3] - 30) < 1 and abs(values[13] - 30) < 1


def test_without_following_the_strokes_the_wave_is_cut(monkeypatch) -> None:
    monkeypatch.setattr(trace, "FOLLOW_STROKES", False)
    bands, path = _s_wave_under_a_shortcut()
    values = read_columns(bands, path, np.zeros(1, dtype=int), 0.5, 2.0)[0][0]
    assert np.nanmax(values[7:10]) < 40            # the premise: the path's specks are read


def test_a_flat_trace_keeps_its_runs() -> None:
    ink = np.zeros((10, 60), dtype=bool)
    ink[:, 20:23] = True
    ink[4, 40:43] = True                           # a speck below, touching nothing
    found = np.ones(10, dtype=bool)
    a, b = np.full(10, 20), np.full(10, 22)
    f2, a2, b2 = follow_strokes(ink, found, a, b, tall_px=4.5, reach_px=2, max_cols=10)
    assert f2.all() and (a2 == 20).all() and (b2 == 22).all()


def test_following_that_would_change_much_of_a_row_is_not_done() -> None:
    # the same wave in a row of only 16 columns: following would change 3 of them (19 %),
    # more than a trace's strokes do (a dark grid's lines followed in every row do)
    bands, path = _s_wave_under_a_shortcut()
    values = read_columns(bands[:, :16], path[:, :16], np.zeros(1, dtype=int), 0.5, 2.0)[0][0]
    assert trace.FOLLOW_MAX_SHARE < 3 / 16
    assert np.nanmax(values[7:10]) < 40
