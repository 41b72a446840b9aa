"""Sub-column trace refinement, merged strokes, row-lattice completion, pulse-height vote,
trace end, scanner borders."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest

from ecglens.core.errors import DigitizeError
from ecglens.digitize.calibration import Pulse, decide_calibration, parse_settings_text
from ecglens.digitize.layout_detect import Row, RowsResult, complete_rows, lattice_rows
from ecglens.digitize.pipeline import _trace_end_px, digitize_file
from ecglens.digitize.trace import RowTrace, extract_traces

PPMM = 6.0  # px per mm: a ~150-dpi page, where one value per column loses the most


def _benchmark_page(record, seed: int, profile: str | None, **settings):
    """A page as ``benchmarks/make_set.py`` renders it: grid style and pen width follow from
    the page's seed, then the distortion ``profile`` with that seed (None: none applied)."""
    from ecglens.synth.distort import apply_profile
    from ecglens.synth.render import RenderSettings, render_page

    page = render_page(record, RenderSettings(
        minor_grid="dots" if seed % 4 == 0 else "lines",
        grid_extent="page" if seed % 3 == 0 else "area",
        trace_width_mm=0.2 + 0.15 * ((seed >> 3) % 3) / 2, **settings))
    return page if profile is None else apply_profile(page, profile, seed=seed)


def _draw(mask: np.ndarray, x: np.ndarray, y: np.ndarray, width_px: int) -> None:
    pts = np.round(np.stack([x, y], axis=1) * 16).astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(mask, [pts], False, 255, width_px, cv2.LINE_AA, 4)


