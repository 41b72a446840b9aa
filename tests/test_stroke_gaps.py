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


def _spike_beside_the_path() -> tuple[np.ndarray, np.ndarray]:
    """A flat line at 20 px; column 3 strokes down to 60 px, column 4 holds the tip (40-80 px),
    column 5 strokes back up; the path stays at a grey speck (30 px) in column 4, as the path
    search does where climbing to the tip costs more than a speck beside it."""
    dark = np.zeros((9, 100), dtype=np.float32)
    dark[:, 19:22] = 1.0
    dark[3, 20:61] = 1.0
    dark[4, 40:81] = 1.0
    dark[5, 20:71] = 1.0
    dark[4, 19:22] = 0.0
    dark[4, 30] = 0.6
    path = np.full(9, 20)
    path[4] = 25                              # on paper: no run under it
    return dark, path


def test_a_column_the_path_misses_takes_the_run_its_neighbours_stroke_joins() -> None:
    dark, path = _spike_beside_the_path()
    found, a, b = _runs_under(dark, path, 0.5)
    assert not found[4]                                       # the path misses the tip
    found, a, b = _runs_under(dark, path, 0.5, connect_cols=3)
    assert found[4] and (a[4], b[4]) == (40, 80)              # the tip's run, not the speck


def test_a_run_touching_no_neighbour_is_not_taken() -> None:
    dark, path = _spike_beside_the_path()
    dark[4, 30:81] = 0.0
    dark[4, 90:95] = 1.0                      # ink in the column, but apart from both strokes
    found, _a, _b = _runs_under(dark, path, 0.5, connect_cols=3)
    assert not found[4]


def test_thin_spike_tips_of_an_ecg_image_kit_page_are_read(shared_data) -> None:
    """ECG-Image-Kit tune page eik00054_1 (fold 5, clean, 100 px per inch): aVR's QS spikes are
    one or two columns wide; the path stayed beside the first one's tip and it was read at
    -0.70 mV for -1.00 (after the best lag and offset). Each beat's extreme within 0.12 mV."""
    from scipy.signal import find_peaks
    from signal_match import best_lag, eik_lead_pair, read_eik_page

    result = read_eik_page(shared_data, "eik00054_1")
    truth, read = eik_lead_pair(shared_data, "eik00054_1", result, "aVR")
    n = min(len(truth), len(read))
    truth, read = truth[:n], read[:n]
    finite = np.isfinite(truth)
    printed = np.flatnonzero(finite)
    _r, lag = best_lag(truth, read, int(printed[0]) + 15, len(printed) - 30, 15)
    shifted = np.roll(read, -lag)
    both = finite & np.isfinite(shifted)
    shifted = shifted + float(np.mean(truth[both] - shifted[both]))
    level = float(np.nanmedian(truth))
    depth = np.nan_to_num(level - truth)
    tips, _ = find_peaks(depth, height=0.5 * depth.max(), distance=150)
    assert len(tips) >= 3
    for i in tips:
        read_tip = float(np.nanmin(shifted[i - 3:i + 4]))
        assert abs(read_tip - truth[i]) < 0.12, (i, truth[i], read_tip)
