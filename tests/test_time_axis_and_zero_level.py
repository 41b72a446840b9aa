"""The printed time axis and each row's 0 mV line, where the page's marks mislead."""
from __future__ import annotations

import numpy as np
import pytest
from signal_match import best_lag, eik_lead_pair, read_eik_page

from ecglens.digitize.layout_detect import (
    AXIS_MAX_GAP_MM,
    STANDARD_AXIS_MM,
    Row,
    RowsResult,
    find_time_axis,
)

PPMM = 4.0


def _rows(x_first: float, x_last: float) -> RowsResult:
    return RowsResult(rows=tuple(Row(k, 100.0 + 80.0 * k, 0.9, int(x_first), int(x_last))
                                 for k in range(4)), pitch_px=80.0)


def test_standard_axis_is_counted_back_from_the_rows_end() -> None:
    pulse_right = 40.0
    # an own-renderer page: the trace starts ~3 mm after the pulse and runs 250 mm
    end = pulse_right + (2.9 + STANDARD_AXIS_MM) * PPMM
    axis = find_time_axis(_rows(20, end), pulse_right, PPMM, 25.0, last_ink_px=[end] * 4)
    assert axis.source == "standard 250-mm axis"
    assert abs(axis.x0_px - (pulse_right + 2.9 * PPMM)) < 0.02 * PPMM * 25
    assert axis.duration_s == 10.0


def test_rows_ending_too_late_for_the_pulse_start_the_axis_at_the_pulse() -> None:
    pulse_right = 40.0
    # ink runs on 12 mm past the trace's end (a photo's desk, marks after the rows)
    end = pulse_right + (12.0 + STANDARD_AXIS_MM) * PPMM
    axis = find_time_axis(_rows(20, end), pulse_right, PPMM, 25.0, last_ink_px=[end] * 4)
    assert AXIS_MAX_GAP_MM < 12.0
    assert axis.x0_px == pulse_right
    assert axis.x1_px == pytest.approx(pulse_right + STANDARD_AXIS_MM * PPMM)
    assert (axis.duration_s, axis.n_samples) == (10.0, 5000)
    assert "pulses' right side" in axis.source


def test_rows_cut_by_the_image_edge_keep_their_columns_2_5_s_apart() -> None:
    # a cropped 3x4 scan without pulses: the rows start at 3 mm and run into the image's
    # right edge after 236 mm (9.44 s); the last column is cut by the image, not shorter
    start, end = 3.0 * PPMM, (3.0 + 236.0) * PPMM
    width = int(end) + 1
    axis = find_time_axis(_rows(start, end), None, PPMM, 25.0, last_ink_px=[end] * 4,
                          image_width_px=width)
    assert axis.duration_s == 10.0 and axis.n_samples == 5000
    assert abs(axis.x0_px - start) < 2
    assert abs(axis.x1_px - (axis.x0_px + STANDARD_AXIS_MM * PPMM)) < 1e-6
    assert "right edge" in axis.source
    # the same rows ending 10 mm before the edge: their end is the printout's
    inside = find_time_axis(_rows(start, end), None, PPMM, 25.0, last_ink_px=[end] * 4,
                            image_width_px=width + int(10 * PPMM))
    assert inside.duration_s < 9.6


def test_the_first_column_is_read_from_just_after_the_pulse(shared_data) -> None:
    # an ECG-Image-Kit tune page (fold 3, clean) whose traces start at the pulse's falling leg:
    # the first column is read from ~20 ms on (it lost ~45 ms with 1 mm left unread), and
    # what is read there is the trace, not the leg
    result = read_eik_page(shared_data, "eik00001_1")
    for lead in ("I", "II", "III"):
        truth, read = eik_lead_pair(shared_data, "eik00001_1", result, lead)
        first = int(np.flatnonzero(np.isfinite(read))[0])
        assert first <= 12, (lead, first)
        both = np.isfinite(truth[:1250]) & np.isfinite(read[:1250])
        offset = float(np.median(read[:1250][both] - truth[:1250][both]))
        assert np.max(np.abs(read[first:first + 10] - offset - truth[first:first + 10])) < 0.1


def _first_window_lag(truth: np.ndarray, read: np.ndarray, window: int = 500,
                      max_lag: int = 300) -> int:
    finite = np.flatnonzero(np.isfinite(truth))
    r, lag = best_lag(truth, read, int(finite[0]) + 100, window, max_lag)
    assert r > 0.8
    return lag


def test_ecg_image_kit_page_with_marks_after_its_rows_is_read_on_time(shared_data) -> None:
    """An ECG-Image-Kit tune page (fold 1-8, wrinkled): ink after the rows' end put the standard
    axis 11 mm after the pulses, and every lead was read 0.46 s late (lag -233 samples)."""
    result = read_eik_page(shared_data, "eik00020_0")
    for lead in ("I", "V1"):
        ref, est = eik_lead_pair(shared_data, "eik00020_0", result, lead)
        assert abs(_first_window_lag(ref, est)) <= 15


def test_row_whose_pulse_was_misread_takes_its_trace_level_as_zero(shared_data) -> None:
    """An ECG-Image-Kit tune page (fold 6, wrinkled): the rhythm strip's footless pulse was read
    as a 5-mm pulse whose bottom lies mid-pulse, and the strip came out 2.8 mV low (and, at
    that pulse's 5 mm/mV, twice as tall)."""
    result = read_eik_page(shared_data, "eik00077_0")
    ref, est = eik_lead_pair(shared_data, "eik00077_0", result, "II")
    n = min(len(ref), len(est))
    both = np.isfinite(ref[:n]) & np.isfinite(est[:n])
    assert both.sum() > 2000
    assert abs(float(np.median(est[:n][both] - ref[:n][both]))) < 0.2
    assert any("taken as 0 mV" in w for w in result.warnings)
    # the misread pulse gives the strip no gain of its own: its amplitude is the truth's
    assert result.calibration.row_gain_mm_mv[3] == result.calibration.gain_mm_mv == 10.0
    assert 0.85 < float(np.std(est[:n][both]) / np.std(ref[:n][both])) < 1.15


def test_row_the_network_sees_no_trace_along_sends_the_page_to_its_rows(shared_data) -> None:
    """An ECG-Image-Kit tune page (fold 7, 12x1 with a V2 strip, no pulses, no lead names): the
    colour rows included rows along which the network sees no trace and missed the strip, and
    the page was read as 12x1 (-4.9 dB)."""
    result = read_eik_page(shared_data, "eik00225_0")
    assert len(result.rows.rows) == 13
    assert min(result.traces.row_trace_coverage or (0.0,)) >= 0.5
    assert any("network sees no trace along" in w for w in result.warnings)


def test_rows_the_network_shows_but_the_colour_ink_missed_are_read(shared_data) -> None:
    """An ECG-Image-Kit tune page (fold 1-8, wrinkled, 3x4+1): the colour ink showed three
    traced rows, a template's count, and the page was read as 3x4 without its strip (-1.0 dB);
    the network's ink shows four."""
    result = read_eik_page(shared_data, "eik00125_1")
    assert result.layout.layout.name == "3x4+1"
    assert len(result.rows.rows) == 4
    assert any("shows more rows than the 3 read" in w for w in result.warnings)