def _qrs_row(width_px: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A page with one row of narrow QRS-like spikes (4-px wide Gaussian, 12 mm tall)."""
    mask = np.zeros((int(60 * PPMM), int(150 * PPMM)), np.uint8)
    x = np.arange(10.0, 145 * PPMM, 0.1)
    base = 40 * PPMM
    y = base - 1.5 * np.sin(x / 30.0)
    for centre in (200.0, 420.0, 640.0):
        y = y - 12 * PPMM * np.exp(-0.5 * ((x - centre) / 2.0) ** 2) \
            + 3 * PPMM * np.exp(-0.5 * ((x - centre - 6.0) / 1.5) ** 2)
    _draw(mask, x, y, width_px)
    return mask / 255.0, x, y


def test_refined_trace_is_closer_to_the_drawn_signal_than_one_value_per_column() -> None:
    darkness, x, y = _qrs_row(width_px=3)
    res = extract_traces(darkness, [40 * PPMM], [(20, int(140 * PPMM))], PPMM)
    row = res.rows[0]
    assert row.fine_x_px is not None and row.fine_y_px is not None
    assert len(row.fine_x_px) == 2 * len(row.x_px)
    grid = np.arange(30.0, 130 * PPMM, 0.25)      # the signal at 4 points per pixel
    truth = np.interp(grid, x, y)
    coarse = np.interp(grid, row.x_px.astype(float), row.y_px)
    fine = np.interp(grid, row.fine_x_px, row.fine_y_px)
    err_coarse = float(np.sqrt(np.nanmean((coarse - truth) ** 2)))
    err_fine = float(np.sqrt(np.nanmean((fine - truth) ** 2)))
    # measured: 2.5 px per column vs 1.4 px refined on this page
    assert err_fine < 0.75 * err_coarse, (err_fine, err_coarse)
    # the spike tips (72 px above the line) are reached within 2 px
    for centre in (200.0, 420.0, 640.0):
        near = np.abs(row.fine_x_px - centre) < 6
        tip = float(np.nanmin(row.fine_y_px[near]))
        assert abs(tip - float(np.min(y[np.abs(x - centre) < 6]))) < 2.0


def test_pen_width_is_not_inflated_by_a_steep_trace() -> None:
    mask = np.zeros((int(60 * PPMM), int(150 * PPMM)), np.uint8)
    x = np.arange(10.0, 145 * PPMM, 0.1)
    y = 30 * PPMM + 20 * np.sin(x / 4.0)           # steep (up to 5 px/px) most of the time
    _draw(mask, x, y, 3)
    res = extract_traces(mask / 255.0, [30 * PPMM], [(20, int(140 * PPMM))], PPMM)
    # the run height alone (the previous estimate) gives 21 px on this trace
    assert res.line_width_px < 6.5, res.line_width_px


def _rows_page(n_rows: int, pitch_px: float, top_px: float) -> np.ndarray:
    darkness = np.zeros((int(top_px + (n_rows + 1) * pitch_px), 1200), np.float32)
    for k in range(n_rows):
        y = int(top_px + k * pitch_px)
        darkness[y:y + 2, 100:1100] = 1.0
    return darkness


def test_complete_rows_adds_the_missing_lattice_row() -> None:
    pitch = 90.0
    darkness = _rows_page(12, pitch, 60.0)
    seen = [k for k in range(12) if k != 7]
    rows = RowsResult(tuple(Row(i, 60.0 + k * pitch + 8 * (-1) ** k, 1.0, 100, 1099)
                            for i, k in enumerate(seen)), pitch)
    done = complete_rows(rows, darkness, PPMM, (3, 4, 6, 12))
    assert len(done.rows) == 12
    assert abs(done.rows[7].centre_px - (60.0 + 7 * pitch)) < 0.3 * pitch
    assert [r.index for r in done.rows] == list(range(12))


def test_complete_rows_adds_nothing_where_the_page_is_blank() -> None:
    pitch = 90.0
    darkness = _rows_page(12, pitch, 60.0)
    darkness[int(60 + 7 * pitch) - 5:int(60 + 7 * pitch) + 5] = 0.0   # row 7 not printed
    seen = [k for k in range(12) if k != 7]
    rows = RowsResult(tuple(Row(i, 60.0 + k * pitch, 1.0, 100, 1099)
                            for i, k in enumerate(seen)), pitch)
    assert len(complete_rows(rows, darkness, PPMM, (3, 4, 6, 12)).rows) == 11


def test_complete_rows_fills_a_hole_in_a_template_count_of_rows() -> None:
    # three rows of a four-row (3x4+1) page found: a template count, but with a two-pitch step
    pitch = 150.0
    darkness = _rows_page(4, pitch, 60.0)
    seen = [0, 1, 3]
    rows = RowsResult(tuple(Row(i, 60.0 + k * pitch, 1.0, 100, 1099)
                            for i, k in enumerate(seen)), pitch)
    done = complete_rows(rows, darkness, PPMM, (3, 4, 6, 12))
    assert len(done.rows) == 4
    assert abs(done.rows[2].centre_px - (60.0 + 2 * pitch)) < 0.3 * pitch
    # evenly spaced rows of a template count are left as they are
    even = RowsResult(tuple(Row(i, 60.0 + k * pitch, 1.0, 100, 1099) for i, k in
                            enumerate((0, 1, 2))), pitch)
    assert len(complete_rows(even, darkness, PPMM, (3, 4, 6, 12)).rows) == 3


def _pulse(row: int, gain: float, height_mm: float) -> Pulse:
    return Pulse(row=row, x_left_px=10.0, x_right_px=40.0, baseline_px=100.0 * (row + 1),
                 height_mm=height_mm, width_mm=5.0, gain_mm_mv=gain, speed_mm_s=25.0,
                 score=1.0)


def test_a_pulse_of_another_width_does_not_set_its_rows_gain() -> None:
    pulses = [_pulse(k, 20.0, 20.0) for k in range(9)]
    false = dataclasses.replace(_pulse(9, 5.0, 4.8), width_mm=11.3, speed_mm_s=50.0)
    cal = decide_calibration([*pulses, false], 10, None)
    assert cal.gain_mm_mv == 20.0 and cal.speed_mm_s == 25.0
    assert cal.row_gain_mm_mv == (20.0,) * 10
    # rows printed at half gain with pulses of the page's width keep their own gain where
    # at least two rows say so (a 12x1 page's six chest leads at half gain) ...
    half = [_pulse(k, 10.0, 10.0) for k in (8, 9)]
    cal = decide_calibration([*pulses[:8], *half], 10, None)
    assert cal.gain_mm_mv == 20.0 and cal.row_gain_mm_mv[8:] == (10.0, 10.0)
    # ... but one row alone is read at the page's gain, with a warning: a lead name under a
    # 10-mm pulse's leg had made it measure 20 mm (ECG-Image-Kit pages, 20 of 21 such reads)
    lone = _pulse(2, 20.0, 20.06)
    cal = decide_calibration([_pulse(0, 10.0, 9.6), _pulse(1, 10.0, 10.0), lone,
                              _pulse(3, 10.0, 10.5)], 4, None)
    assert cal.gain_mm_mv == 10.0 and cal.row_gain_mm_mv == (10.0,) * 4
    assert any("row 2's pulse says 20 mm/mV" in w for w in cal.warnings)


def test_the_speed_is_voted_by_the_pulses_of_the_pages_gain() -> None:
    """Seed-0 page p0134 (12x1 at 20 mm/mV and 25 mm/s, 100 dpi): overlapping rows gave five
    exact 5-mm "pulses" 10 mm wide; with two 20-mm pulses measured 10 mm wide they outvoted
    the five 5-mm wide 20-mm pulses on speed (50 mm/s read, every lead at half its length)."""
    true = [_pulse(k, 20.0, 20.0) for k in range(5)]
    wide = [dataclasses.replace(_pulse(k, 20.0, 20.0), width_mm=10.0, speed_mm_s=50.0)
            for k in (5, 6)]
    false = [dataclasses.replace(_pulse(k, 5.0, 5.0), width_mm=10.0, speed_mm_s=50.0)
             for k in range(7, 12)]
    cal = decide_calibration([*true, *wide, *false], 12, None)
    assert (cal.gain_mm_mv, cal.speed_mm_s) == (20.0, 25.0)


def test_pulses_that_measure_off_their_nominal_height_do_not_outvote_true_ones() -> None:
    # eleven "5-mm pulses" 5.8 mm tall (the top of the row below's 20-mm pulse) and one
    # true 20-mm pulse
    pulses = [_pulse(k, 5.0, 5.8) for k in range(11)] + [_pulse(11, 20.0, 19.95)]
    cal = decide_calibration(pulses, 12, None)
    assert cal.gain_mm_mv == 20.0
    assert set(cal.row_gain_mm_mv) == {20.0}
    # pulses that all measure true keep their majority
    pulses = [_pulse(k, 10.0, 10.02) for k in range(3)]
    assert decide_calibration(pulses, 3, None).gain_mm_mv == 10.0


def test_trace_end_ignores_a_stray_stroke_after_a_blank_gap() -> None:
    xs = np.arange(0, 2000)
    ys = np.full(len(xs), 50.0)
    ys[1500:1900] = np.nan          # blank margin after the trace
    ys[1900:1960] = 80.0            # the edge of a scanner's dark background
    ys[1960:] = np.nan
    trace = RowTrace(0, xs, ys, np.zeros(len(xs), bool), 1.0, 2.0)
    assert _trace_end_px(trace, PPMM) == 1499.0
    ys[1500:1900] = 50.0            # continuous: the end is the last inked column
    assert _trace_end_px(RowTrace(0, xs, ys, np.zeros(len(xs), bool), 1.0, 2.0), PPMM) == 1959.0


def test_trace_end_ignores_grid_dots_the_path_runs_on_over() -> None:
    """Seed-1 page p0115 (dotted grid): after the trace the path picked up the darker grid
    dots every 6-19 px; they chained onto the trace, the time axis ended at the last dot,
    107 px late, and every lead read at r = 0 (-3.5 dB; 19.2 dB with the trace's own end)."""
    xs = np.arange(0, 2000)
    ys = np.full(len(xs), 50.0)
    ys[1766:] = np.nan
    for x in (1778, 1784, 1797, 1816, 1835, 1848, 1867):
        ys[x] = 62.0
    trace = RowTrace(0, xs, ys, np.zeros(len(xs), bool), 1.0, 2.0)
    assert _trace_end_px(trace, PPMM) == 1765.0


def _merged_rows() -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """Two rows 20 mm apart whose QRS complexes (at the same times, as on a real page) reach
    18 mm into each other: the upper row's S wave down, the lower row's R wave up."""
    mask = np.zeros((int(70 * PPMM), int(150 * PPMM)), np.uint8)
    x = np.arange(10.0, 145 * PPMM, 0.1)
    rows = []
    for base, sign in ((25 * PPMM, 1.0), (45 * PPMM, -1.0)):
        y = base - 1.0 * np.sin(x / 25.0)
        for centre in (200.0, 420.0, 640.0):
            y = y + sign * 18 * PPMM * np.exp(-0.5 * ((x - centre) / 2.5) ** 2)
        _draw(mask, x, y, 2)
        rows.append((x, y))
    return mask / 255.0, rows


def test_merged_strokes_of_two_rows_are_left_unread_not_guessed(monkeypatch) -> None:
    import ecglens.digitize.trace as trace_mod

    darkness, truth = _merged_rows()
    ranges = [(20, int(140 * PPMM))] * 2
    res = extract_traces(darkness, [25 * PPMM, 45 * PPMM], ranges, PPMM)
    for row, (x, y) in zip(res.rows, truth, strict=True):
        assert row.overlapped is not None
        want = np.interp(row.x_px.astype(float), x, y)
        err = np.abs(row.y_px - want)
        finite = np.isfinite(row.y_px)
        assert np.array_equal(~finite, row.overlapped | ~finite)
        # every complex is marked, and little else: 3 merges of ~3 mm
        for centre in (200.0, 420.0, 640.0):
            assert row.overlapped[np.abs(row.x_px - centre) < 3].all()
        assert row.overlapped.mean() < 0.12
        # what is read is right: no excursion into the other row's stroke
        assert np.nanmax(err) < 4.0, np.nanmax(err)
    # without the rule the same ink is read into the wrong row somewhere (the test's premise)
    monkeypatch.setattr(trace_mod, "OVERLAP_NAN", False)
    guessed = extract_traces(darkness, [25 * PPMM, 45 * PPMM], ranges, PPMM)
    worst = max(float(np.nanmax(np.abs(row.y_px - np.interp(row.x_px.astype(float), x, y))))
                for row, (x, y) in zip(guessed.rows, truth, strict=True))
    assert worst > 20.0, worst


def test_scanner_lid_beside_a_tilted_page_is_not_ink_but_traces_and_text_are() -> None:
    from ecglens.digitize.pipeline import _solid_border

    h, w = int(80 * PPMM), int(200 * PPMM)
    page = np.zeros((h, w), np.uint8)
    # a dark wedge along the top edge (the lid of a scanner, the page tilted by ~3 degrees)
    wedge = np.array([[0, 0], [w - 1, 0], [w - 1, int(2 * PPMM)], [0, int(12 * PPMM)]],
                     np.int32)
    cv2.fillPoly(page, [wedge], 255)
    x = np.arange(10.0, 190 * PPMM, 0.5)
    y = 40 * PPMM - 3 * PPMM * np.exp(-0.5 * ((x % 300) - 150) ** 2 / 9.0)
    _draw(page, x, y, 3)
    cv2.putText(page, "aVL", (int(20 * PPMM), int(60 * PPMM)), cv2.FONT_HERSHEY_SIMPLEX, 1.2,
                255, 3, cv2.LINE_AA)
    border = _solid_border(page / 255.0, PPMM)
    inside_wedge = np.zeros_like(page)
    cv2.fillPoly(inside_wedge, [wedge], 1)
    assert border[inside_wedge.astype(bool)].mean() > 0.99
    ink_below = page[int(20 * PPMM):] > 127
    assert not border[int(20 * PPMM):][ink_below].any()     # trace and label untouched


def test_a_grid_dot_just_past_the_trace_end_does_not_extend_the_trace() -> None:
    mask = np.zeros((int(40 * PPMM), int(120 * PPMM)), np.uint8)
    x = np.arange(20.0, 100 * PPMM, 0.5)
    _draw(mask, x, 20 * PPMM + 2 * np.sin(x / 20.0), 2)
    end = int(100 * PPMM)
    dark = mask / 255.0
    dark[int(20 * PPMM) - 1:int(20 * PPMM) + 1, end + 3:end + 5] = 0.4   # a dot, 3 px on
    res = extract_traces(dark, [20 * PPMM], [(10, int(110 * PPMM))], PPMM)
    row = res.rows[0]
    last = row.x_px[np.isfinite(row.y_px)][-1]
    assert last <= end + 1, last


def test_narrower_pen_model_is_kept_where_it_explains_a_thick_blurred_trace(
        shared_data, monkeypatch) -> None:
    """Benchmark page p0207 (seed 0): 176 dpi, 25 mm/s, a pen the width estimate puts at
    5.1 px. The 0.85x model explains the ink edges clearly better there, and the read improves."""
    import ecglens.digitize.trace as trace_module
    from ecglens.core.io import read_record
    from ecglens.digitize.pipeline import digitize_image
    from ecglens.score.metrics import score_record
    from ecglens.synth.distort import apply_profile
    from ecglens.synth.render import RenderSettings, render_page

    seed = 889558217
    record = read_record(shared_data / "cinc" / "E07508")
    settings = RenderSettings(layout="3x4+1", speed_mm_s=25.0, gain_mm_mv=10.0, dpi=176.0,
                              grid="red", font="hershey_simplex_italic",
                              label_position="bottom-left", paper="a4", start_s=0.0,
                              minor_grid="lines", grid_extent="area",
                              trace_width_mm=0.2 + 0.15 * ((seed >> 3) % 3) / 2)
    page = apply_profile(render_page(record, settings), "clean", seed=seed)

    def snr(factors: tuple[float, ...]) -> float:
        monkeypatch.setattr(trace_module, "PEN_FACTORS", factors)
        result = digitize_image(page.image, dpi_prior=176.0, use_ocr=False,
                                layout_hint="3x4+1")
        scores = score_record(page.truth, result.convert.record)
        return float(np.mean([s.snr_db for s in scores.values()]))

    one_width, with_narrower = snr((1.0,)), snr((1.0, 0.85))
    # measured: 11.7 dB with the estimated width only, 17.8 dB with the narrower model
    assert with_narrower > one_width + 3.0, (one_width, with_narrower)


def test_lattice_rows_recovers_twelve_rows_from_centres_pulled_off_their_lines() -> None:
    """The row centres found on benchmark page p0039 (12x1, 119 dpi, 20 mm/mV): two rows
    missing, one 0.44 pitch off; the 0 mV lines are 186 + 66.4 k px."""
    ppmm = 4.685
    truth = 186.0 + 66.4 * np.arange(12)
    darkness = np.zeros((1012, 1309), np.float32)
    for y in truth:
        darkness[int(y):int(y) + 2, 100:1270] = 1.0
    found = [239, 324, 415, 519, 572, 642, 719, 791, 849, 918]
    rows = RowsResult(tuple(Row(i, float(y), 0.9, 100, 1269) for i, y in enumerate(found)),
                      70.0)
    # the lattice completion does not accept these rows (one is too far off its lattice)
    assert len(complete_rows(rows, darkness, ppmm, (3, 4, 6, 12)).rows) == 10
    lattice = lattice_rows(rows, darkness, ppmm, 12)[0]
    assert lattice is not None and len(lattice.rows) == 12
    centres = np.array([r.centre_px for r in lattice.rows])
    assert np.max(np.abs(centres - truth)) < 0.2 * 66.4, centres - truth
    # no lattice where the page has no ink at the positions it needs
    blank = np.zeros_like(darkness)
    assert lattice_rows(rows, blank, ppmm, 12) == []


def test_grid_squares_taken_for_pulses_do_not_confirm_a_row_lattice(shared_data: Path) -> None:
    # a dark-gridded photo: 5-mm grid squares pass as 5 mm/mV pulses, but off one pitch; the
    # page must be refused, not read along grid lines. Its 7 projection rows fit no template
    # until 6x2+1 became one; read as that, what is read fails the final ECG check.
    path = shared_data / "ecg_image_kit" / "real_images" / "ecg00005.jpg"
    with pytest.raises(DigitizeError, match=r"fit no template|not an ECG"):
        digitize_file(path)


def test_complete_rows_fills_every_other_missing_row() -> None:
    """Seed-2 page p0003 (12 rows at a 14-mm pitch, 107 dpi): the projection found rows
    0, 2, 3, 5, 6 of twelve; the median step (1.5 pitches) fit no lattice."""
    pitch = 58.0
    darkness = _rows_page(12, pitch, 100.0)
    found = [100.0 + k * pitch for k in (0, 2, 3, 5, 6)]
    rows = RowsResult(tuple(Row(i, y, 0.9, 100, 1099) for i, y in enumerate(found)), 2 * pitch)
    done = complete_rows(rows, darkness, 4.2, (3, 4, 6, 12))
    assert len(done.rows) == 12
    assert np.allclose([r.centre_px for r in done.rows], 100.0 + pitch * np.arange(12), atol=3)


def test_lattice_rows_leaves_out_a_header_line_on_the_lattice() -> None:
    """Seed-2 page p0065: a header text line three pitches above twelve rows is found as a
    13th row; the lattice of the twelve is returned without it."""
    ppmm = 8.46
    pitch = 120.0
    truth = 456.0 + pitch * np.arange(12)
    darkness = np.zeros((2000, 1400), np.float32)
    for y in truth:
        darkness[int(y):int(y) + 2, 100:1300] = 1.0
    darkness[94:96, 100:1300] = 1.0
    found = [94.0, *(truth + np.tile([8.0, -9.0, 4.0], 4))]
    rows = RowsResult(tuple(Row(i, float(y), 0.9, 100, 1299) for i, y in enumerate(found)),
                      pitch)
    lattice = lattice_rows(rows, darkness, ppmm, 12)
    assert lattice, "no lattice"
    centres = np.array([r.centre_px for r in lattice[0].rows])
    assert len(centres) == 12 and np.max(np.abs(centres - truth)) < 0.1 * pitch, centres


def test_twelve_rows_at_20_mm_per_mv_are_read_from_their_calibration_pulses(shared_data):
    """Seed-0 page p0116 (12x1 at 20 mm/mV, 105 dpi): the complexes of neighbouring rows
    blur the ink projection (5 rows found, read as 6x2 or refused); the twelve calibration
    pulses down the left margin give the rows."""
    from ecglens.analysis.ludb import read_ludb_record
    from ecglens.digitize.pipeline import digitize_image

    record = read_ludb_record(shared_data / "ludb" / "data" / "111")
    seed = 172119242
    page = _benchmark_page(record, seed, "clean", layout="12x1", gain_mm_mv=20.0, dpi=105.0,
                           grid="bw", font="sans", label_position="bottom-left", paper="a4")
    result = digitize_image(page.image, source="p0116.png", dpi_prior=105.0, use_ocr=False)
    assert any("calibration pulses down the left margin" in w for w in result.warnings)
    assert result.layout.name == "12x1" and len(result.rows.rows) == 12
    assert result.calibration.gain_mm_mv == 20.0
    truth_levels = np.array([row["baseline_px"] for row in page.geometry["rows"]])
    assert np.max(np.abs(np.array(result.baselines_px) - truth_levels)) < 1.5


def test_grid_is_not_read_on_a_third_harmonic_of_its_1_mm_lines(shared_data) -> None:
    """Seed-2 page p0033 (red grid, 175 dpi): the 3rd harmonic of the 1 mm lines (period
    2.3 px) outscored the fundamental; px/mm was read as 2.30 instead of 6.89."""
    from ecglens.analysis.ludb import read_ludb_record
    from ecglens.digitize.grid import find_grid
    from ecglens.synth.render import RenderSettings, render_page

    record = read_ludb_record(shared_data / "ludb" / "data" / "119")
    page = render_page(record, RenderSettings(layout="12x1-cabrera", dpi=175.0, grid="red",
                                              font="sans_bold", label_position="top-left",
                                              paper="a4", trace_width_mm=0.275))
    grid = find_grid(page.image, 175.0)
    assert grid.found and abs(grid.px_per_mm_x / (175.0 / 25.4) - 1) < 0.01, grid.px_per_mm_x


def test_faint_pulses_give_the_gain(shared_data) -> None:
    """Seed-0 page p0160 (3x4 at 5 mm/mV, 107-dpi scan): the pulses' one-pixel vertical
    strokes are at a third of the trace's darkness, no pulse was matched and 10 mm/mV was
    assumed (every amplitude read at half its size)."""
    from ecglens.analysis.ludb import read_ludb_record
    from ecglens.digitize.pipeline import digitize_image

    record = read_ludb_record(shared_data / "ludb" / "data" / "188")
    seed = 1749530238
    page = _benchmark_page(record, seed, "scan", layout="3x4", gain_mm_mv=5.0, dpi=107.0,
                           grid="bw", font="sans_condensed", label_position="bottom-left",
                           paper="a4")
    result = digitize_image(page.image, source="p0160.png", dpi_prior=107.0, use_ocr=False)
    assert any("1.6x the ink darkness" in w for w in result.warnings)
    assert result.calibration.gain_mm_mv == 5.0 and len(result.calibration.pulses) >= 2


def test_a_lead_name_read_more_than_twice_is_no_evidence() -> None:
    """Seed-0 page p0025 (3x4+3): OCR read 17 "I"s off QRS spikes; they outvoted the ticks
    at the 3x4 cell boundaries and the page was read as 6x2."""
    from ecglens.digitize.layout_detect import choose_layout

    ticks = [{0.25: 0.3, 0.5: 0.4, 0.75: 0.3}] * 3 + [{0.25: 0.0, 0.5: 0.0, 0.75: 0.0}] * 3
    noise = [(row, x, "I") for row in range(6) for x in (0.01, 0.3, 0.6)]
    assert choose_layout(6, ticks, noise).name == "3x4+3"
    # read once, "I" still counts
    assert choose_layout(6, ticks, [(0, 0.01, "I"), (1, 0.01, "II")]).name == "3x4+3"


def test_outer_rows_lost_in_the_projection_are_added_on_their_pulses(shared_data) -> None:
    """Seed-2 page p0069 (3x4+3 at 20 mm/mV and 50 mm/s, 199-dpi scan): the complexes
    crossing the bottom two rows hid them from the projection; the four rows left are a
    template's count (3x4+1). The pulses one and two pitches below the last row add them."""
    from ecglens.core.io import read_record
    from ecglens.digitize.pipeline import digitize_image

    record = read_record(shared_data / "cinc" / "JS20006")
    seed = 295738318
    page = _benchmark_page(record, seed, "scan", layout="3x4+3", gain_mm_mv=20.0, speed_mm_s=50.0,
                           dpi=199.0, grid="orange", font="serif", label_position="baseline",
                           paper="a4", start_s=0.6)
    result = digitize_image(page.image, source="p0069.png", dpi_prior=199.0, use_ocr=False)
    assert any("beyond the rows found" in w for w in result.warnings)
    assert result.layout.name == "3x4+3" and len(result.calibration.pulses) == 6


def test_pulse_scan_widens_the_pulses_lattice_to_a_template_count() -> None:
    """Seed-3 page p0144 (12 rows): pulses were found on 9 consecutive rows (a crossing QRS
    spoiled the others), 10 slots from the first to the last — no template. The lattice is
    widened to 12 where the page has ink at the empty slots."""
    from ecglens.digitize.pulse_rows import pulse_scan_rows

    ppmm, pitch, top = 5.6, 80.0, 120.0
    truth = top + pitch * np.arange(12)
    darkness = np.zeros((int(truth[-1] + 100), 1500), np.float32)
    for k, y in enumerate(truth):
        yi = int(y)
        darkness[yi:yi + 2, 40:1450] = 1.0                       # the row's trace line
        if 1 <= k <= 9:                                          # 9 pulses, 5 mm x 5 mm
            x0, x1, h = 60, 60 + int(5 * ppmm), int(5 * ppmm)
            darkness[yi - h:yi + 2, x0:x0 + 2] = 1.0
            darkness[yi - h:yi + 2, x1:x1 + 2] = 1.0
            darkness[yi - h:yi - h + 2, x0:x1 + 2] = 1.0
            darkness[yi:yi + 2, x0:x1] = 0.0                     # no line under the pulse
    found = [truth[3], truth[7]]
    rows = RowsResult(tuple(Row(i, float(y), 0.9, 40, 1449) for i, y in enumerate(found)),
                      4 * pitch)
    by_pulses = pulse_scan_rows(rows, darkness, ppmm, ppmm, (3, 4, 6, 12))
    assert by_pulses is not None and len(by_pulses.rows) == 12
    centres = np.array([r.centre_px for r in by_pulses.rows])
    assert np.max(np.abs(centres - truth)) < 3.0, centres - truth


def test_pulse_rows_win_over_lattice_completion_at_equal_counts(shared_data) -> None:
    """Seed-3 page p0202 (12x1 scan, 242 dpi, a scanner shadow along the bottom): the
    projection found 10 rows, the lattice completion made 12 of them with one at the shadow
    and the top row missed (every lead one row off, -0.4 dB); the pulses give the 12."""
    from ecglens.analysis.ludb import read_ludb_record
    from ecglens.digitize.pipeline import digitize_image

    record = read_ludb_record(shared_data / "ludb" / "data" / "72")
    seed = 69843421
    page = _benchmark_page(record, seed, "scan", layout="12x1", gain_mm_mv=10.0, dpi=242.0,
                           grid="grey", font="hershey_simplex_italic", label_position="baseline",
                           paper="a4")
    result = digitize_image(page.image, source="p0202.png", dpi_prior=242.0, use_ocr=False)
    assert any("calibration pulses down the left margin" in w for w in result.warnings)
    assert len(result.rows.rows) == 12 and len(result.calibration.pulses) >= 11
    # each row on its printed 0 mV line (truth in page px, mapped by the scan's geometry)
    truth = np.array([row["baseline_px"] for row in page.geometry["rows"]])
    read = np.array(result.baselines_px)
    spacing = np.diff(read)
    assert np.allclose(spacing, np.median(np.diff(truth)), rtol=0.05), spacing


def test_a_row_starting_late_is_searched_for_its_pulse_from_the_rows_common_start(
        shared_data) -> None:
    """Seed-4 page p0148 (3x4+1 at 20 mm/mV and 50 mm/s, 299 dpi): a tall V4 complex hid the
    top row from the projection and the rhythm row's first ink was found 15 mm right of its
    pulse; with that pulse missed, the rows above were not looked for (read as 3x4)."""
    from ecglens.analysis.ludb import read_ludb_record
    from ecglens.digitize.pipeline import digitize_image

    record = read_ludb_record(shared_data / "ludb" / "data" / "171")
    seed = 2061385569
    page = _benchmark_page(record, seed, None, layout="3x4+1", gain_mm_mv=20.0, speed_mm_s=50.0,
                           dpi=299.0, grid="red", font="hershey_duplex", label_position="baseline",
                           paper="a4", start_s=1.5)
    result = digitize_image(page.image, source="p0148.png", dpi_prior=299.0, use_ocr=False)
    assert result.layout.name == "3x4+1" and len(result.calibration.pulses) == 4
    truth = np.array([row["baseline_px"] for row in page.geometry["rows"]])
    assert np.max(np.abs(np.array(result.baselines_px) - truth)) < 3.0


def test_a_rows_own_narrow_spike_is_not_bridged_as_a_crossing(monkeypatch) -> None:
    """Seed-4 page p0028 (6x2 at 20 mm/mV and 25 mm/s, 140 dpi): V4's R spike, 2-3 columns
    wide, merged with V3's S wave above it. V4 read straight across its own spike as if V3's
    stroke crossed its line, so V3 took the whole stroke down to V4's line as its own S wave
    (-1.5 mV for -0.65). The spike ends at V4's line, it does not cross it: both rows are left
    unread there."""
    import ecglens.digitize.trace as trace_mod

    ppmm = 8.0

    mask = np.zeros((int(70 * ppmm), int(120 * ppmm)), np.uint8)
    x = np.arange(20.0, 110 * ppmm, 0.25)
    centres = (250.0, 500.0, 750.0)
    upper = 25 * ppmm + sum(12 * ppmm * np.exp(-0.5 * ((x - c) / 2.0) ** 2) for c in centres)
    lower = 45 * ppmm - sum(15 * ppmm * np.exp(-0.5 * ((x - c) / 1.2) ** 2) for c in centres)
    for y in (upper, lower):
        pts = np.round(np.stack([x, y], 1) * 16).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(mask, [pts], False, 255, 2, cv2.LINE_AA, 4)

    def worst_error() -> float:
        res = extract_traces(mask / 255.0, [25 * ppmm, 45 * ppmm], [(30, int(105 * ppmm))] * 2,
                             ppmm)
        return max(float(np.nanmax(np.abs(row.y_px - np.interp(row.x_px.astype(float), x, y))))
                   for row, y in zip(res.rows, (upper, lower), strict=True))

    assert worst_error() < 2.0
    monkeypatch.setattr(trace_mod, "BRIDGE_THROUGH", 0.0)    # bridged regardless: the premise
    assert worst_error() > 10 * ppmm


def test_second_read_finds_rows_of_thin_lines_split_over_two_pixel_rows(shared_data,
                                                                        monkeypatch) -> None:
    """Seed-4 page p0218 (6x2 at 20 mm/mV and 50 mm/s, a 100-dpi scan rotated 2 deg, grey
    grid): the deskewed 1-px trace splits its ink over two pixel rows, each below the ink
    level, and no row was found on either read (refused). The second read counts pixel pairs;
    the six rows come from their pulses."""
    import ecglens.digitize.layout_detect as layout_mod
    from ecglens.analysis.ludb import read_ludb_record
    from ecglens.core.errors import DigitizeError
    from ecglens.digitize.pipeline import digitize_image

    record = read_ludb_record(shared_data / "ludb" / "data" / "95")
    seed = 891086816
    page = _benchmark_page(record, seed, "scan", layout="6x2", gain_mm_mv=20.0, speed_mm_s=50.0,
                           dpi=100.0, grid="grey", font="hershey_duplex",
                           label_position="top-left", paper="a4", start_s=1.1)
    # (the grid-model read, tried first, reads this page too: left out here)
    monkeypatch.setattr("ecglens.digitize.pipeline.RETRY_READS", ("grid_lines", "pixel_pairs"))
    # rows and calibration are what this test is about; the final ECG check (which refuses
    # this restricted configuration's trace read) is measured but not applied here
    result = digitize_image(page.image, source="p0218.png", dpi_prior=100.0, use_ocr=False,
                            check=False)
    assert result.layout.name == "6x2" and len(result.calibration.pulses) == 6
    assert (result.calibration.gain_mm_mv, result.calibration.speed_mm_s) == (20.0, 50.0)
    # without the pairs the page is refused (the test's premise)
    plain = layout_mod.find_rows
    monkeypatch.setattr("ecglens.digitize.pipeline.find_rows",
                        lambda d, p, **kw: plain(d, p, **{**kw, "pair_rows": False}))
    with pytest.raises(DigitizeError):
        digitize_image(page.image, source="p0218.png", dpi_prior=100.0, use_ocr=False)


def test_pixel_pair_read_confirmed_only_by_faint_pulses_is_refused(shared_data,
                                                                   monkeypatch) -> None:
    """Seed-0 page p0048 (6x2, a faint 103-dpi scan rotated 2.5 deg, grey grid): the
    pixel-pair read found every other row (3, a 3x4 count) and two pulses only at 1.6x the
    darkness; kept, it read a 6x2 page as 3x4 with the leads in the wrong rows. Without the
    grid-model read it is refused; with it, it is read right (six rows, 10 mm/mV, 50 mm/s)."""
    from ecglens.analysis.ludb import read_ludb_record
    from ecglens.core.errors import DigitizeError
    from ecglens.digitize.pipeline import digitize_image

    record = read_ludb_record(shared_data / "ludb" / "data" / "1")
    seed = 57532356
    page = _benchmark_page(record, seed, "scan", layout="6x2", gain_mm_mv=10.0, speed_mm_s=50.0,
                           dpi=103.0, grid="grey", font="hershey_triplex",
                           label_position="top-left", paper="a4", start_s=0.8)
    result = digitize_image(page.image, source="p0048.png", dpi_prior=103.0, use_ocr=False)
    assert any("above a model of the grid's lines" in w for w in result.warnings)
    assert result.layout.name == "6x2" and len(result.calibration.pulses) == 6
    assert (result.calibration.gain_mm_mv, result.calibration.speed_mm_s) == (10.0, 50.0)
    monkeypatch.setattr("ecglens.digitize.pipeline.RETRY_READS", ("grid_lines", "pixel_pairs"))
    with pytest.raises(DigitizeError):
        digitize_image(page.image, source="p0048.png", dpi_prior=103.0, use_ocr=False)


def test_ink_above_the_grid_model_reads_a_faint_trace_on_a_grey_grid(shared_data) -> None:
    """Seed-5 page p0000 (12x1, a 158-dpi scan rotated 1.5 deg, grey grid): the blurred 1-px
    trace is lighter than the grid's darkest lines, so the page's one ink level put it below
    ink, and every earlier read found no rows (refused). Measured above the grid's own line
    profiles the trace is ink: twelve rows, each with its pulse, at 10 mm/mV and 25 mm/s."""
    from ecglens.analysis.ludb import read_ludb_record
    from ecglens.core.errors import RowsError
    from ecglens.digitize.pipeline import _read_page, digitize_image

    record = read_ludb_record(shared_data / "ludb" / "data" / "128")
    seed = 63513075
    page = _benchmark_page(record, seed, "scan", layout="12x1", gain_mm_mv=10.0,
                           speed_mm_s=25.0, dpi=158.0, grid="grey", font="sans",
                           label_position="top-left", paper="a4")
    with pytest.raises(RowsError):   # the page's one ink level: no rows (the premise)
        _read_page(page.image, "p0000.png", 0, 1, 158.0, False, None)
    result = digitize_image(page.image, source="p0000.png", dpi_prior=158.0, use_ocr=False)
    assert result.ink.grid_subtracted
    assert result.layout.name == "12x1" and len(result.calibration.pulses) == 12
    assert (result.calibration.gain_mm_mv, result.calibration.speed_mm_s) == (10.0, 25.0)


def test_pulses_far_into_the_rows_do_not_confirm_a_second_read(shared_data: Path,
                                                               monkeypatch) -> None:
    """Real photo ecg00020 (dark grey grid, its printed pulses cut off at the left edge): on
    the second read grid lines 30 mm into each row passed as pulses (10 and 5 mm/mV, 50 mm/s)
    with a 40-mm search strip, and the page was read with its cells shifted and a trace along
    a grid line. The second read searches 30 mm, and a pulse candidate with more than
    ``TRACE_BEFORE_PULSE_MM`` of its row's trace before it is no pulse: each alone refuses it."""
    import ecglens.digitize.calibration as calibration_mod
    import ecglens.digitize.pipeline as pipeline_mod

    path = shared_data / "ecg_image_kit" / "real_images" / "ecg00020.jpg"
    with pytest.raises(DigitizeError, match="no ECG trace rows"):
        digitize_file(path)
    monkeypatch.setattr(pipeline_mod, "RETRY_PULSE_SEARCH_MM", 40.0)
    with pytest.raises(DigitizeError, match="no ECG trace rows"):
        digitize_file(path)
    monkeypatch.setattr(calibration_mod, "TRACE_BEFORE_PULSE_MM", 1e9)  # the test's premise
    assert digitize_file(path)[0].layout.name == "3x4"


def test_grid_model_read_that_breaks_einthoven_is_refused(shared_data: Path) -> None:
    """Real photo ecg00005 (grey grid, uneven light; 7 rows found, no template): above the
    grid model its grid lines passed as twelve rows with a 'pulse' each, read as 12x1 with the
    augmented leads' Einthoven residual 3.95 of their rms. That read is not confirmed (past
    ``RETRY_EINTHOVEN_MAX``), though its pulses alone would confirm it."""
    import ecglens.digitize.pipeline as pipeline_mod
    from ecglens.digitize.load import load_pages

    page = load_pages(shared_data / "ecg_image_kit" / "real_images" / "ecg00005.jpg")[0]
    result = pipeline_mod._read_page(page.image, "ecg00005.jpg", 0, 1, page.dpi_prior, False,
                                     None, subtract_grid=True)
    assert result.ink.grid_subtracted
    assert max(result.convert.einthoven.values()) > pipeline_mod.RETRY_EINTHOVEN_MAX
    assert 2 * len(result.calibration.pulses) >= len(result.rows.rows)   # pulses would pass
    assert not pipeline_mod._retry_confirmed("grid_model", result)


def test_rows_missed_at_the_page_ink_level_are_read_at_the_grid_lines_level(
        shared_data) -> None:
    """Seed-5 page p0208 (6x2 at 20 mm/mV, a 128-dpi scan, grey grid): at the page's ink level
    every other row dropped out of the projection, three rows (a 3x4 count) were left, and the
    page was read as 3x4. With the threshold at the grid lines' level six rows are found, each
    with its pulse, and the page is read again at that level."""
    from ecglens.analysis.ludb import read_ludb_record
    from ecglens.digitize.pipeline import _read_page, digitize_image

    record = read_ludb_record(shared_data / "ludb" / "data" / "48")
    seed = 333833583
    page = _benchmark_page(record, seed, "scan", layout="6x2", gain_mm_mv=20.0, speed_mm_s=25.0,
                           dpi=128.0, grid="grey", font="hershey_triplex",
                           label_position="top-left", paper="a4")
    first = _read_page(page.image, "p0208.png", 0, 1, 128.0, False, None)
    assert len(first.rows.rows) == 3          # the premise
    result = digitize_image(page.image, source="p0208.png", dpi_prior=128.0, use_ocr=False)
    assert any("rows found at the page's ink level" in w for w in result.warnings)
    assert result.layout.name == "6x2" and len(result.calibration.pulses) == 6
    assert result.calibration.gain_mm_mv == 20.0


def test_a_line_family_off_by_no_whole_multiple_is_measured_again(shared_data) -> None:
    """Seed-5 page p0213 (3x4, a 217-dpi scan rotated -3.1 deg, blue grid of dotted 1 mm
    lines): the horizontal family was read at 6.10 px/mm, 7/5 off the vertical's 8.54 and no
    whole multiple of it, so no grid was found and the page was refused. Measured again at
    the vertical family's lattice it agrees: a square 8.54 px/mm grid, blue."""
    from ecglens.analysis.ludb import read_ludb_record
    from ecglens.digitize.grid import find_grid

    record = read_ludb_record(shared_data / "ludb" / "data" / "95")
    seed = 1361263728
    page = _benchmark_page(record, seed, "scan", layout="3x4", gain_mm_mv=20.0, speed_mm_s=50.0,
                           dpi=217.0, grid="blue", font="hershey_duplex",
                           label_position="bottom-left", paper="letter", start_s=3.0)
    grid = find_grid(page.image, 217.0)
    assert grid.found and grid.grid_colour == "blue"
    truth = 217.0 / 25.4
    assert abs(grid.px_per_mm_x / truth - 1) < 0.005 and abs(grid.px_per_mm_y / truth - 1) < 0.005
    assert "re-measured" in grid.reason       # the path this test is about


def test_rows_from_the_pulses_where_the_projection_finds_none(shared_data) -> None:
    """Seed-6 page p0059 (3x4 at 20 mm/mV and 50 mm/s, 137 dpi, clean): the large wandering
    complexes keep every row's ink off its line, the ink projection finds no row and the page
    was refused. Its three pulses are plain: the rows are taken from their lattice, and the
    page is read as 3x4 at 20 mm/mV, 50 mm/s."""
    from ecglens.analysis.ludb import read_ludb_record
    from ecglens.digitize.pipeline import RowsError, _read_page, digitize_image

    record = read_ludb_record(shared_data / "ludb" / "data" / "90")
    seed = 803822988
    page = _benchmark_page(record, seed, "clean", layout="3x4", gain_mm_mv=20.0,
                           speed_mm_s=50.0, dpi=137.0, grid="red", font="sans_bold",
                           label_position="top-left", paper="a4", start_s=4.7)
    with pytest.raises(RowsError):          # the premise: no row in the projection
        _read_page(page.image, "p0059.png", 0, 1, 137.0, False, None)
    result = digitize_image(page.image, source="p0059.png", dpi_prior=137.0, use_ocr=False)
    assert any("rows taken from the calibration pulses" in w for w in result.warnings)
    assert result.layout.name == "3x4" and len(result.calibration.pulses) == 3
    assert (result.calibration.gain_mm_mv, result.calibration.speed_mm_s) == (20.0, 50.0)


def test_a_page_without_any_pulse_is_read_again_above_the_grid_model(shared_data) -> None:
    """Seed-6 page p0209 (12x1, a 111-dpi scan, pink grid): at the page's ink level the six
    lower rows' thin lines and every pulse fall below the ink level; six rows (a 6x2 count)
    were read as 6x2 at an assumed gain and speed. Read above the grid model, all twelve rows
    and their pulses are found: 12x1 at 10 mm/mV, 25 mm/s."""
    from ecglens.analysis.ludb import read_ludb_record
    from ecglens.digitize.pipeline import _read_page, digitize_image

    record = read_ludb_record(shared_data / "ludb" / "data" / "178")
    seed = 1360522114
    page = _benchmark_page(record, seed, "scan", layout="12x1", gain_mm_mv=10.0,
                           speed_mm_s=25.0, dpi=111.0, grid="pink", font="serif",
                           label_position="bottom-left", paper="letter")
    first = _read_page(page.image, "p0209.png", 0, 1, 111.0, False, None)
    assert len(first.rows.rows) == 6 and not first.calibration.pulses    # the premise
    result = digitize_image(page.image, source="p0209.png", dpi_prior=111.0, use_ocr=False)
    assert any("no calibration pulse found" in w for w in result.warnings)
    assert result.layout.name == "12x1" and len(result.calibration.pulses) == 12


def test_pulses_out_of_the_pulse_column_do_not_move_the_time_axis(shared_data) -> None:
    """Seed-8 page p0217 (12x1 at 5 mm/mV, a 118-dpi scan, orange grid; CinC JS20007, whose
    V4 and V5 open with a large artefact): two square-looking strokes of that artefact, 10 mm
    right of the real pulses, were taken as those rows' pulses, and the rightmost pulse edge
    set the time axis' start 0.9 s late, so every lead scored below 0 dB. Strokes off the
    page's column of pulses are no longer pulses: the axis is the standard 250-mm one."""
    from ecglens.core.io import read_record
    from ecglens.core.record import STANDARD_LEADS
    from ecglens.digitize.pipeline import digitize_image
    from ecglens.score.metrics import score_lead

    record = read_record(shared_data / "cinc" / "JS20007")
    seed = 2048038820
    page = _benchmark_page(record, seed, "scan", layout="12x1", gain_mm_mv=5.0,
                           speed_mm_s=25.0, dpi=118.0, grid="orange", font="hershey_complex",
                           label_position="baseline", paper="a4")
    result = digitize_image(page.image, source="p0217.png", dpi_prior=118.0, use_ocr=False)
    ppmm = result.grid.px_per_mm_x
    stray = [w for w in result.warnings if "off the page's column" in w]
    assert stray and "row(s) 9, 10" in stray[0]                 # the strokes this is about
    rights = [p.x_right_px for p in result.calibration.pulses]
    assert len(rights) == 10 and max(rights) - min(rights) < 1 * ppmm
    assert result.time_axis.source == "standard 250-mm axis"
    assert max(rights) < result.time_axis.x0_px < max(rights) + 5 * ppmm   # 0.9 s late before
    assert result.layout.name == "12x1" and result.calibration.gain_mm_mv == 5.0
    truth = page.truth
    assert truth.fs == 500.0 and truth.leads == STANDARD_LEADS
    snr = score_lead(truth.lead("II"), result.record.lead("II"), 500.0).snr_db
    assert snr > 5.0                # below 0 dB with the late axis


def test_pulses_in_no_common_column_still_give_a_start(shared_data, monkeypatch) -> None:
    """Real photo ecg00030: a retry read finds four "pulses" at three places across its left
    margin (right edges 82, 83, 126, 160 px at 3.9 px/mm), none within 5 mm of their median
    edge; the first form of the pulse-column rule found no column there and raised. The
    column is now the largest group (82–83 px), and the photo is read as before: 3x4.
    (Its own pulses are narrow ones, found since on the first read; they are not looked for
    here, which is how the retry read came about. The photo is read unflattened: flattened
    (its grid bent by 2.3 mm) that retry read finds its pulses in one column.)"""
    import ecglens.digitize.calibration as calibration
    import ecglens.digitize.pipeline as pipeline

    monkeypatch.setattr(calibration, "NARROW_PULSE_MM", (2.0, 2.0))
    monkeypatch.setenv("ECGLENS_FLATTEN", "0")

    columns = []
    original = pipeline.pulse_column

    def watch(pulses, px_per_mm_x):
        column = original(pulses, px_per_mm_x)
        rights = sorted(p.x_right_px for p in pulses)
        if len(rights) == 4 and rights[-1] - rights[0] > 15 * px_per_mm_x:
            columns.append((rights, sorted(p.x_right_px for p in column)))
        return column

    path = shared_data / "ecg_image_kit" / "real_images" / "ecg00030.jpg"
    try:
        pipeline.pulse_column = watch
        result = digitize_file(path)[0]
    finally:
        pipeline.pulse_column = original
    assert columns, "the premise: a read with pulses spread over 15 mm"
    rights, column = columns[0]
    assert column == rights[:2]                  # the two leftmost, 1 px apart
    assert result.layout.name == "3x4"


@pytest.mark.parametrize("name", ["ecg00040.jpg", "ecg00041.jpg"])
def test_narrow_pulses_with_no_feet_give_the_gain_of_a_real_photo(shared_data, name) -> None:
    """Real photos ecg00040/41 print 10-mm pulses 3.2 mm wide with no foot lines. With only
    0.2-s pulses looked for, the label "I" beside a QRS upstroke matched a 5-mm/mV, 50-mm/s
    pulse and the page was read at half its gain and half its length (both axes 2x off).
    The narrow pulses now give 10 mm/mV; their width says nothing of the speed, so 25 mm/s
    is assumed, with a warning."""
    result = digitize_file(shared_data / "ecg_image_kit" / "real_images" / name)[0]
    cal = result.calibration
    assert result.layout.name == "3x4+1"
    assert (cal.gain_mm_mv, cal.speed_mm_s) == (10.0, 25.0)
    narrow = [p for p in cal.pulses if p.speed_mm_s is None]
    assert len(narrow) >= 2 and len(narrow) == len(cal.pulses)
    assert all(2.9 < p.width_mm < 3.5 and abs(p.height_mm - 10.0) < 0.8 for p in narrow)
    assert any("give the gain only" in w for w in result.warnings)
    assert any("assumed 25 mm/s" in w for w in result.warnings)


def test_a_label_on_a_low_resolution_photo_is_no_narrow_pulse(shared_data) -> None:
    """Real photo ecg00054 (2.3 px/mm, 3x4+1): its label "III" under a row's start, 6 px wide,
    was taken for a narrow 5-mm/mV pulse and the row's 0 mV line put 5 mm below its trace.
    Narrow pulses are at least 8 px wide now. The photo was refused ("1 trace row fits no
    template") until the rows in the network's trace ink bridged one-column gaps; it is read
    as 3x4+1 now (graded PARTLY: most QRS spikes, printed faint, are left unread), and no
    row's 0 mV line lies off its trace."""
    result = digitize_file(shared_data / "ecg_image_kit" / "real_images" / "ecg00054.png")[0]
    assert result.layout.name == "3x4+1"
    assert not any(p.width_mm < 3.0 for p in result.calibration.pulses)
    for trace, base in zip(result.traces.rows, result.baselines_px, strict=True):
        on_trace = trace.y_px[np.isfinite(trace.y_px)]
        assert abs(float(np.median(on_trace)) - base) < 1.0 * result.grid.px_per_mm_y


def test_rows_on_a_pulse_each_win_over_a_lattice_completed_from_one_row_more(shared_data):
    """Seed-10 page p0193 (6x2 scan at 20 mm/mV, 291 dpi): V1-V4's tall complexes made a
    seventh row in the ink projection, lattice completion made that 12 rows at half the
    pulses' pitch, and the page was read as Cabrera with pulses of three gains (-2.8 dB).
    The six pulses down the margin, one on every row, give the rows."""
    from ecglens.analysis.ludb import read_ludb_record
    from ecglens.digitize.pipeline import digitize_image

    record = read_ludb_record(shared_data / "ludb" / "data" / "172")
    seed = 1535339261
    page = _benchmark_page(record, seed, "scan", layout="6x2", gain_mm_mv=20.0, dpi=291.0,
                           grid="green", font="hershey_triplex", label_position="baseline",
                           paper="a4")
    result = digitize_image(page.image, source="p0193.png", dpi_prior=291.0, use_ocr=False)
    assert result.layout.name == "6x2" and len(result.rows.rows) == 6
    assert result.calibration.gain_mm_mv == 20.0
    assert {p.gain_mm_mv for p in result.calibration.pulses} == {20.0}
    # (the scan's rotation moves the page: its rows' spacing is compared)
    truth_levels = np.array([row["baseline_px"] for row in page.geometry["rows"]])
    assert np.max(np.abs(np.diff(result.baselines_px) - np.diff(truth_levels))) < 3.0


def test_faint_r_spikes_of_a_thermal_printout_photo_are_followed(shared_data) -> None:
    """Real photo ecg00042: its thermal printer drew the R spikes' fast strokes lighter and
    broken (steep strokes at 0.5-0.66 of the flat trace's darkness), and the path cut lead
    II's three R spikes at 0.14, 0.23 and 0.51 mV. Such a page's path is searched again with
    the strokes' darkness as full ink: the three spikes read alike (~0.67 mV)."""
    from scipy.signal import find_peaks

    result = digitize_file(shared_data / "ecg_image_kit" / "real_images" / "ecg00042.jpg")[0]
    lead_ii = np.nan_to_num(result.record.lead("II")[:1250])      # its 3x4 cell, 2.5 s
    peaks, _ = find_peaks(lead_ii, distance=150, height=0.1)
    tops = np.sort(lead_ii[peaks])[-3:]
    assert len(tops) == 3
    assert tops.min() > 0.55 and tops.max() - tops.min() < 0.1, tops


def test_faint_steep_strokes_are_climbed_where_the_flat_trace_is_dark(monkeypatch) -> None:
    """A synthetic row at 5 px/mm: a dark flat line and a 12-mm spike 7 columns wide whose
    strokes are drawn at 0.6 of its darkness and broken by a 3-px gap. The path follows the
    spike to its tip; with the climb cost of other pages (rule off) it cuts it 4.6 mm low."""
    import ecglens.digitize.trace as trace

    page = np.zeros((200, 300), np.float32)
    page[100:102, 20:280] = 1.0                                  # flat trace, 0 mV at ~101
    tip = 101 - 60
    page[100:102, 150:157] = 0.0
    for y in range(tip, 102):                                    # up- and downstroke
        page[y, 150 + (101 - y) // 20] = 0.6
        page[y, 156 - (101 - y) // 20] = 0.6
    page[tip:tip + 2, 152:155] = 0.9                             # the darker tip
    page[tip + 20:tip + 23, 140:180] = 0.0                       # a gap in both strokes
    bands, tops = trace._band_stack(page, np.array([101.0]), 60, 0, page.shape[1])
    path = trace._coarse_viterbi(bands, 101.0 - tops, 5.0, start_col=np.array([20]),
                                 dead_px=25.0)
    steep, flat = trace.stroke_contrast(bands, path)
    assert steep < trace.FAINT_STROKE_RATIO * flat
    read = trace.extract_traces(page, [101.0], [(20, 280)], 5.0)
    assert np.nanmin(read.rows[0].y_px) < tip + 2                 # the tip, 12 mm up
    monkeypatch.setattr(trace, "FAINT_STROKE_RATIO", 0.0)
    cut = trace.extract_traces(page, [101.0], [(20, 280)], 5.0)
    assert np.nanmin(cut.rows[0].y_px) > tip + 15


@pytest.mark.parametrize("name", ["ecg00044.jpg", "ecg00048.jpg"])
def test_rhythm_strip_below_three_rows_is_found_by_its_pulse(shared_data, name) -> None:
    """Real photos ecg00044/48 (3x4 + a lead II strip): the ink projection found the three
    rows, no probe one pitch below found the strip's pulse (ecg00044: 1.12 pitches below;
    ecg00048: rows off one pitch, the strip 0.57 pitches below), and the page was read as
    3x4 without its rhythm strip. A pulse like the rows' 0.4-1.5 pitches below the last
    row, on ink across the page, gives the fourth row."""
    result = digitize_file(shared_data / "ecg_image_kit" / "real_images" / name)[0]
    assert result.layout.name == "3x4+1" and len(result.rows.rows) == 4
    assert len(result.calibration.pulses) == 4
    strip = result.record.lead("II")
    assert np.isfinite(strip).mean() > 0.9          # II over the whole 10 s, from the strip


def test_rows_whose_trace_ends_above_their_line_are_read_to_the_page_end(shared_data):
    """Seed-11 page p0208 (12-row Cabrera at 10 mm/mV, 193 dpi, clean): after their last QRS
    the V leads' traces sit more than 2.5 mm above their rows' projection peaks (ST
    elevation, tall T), so five rows ended 22 mm early, were not read further, and the time
    axis (ending at the rows' median end) began 5 mm early. Each row's last ink is now looked
    for over its half-pitch band: every row reaches the page's end, and so does the axis."""
    from ecglens.analysis.ludb import read_ludb_record
    from ecglens.digitize.pipeline import digitize_image

    record = read_ludb_record(shared_data / "ludb" / "data" / "174")
    page = _benchmark_page(record, 417389047, "clean", layout="12x1-cabrera", gain_mm_mv=10.0,
                           dpi=193.0, grid="orange", font="hershey_complex_small",
                           label_position="baseline", paper="letter")
    result = digitize_image(page.image, source="p0208.png", dpi_prior=193.0, use_ocr=False)
    truth_x1 = page.geometry["rows"][0]["x1_px"]
    ends = [row.x_last_px for row in result.rows.rows]
    assert min(ends) > truth_x1 - 5, ends                       # all 12 rows, to the end
    assert abs(result.time_axis.x1_px - truth_x1) < 3.0         # was 38 px (5 mm) early


def test_a_few_pulses_of_another_gain_do_not_outvote_the_standard() -> None:
    """Phone photo 01924 of the Paper2Pulse family (printed at 10 mm/mV): one row's ink read as
    an exact 20-mm pulse, the true pulse of another row measured 11 mm (10 % tall, outside the
    exact-height vote), and the page was read at 20 mm/mV."""
    pulses = [_pulse(0, 20.0, 19.9), _pulse(3, 10.0, 11.0)]
    cal = decide_calibration(pulses, 4, None)
    assert cal.gain_mm_mv == 10.0
    assert cal.row_gain_mm_mv == (10.0,) * 4
    assert any("too few to depart from the standard" in w for w in cal.warnings)
    # one pulse on one of four rows is too little evidence on its own
    assert decide_calibration([_pulse(2, 20.0, 20.1)], 4, None).gain_mm_mv == 10.0
    # ...unless the settings line says so
    assert decide_calibration([_pulse(2, 20.0, 20.1)], 4,
                              parse_settings_text("25 mm/s 20 mm/mV")).gain_mm_mv == 20.0
    # a page printed at 5 mm/mV with its pulse on every row keeps it
    assert decide_calibration([_pulse(k, 5.0, 5.0) for k in range(4)], 4, None).gain_mm_mv == 5.0


def test_a_wide_pulse_on_one_row_does_not_set_the_paper_speed() -> None:
    # an ECG-Image-Kit page (25 mm/s, footless pulses): two pulses measured with the trace's
    # start as their lead-out, one as printed
    wide = [dataclasses.replace(_pulse(k, 10.0, 10.0), width_mm=10.7, speed_mm_s=50.0)
            for k in (0, 1)]
    cal = decide_calibration([*wide, _pulse(2, 10.0, 10.0)], 4, None)
    assert cal.speed_mm_s == 25.0
    every = [dataclasses.replace(_pulse(k, 10.0, 10.0), width_mm=10.0, speed_mm_s=50.0)
             for k in range(4)]
    assert decide_calibration(every, 4, None).speed_mm_s == 50.0


def test_pulses_whose_gain_is_overruled_do_not_set_the_paper_speed() -> None:
    # a tune-fold ECG-Image-Kit page at 150 bpm without pulses (25 mm/s, 10 mm/mV): QRS
    # complexes 10 mm apart on six of seven rows matched as 50-mm/s pulses of 5, 10 and 20
    # mm/mV; the gain went back to the standard, and the one 10-mm/mV "pulse" set 50 mm/s
    measured = ((5.0, 4.94), (5.0, 5.75), (20.0, 20.53), (10.0, 10.08), (20.0, 20.21),
                (5.0, 4.75))   # (gain, height mm) as read
    qrs = [dataclasses.replace(_pulse(k, g, h), width_mm=9.8, speed_mm_s=50.0)
           for k, (g, h) in enumerate(measured)]
    cal = decide_calibration(qrs, 7, None)
    assert (cal.gain_mm_mv, cal.speed_mm_s) == (10.0, 25.0)
    assert any("read at 25 mm/s" in w for w in cal.warnings)
    # pulses of one gain at 50 mm/s on most rows keep their speed
    wide = [dataclasses.replace(_pulse(k, 10.0, 10.0), width_mm=10.0, speed_mm_s=50.0)
            for k in range(5)]
    assert decide_calibration([*wide, *qrs[:1]], 7, None).speed_mm_s == 50.0


def test_a_folded_photos_square_one_level_lattice_is_a_grid(shared_data) -> None:
    """A phone photo of a folded page (only 5 mm lines printed, rotated ~16 deg): the lines
    across the fold are faint (periodicity 2.65 < 3), but both directions show the same line
    frequency and angle, so it is a grid; without it the page was read without its grid's
    colour and refused."""
    from ecglens.digitize import grid

    path = shared_data / "real_photos" / "paper2pulse" / "images" / "03825_hr.jpg"
    if not path.exists():
        pytest.skip("photo not available")
    image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    found = grid.find_grid(image)
    assert found.found and found.grid_colour == "red"
    assert 5.3 < found.px_per_mm_x < 5.8 and 15.0 < found.rotation_deg < 17.0
