"""The time axis fitted to printed lead separators (digitize.separators)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from signal_match import read_eik_page

from ecglens.digitize.separators import fit_separators, separator_profile

PX_PER_MM = 8.0
PITCH_PX = 25 * PX_PER_MM


def _page(separator_x: list[float], qrs_x: list[float], n_rows: int = 4,
          strip_row: int | None = 3) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Darkness of rows of flat trace with separators (a bar 4 mm tall through the 0 mV line,
    on cell rows only) and QRS spikes (10 mm up, on every row) at the given columns; the
    trace mask covers the flat trace and the spikes, as a read trace would."""
    w = int(300 * PX_PER_MM)
    h = int((n_rows + 1) * PITCH_PX)
    dark = np.zeros((h, w))
    mask = np.zeros((h, w), dtype=bool)
    baselines = [float((i + 1) * PITCH_PX) for i in range(n_rows)]
    for i, base in enumerate(baselines):
        b = int(base)
        dark[b - 1:b + 1, :] = 1.0
        mask[b - 3:b + 3, :] = True
        for x in qrs_x:
            top = int(b - 10 * PX_PER_MM)
            dark[top:b, int(x):int(x) + 2] = 1.0
            mask[top - 3:b, int(x) - 3:int(x) + 5] = True
        if i != strip_row:
            for x in separator_x:
                dark[int(b - 2 * PX_PER_MM):int(b + 2 * PX_PER_MM), int(x):int(x) + 2] = 1.0
    return dark, mask, baselines


def test_axis_start_and_pitch_follow_the_separators() -> None:
    # printed axis from 20 mm to 270 mm; the axis read from the ends starts 9 mm late and is
    # 3 % short
    true_x0, true_len = 20 * PX_PER_MM, 250 * PX_PER_MM
    seps = [true_x0 + f * true_len for f in (0.25, 0.5, 0.75)]
    dark, mask, baselines = _page(seps, qrs_x=[400.0, 1000.0])
    profile = separator_profile(dark, mask, baselines, PITCH_PX, PX_PER_MM)
    read_x0 = true_x0 + 9 * PX_PER_MM
    fit = fit_separators(profile, read_x0, read_x0 + 0.97 * true_len, PX_PER_MM,
                         strip_rows=(3,))
    assert fit is not None and fit.accepted
    assert fit.confirmed == 3 and fit.seen == 9
    assert abs(fit.x0_px - true_x0) <= 2.0
    assert abs(fit.x1_px - (true_x0 + true_len)) <= 2.0


def test_qrs_columns_shared_with_the_strip_are_not_separators() -> None:
    # no separators printed; QRS spikes line up over every row, the strip included, at the
    # spacing of a 2.5-s column: the axis is kept
    x0, length = 20 * PX_PER_MM, 250 * PX_PER_MM
    qrs = [x0 + 5 * PX_PER_MM + f * length for f in (0.25, 0.5, 0.75)]
    dark, _mask, baselines = _page([], qrs_x=qrs)
    # the read trace misses the spikes, so they are off-path thin ink
    mask = np.zeros_like(dark, dtype=bool)
    for base in baselines:
        mask[int(base) - 3:int(base) + 3, :] = True
    profile = separator_profile(dark, mask, baselines, PITCH_PX, PX_PER_MM)
    fit = fit_separators(profile, x0, x0 + length, PX_PER_MM, strip_rows=(3,))
    assert fit is not None and not fit.accepted


def test_a_fit_moving_no_lead_change_by_1_mm_keeps_the_axis() -> None:
    # the read axis 0.5 mm late: the separators confirm all three boundaries half a
    # millimetre earlier, within what the axis from the ends is right to; it is kept. The
    # same axis 3 mm late is moved onto them.
    true_x0, length = 20 * PX_PER_MM, 250 * PX_PER_MM
    dark, mask, baselines = _page([true_x0 + f * length for f in (0.25, 0.5, 0.75)], qrs_x=[])
    profile = separator_profile(dark, mask, baselines, PITCH_PX, PX_PER_MM)
    for late_mm, accepted in ((0.5, False), (3.0, True)):
        read_x0 = true_x0 + late_mm * PX_PER_MM
        fit = fit_separators(profile, read_x0, read_x0 + length, PX_PER_MM, strip_rows=(3,))
        assert fit is not None and fit.confirmed == 3 and fit.accepted is accepted
        assert abs(fit.x0_px - true_x0) <= 1.0


