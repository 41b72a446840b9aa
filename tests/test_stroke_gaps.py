"""A steep thin stroke that meanders between two columns is read to its tip."""

from __future__ import annotations

import numpy as np

from ecglens.digitize.trace import _runs_under, bridge_stroke_gaps


def _meandering_spike() -> tuple[np.ndarray, np.ndarray]:
    """A band of 9 columns x 120 px: a flat line at 20 px, and in columns 3-5 a 1-px stroke
    down to 110 px that steps between columns 4 and 5 every 3 px (as a 100-dpi QRS does)."""
    dark = np.zeros((9, 120), dtype=np.float32)
    dark[:, 19:22] = 1.0
    for y in range(20, 111):
        dark[4 if (y // 3) % 2 == 0 else 5, y] = 1.0
    return dark, np.full(9, 20)


def test_the_run_under_the_path_reaches_the_spike_tip() -> None:
    dark, path = _meandering_spike()
    found, _a, b = _runs_under(dark, path, 0.5)
    assert found.all()
    assert b[4] == 110 and b[5] >= 100      # each column holds the stroke to the bottom


def test_without_bridging_the_run_stops_at_the_first_step() -> None:
    dark, _ = _meandering_spike()
    ink = dark >= 0.5
    column = ink[4]
    first_gap = int(np.flatnonzero(~column[20:])[0]) + 20
    assert first_gap < 40                    # the premise: column 4 alone is broken early
    assert bridge_stroke_gaps(ink, 0)[4, first_gap] == ink[4, first_gap]


def test_flat_ink_and_distant_strokes_are_not_joined() -> None:
    ink = np.zeros((5, 60), dtype=bool)
    ink[:, 10] = True                        # a flat trace
    ink[:, 30] = True                        # another line 20 px below
    bridged = bridge_stroke_gaps(ink, 4)
    assert not bridged[:, 11:30].any()       # a gap longer than 4 px stays open
    gap = np.zeros((3, 20), dtype=bool)
    gap[1, [5, 9]] = True                    # a 3-px gap with no ink beside it
    assert not bridge_stroke_gaps(gap, 4)[1, 6:9].any()