def test_one_boundary_does_not_move_the_axis() -> None:
    # a 6x2+1-like page: a separator at 5 s only on the six cell rows; one boundary could be
    # a grid line or a QRS column as well: the axis read from the ends is kept
    true_x0, length = 20 * PX_PER_MM, 250 * PX_PER_MM
    dark, mask, baselines = _page([true_x0 + 0.5 * length], qrs_x=[], n_rows=7, strip_row=6)
    profile = separator_profile(dark, mask, baselines, PITCH_PX, PX_PER_MM)
    read_x0 = true_x0 - 6 * PX_PER_MM
    fit = fit_separators(profile, read_x0, read_x0 + length, PX_PER_MM, strip_rows=(6,))
    assert fit is not None and fit.confirmed == 1 and not fit.accepted


def test_grid_lines_are_not_separators() -> None:
    # thin ink every 5 mm along the cell rows (a grid's lines left in the darkness), none on
    # the strip: no boundary is confirmed
    x0, length = 20 * PX_PER_MM, 250 * PX_PER_MM
    lines = list(np.arange(x0 + 2 * PX_PER_MM, x0 + length, 5 * PX_PER_MM))
    dark, mask, baselines = _page(lines, qrs_x=[])
    profile = separator_profile(dark, mask, baselines, PITCH_PX, PX_PER_MM)
    fit = fit_separators(profile, x0 + 4 * PX_PER_MM, x0 + length, PX_PER_MM, strip_rows=(3,))
    assert fit is not None and fit.confirmed == 0 and not fit.accepted


def test_without_a_strip_every_boundary_must_be_confirmed() -> None:
    # three rows, no strip: separators at two of the three boundaries do not move the axis,
    # all three do
    true_x0, length = 20 * PX_PER_MM, 250 * PX_PER_MM
    read_x0 = true_x0 + 8 * PX_PER_MM
    for fractions, accepted in (((0.25, 0.5), False), ((0.25, 0.5, 0.75), True)):
        dark, mask, baselines = _page([true_x0 + f * length for f in fractions], qrs_x=[],
                                      n_rows=3, strip_row=None)
        profile = separator_profile(dark, mask, baselines, PITCH_PX, PX_PER_MM)
        fit = fit_separators(profile, read_x0, read_x0 + length, PX_PER_MM)
        assert fit is not None and fit.accepted is accepted


def _boundaries_px(axis: object) -> np.ndarray:
    x0, x1 = axis.x0_px, axis.x1_px   # type: ignore[attr-defined]
    return x0 + np.array([0.25, 0.5, 0.75]) * (x1 - x0)


def test_a_scan_read_late_from_its_ends_gets_its_cells_on_the_printed_ticks(
        shared_data: Path) -> None:
    # a real 3x4+1 scan (14 px/mm) with calibration pulses printed after the rows: the axis
    # counted back from the rows' right end put every cell 120 px (0.34 s) late. Its lead
    # changes are ticks 7 px wide centred at 956, 1832 and 2708 px (measured by eye on the
    # scan, which needs no rectification)
    import cv2

    from ecglens.digitize.pipeline import digitize_image

    path = shared_data / "ecg_image_kit" / "real_images" / "ecg00012.jpg"
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    result = digitize_image(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), source=path.name)
    assert result.separators is not None and result.separators.accepted
    assert "lead separators" in result.time_axis.source
    assert np.all(np.abs(_boundaries_px(result.time_axis) - [956, 1832, 2708]) <= 5)
    assert (result.time_axis.duration_s, result.time_axis.n_samples) == (10.0, 5000)


def test_an_eik_page_keeps_the_axis_its_grid_lines_would_move(shared_data: Path) -> None:
    # an ECG-Image-Kit wrinkled page whose red grid leaves thin ink every 10 mm: the axis
    # read from the ends is within 0.2 mm of the truth's lead changes and stays there
    import gzip
    import json

    stem = "eik00058_0"
    result = read_eik_page(shared_data, stem)
    synthetic = shared_data / "ecg_image_kit" / "synthetic"
    with gzip.open(synthetic / "geometry" / f"{stem}.json.gz", "rt") as fh:
        geometry = json.load(fh)
    with open(synthetic / "pages.csv", newline="") as fh:
        page = next(r for r in csv.DictReader(fh) if r["page"] == stem)
    scale, pad_px = float(page["scale_factor"]), float(page["pad_inches"]) * 100.0
    # each later column's first sample, leftmost over the rows (generator px: [y, x] corners)
    column_x: dict[int, float] = {}
    for lead in geometry["leads"]:
        if lead["start_sample"] > 0 and lead["end_sample"] - lead["start_sample"] < 2600:
            x = min(corner[1] for corner in lead["lead_bounding_box"].values())
            column_x[lead["start_sample"]] = min(x, column_x.get(lead["start_sample"], x))
    truth_px = np.array([column_x[k] * scale + pad_px for k in sorted(column_x)])
    assert len(truth_px) == 3
    assert not (result.separators is not None and result.separators.accepted)
    error_mm = (_boundaries_px(result.time_axis) - truth_px) / result.grid.px_per_mm_x
    assert np.all(np.abs(error_mm) <= 0.5)
