"""Renderer ground truth: geometry measured on the clean image, calibration pulse, NaN truth."""

from __future__ import annotations

import numpy as np
import pytest

from ecglens.core.errors import EcglensError
from ecglens.core.io import read_record
from ecglens.core.layouts import LAYOUT_NAMES, LayoutError
from ecglens.core.record import STANDARD_LEADS
from ecglens.synth.render import RenderError, RenderSettings, render_page


@pytest.fixture(scope="module")
def ludb1(shared_data):
    return read_record(shared_data / "ludb" / "data" / "1")


@pytest.fixture(scope="module")
def page300(ludb1):
    return render_page(ludb1, RenderSettings(dpi=300.0, grid="red"))


def _line_centres(profile: np.ndarray, expected: np.ndarray, reach: int = 4) -> np.ndarray:
    """Sub-pixel centroid of the peak of ``profile`` near each expected position."""
    out = []
    for c in expected:
        lo, hi = round(c) - reach, round(c) + reach + 1
        window = profile[lo:hi] - np.min(profile[lo - reach:hi + reach])
        window = np.clip(window - 0.3 * window.max(), 0, None)
        out.append(float(np.sum(np.arange(lo, hi) * window) / np.sum(window)))
    return np.array(out)


@pytest.mark.parametrize("extent", ["area", "page"])
def test_grid_period_matches_px_per_mm(page300, ludb1, extent):
    """Major grid lines measured on the image sit where the geometry puts them (< 0.5 px)."""
    page = page300 if extent == "area" else render_page(
        ludb1, RenderSettings(dpi=300.0, grid="red", grid_extent="page"))
    geo = page.geometry
    image = page.image.astype(np.float64)
    s_x, s_y = geo["px_per_mm_x"], geo["px_per_mm_y"]
    assert s_x == pytest.approx(300 / 25.4) and s_y == pytest.approx(300 / 25.4)
    ox, oy = geo["grid_origin_px"]
    if extent == "page":
        # pre-printed paper: the same lattice runs through the header band above the rows
        np.testing.assert_allclose(geo["grid_box"], [0.0, 0.0, *geo["image_size"]], atol=0.5)
        x_lo, x_hi = 10.0, geo["image_size"][0] - 10.0
        y_lo, y_hi = 10.0, oy - 3.0
    else:
        x_lo, y_lo, x_hi, y_hi = geo["grid_box"]
        assert [x_lo, y_lo] == [ox, oy]
    # redness = how much green is missing relative to red; ink is dark in both, so it drops out
    redness = image[..., 0] - image[..., 1]
    col_profile = np.median(redness[int(y_lo) + 5:int(y_hi) - 5, :], axis=0)
    row_profile = np.median(redness[:, int(x_lo) + 5:int(x_hi) - 5], axis=1)
    k = np.arange(-60, 61)
    expected_x = ox + k * 5 * s_x
    expected_x = expected_x[(expected_x > x_lo + 4) & (expected_x < x_hi - 4)]
    expected_y = oy + k * 5 * s_y
    expected_y = expected_y[(expected_y > y_lo + 4) & (expected_y < y_hi - 4)]
    assert len(expected_x) > 40 and len(expected_y) >= 4
    measured_x = _line_centres(col_profile, expected_x)
    measured_y = _line_centres(row_profile, expected_y)
    assert np.max(np.abs(measured_x - expected_x)) < 0.5
    assert np.max(np.abs(measured_y - expected_y)) < 0.5
    # the period fitted from the image alone gives px/mm within 0.1 %
    period_x = np.polyfit(np.arange(len(measured_x)), measured_x, 1)[0] / 5
    period_y = np.polyfit(np.arange(len(measured_y)), measured_y, 1)[0] / 5
    assert period_x == pytest.approx(s_x, rel=1e-3)
    assert period_y == pytest.approx(s_y, rel=1e-3)


def _ink_centroid_y(image: np.ndarray, x0: float, x1: float, y_guess: float,
                    reach: int = 12) -> float:
    """Mean y of the ink (dark, not grid red) in columns x0..x1 near ``y_guess``."""
    darkness = 255.0 - image[..., 0].astype(np.float64)  # red grid stays bright in R
    cols = slice(int(np.ceil(x0)), int(np.floor(x1)))
    lo, hi = int(y_guess) - reach, int(y_guess) + reach + 1
    window = np.clip(darkness[lo:hi, cols] - 60.0, 0, None)
    ys = np.arange(lo, hi)[:, None]
    return float(np.sum(ys * window) / np.sum(window))


@pytest.mark.parametrize("gain", [5.0, 10.0, 20.0])
def test_pulse_height_and_baseline(ludb1, gain):
    """Each row's 0 mV line is the flat pre-pulse ink; the pulse is exactly ``gain`` mm tall."""
    page = render_page(ludb1, RenderSettings(dpi=300.0, gain_mm_mv=gain, layout="3x4+1"))
    geo = page.geometry
    s = geo["px_per_mm_y"]
    assert len(geo["pulses"]) == len(geo["rows"]) == 4
    for row, pulse in zip(geo["rows"], geo["pulses"], strict=True):
        px0, top, px1, bottom = pulse["box"]
        half = geo["trace_width_px"] / 2
        # flat lead-in before the pulse (left of the rising edge) = 0 mV
        lead_in_y = _ink_centroid_y(page.image, geo["grid_box"][0] + 0.7 * s, px0 - 2,
                                    bottom - half)
        assert abs(lead_in_y - row["baseline_px"]) < 0.5
        # flat part after the pulse, before the trace starts, also 0 mV
        after_y = _ink_centroid_y(page.image, px1 + 2, row["x0_px"] - 2, bottom - half)
        assert abs(after_y - row["baseline_px"]) < 0.5
        # top of the pulse: measured height = gain mm within 0.5 px
        top_y = _ink_centroid_y(page.image, px0 + 4, px1 - 4, top + half)
        height_mm = (lead_in_y - top_y) / s
        assert abs((lead_in_y - top_y) - gain * s) < 0.5, height_mm


def test_truth_is_nan_exactly_where_not_printed(ludb1):
    page = render_page(ludb1, RenderSettings(layout="3x4", dpi=100.0))
    truth = page.truth
    assert truth.fs == 500.0 and truth.leads == STANDARD_LEADS
    assert truth.n_samples == 5000  # 10 s at 25 mm/s
    finite = np.isfinite(truth.signal)
    quarter = {"I": 0, "II": 0, "III": 0, "aVR": 1, "aVL": 1, "aVF": 1,
               "V1": 2, "V2": 2, "V3": 2, "V4": 3, "V5": 3, "V6": 3}
    for k, lead in enumerate(STANDARD_LEADS):
        q = quarter[lead]
        expected = np.zeros(5000, dtype=bool)
        expected[q * 1250:(q + 1) * 1250] = True
        assert np.array_equal(finite[:, k], expected), lead
        # printed values are the source values (LUDB is 500 Hz)
        np.testing.assert_allclose(truth.signal[expected, k], ludb1.lead(lead)[expected])
    # a rhythm strip makes its lead finite over the whole page
    rhythm = render_page(ludb1, RenderSettings(layout="3x4+1", dpi=100.0)).truth
    assert np.isfinite(rhythm.lead("II")).all()
    assert np.isfinite(rhythm.lead("I")).sum() == 1250


def test_speed_50_prints_5_seconds(ludb1):
    page = render_page(ludb1, RenderSettings(layout="12x1", speed_mm_s=50.0, dpi=100.0))
    assert page.geometry["duration_s"] == 5.0
    assert page.truth.n_samples == 2500
    assert np.isfinite(page.truth.signal).all()
    row = page.geometry["rows"][0]
    assert (row["x1_px"] - row["x0_px"]) / page.geometry["px_per_mm_x"] == pytest.approx(250.0)


def test_cabrera_prints_inverted_avr_and_stores_avr(ludb1):
    page = render_page(ludb1, RenderSettings(layout="12x1-cabrera", dpi=200.0, gain_mm_mv=5.0))
    geo = page.geometry
    cell = next(c for c in geo["leads"] if c["lead"] == "-aVR")
    assert cell["stored_lead"] == "aVR"
    np.testing.assert_allclose(page.truth.lead("aVR"), ludb1.lead("aVR"))
    row = geo["rows"][cell["row"]]
    avr = page.truth.lead("aVR")
    i = int(np.argmin(avr))  # deepest aVR deflection prints upward in -aVR
    s = geo["px_per_mm_x"]
    x = row["x0_px"] + i / 500.0 * 25.0 * s
    y_expected = row["baseline_px"] + avr[i] * 5.0 * s  # above the baseline (avr < 0)
    assert y_expected < row["baseline_px"]
    column = 255 - page.image[:, round(x), 0].astype(int)
    ink_rows = np.flatnonzero(column > 150)
    near = ink_rows[np.abs(ink_rows - row["baseline_px"]) < 12 * s]
    assert abs(near.min() - y_expected) < 2.0


@pytest.mark.parametrize("layout", LAYOUT_NAMES)
def test_every_layout_renders_with_consistent_geometry(ludb1, layout):
    page = render_page(ludb1, RenderSettings(layout=layout, dpi=72.0, grid="bw", font="sans"))
    geo = page.geometry
    h, w = page.image.shape[:2]
    assert geo["image_size"] == [w, h] and page.image.dtype == np.uint8
    assert len(geo["labels"]) == len(geo["leads"])
    assert geo["page_to_image"] == np.eye(3).tolist()
    printed = {c["stored_lead"] for c in geo["leads"]}
    assert printed == set(STANDARD_LEADS)
    for cell in geo["leads"]:
        k = STANDARD_LEADS.index(cell["stored_lead"])
        i0, i1 = round(cell["t_start_s"] * 500), round(cell["t_end_s"] * 500)
        assert np.isfinite(page.truth.signal[i0:i1, k]).all()


def test_unknown_layout_lists_valid_names(ludb1):
    with pytest.raises(LayoutError) as info:
        render_page(ludb1, RenderSettings(layout="4x3"))
    for name in LAYOUT_NAMES:
        assert name in str(info.value)
    assert isinstance(info.value, EcglensError)


@pytest.mark.parametrize("change", [{"dpi": 50.0}, {"grid": "purple"}, {"font": "comic"},
                                    {"label_position": "middle"}])
def test_bad_settings_raise(ludb1, change):
    with pytest.raises(RenderError):
        render_page(ludb1, RenderSettings(**change))


def test_missing_leads_print_empty_cells(shared_data):
    rec = read_record(shared_data / "ludb" / "data" / "2").select(["II", "V1"])
    page = render_page(rec, RenderSettings(layout="6x2", dpi=72.0))
    finite = np.isfinite(page.truth.signal).any(axis=0)
    assert [lead for lead, f in zip(STANDARD_LEADS, finite, strict=True) if f] == ["II", "V1"]


def test_gaps_and_short_records_are_not_printed(ludb1):
    """A NaN gap or the end of a short record leaves blank paper and NaN truth."""
    signal = ludb1.signal[:2000].copy()  # 4 s of a 10-s page
    k = ludb1.leads.index("II")
    signal[500:750, k] = np.nan  # 1.0-1.5 s missing in lead II
    record = ludb1.replace(signal=signal)
    page = render_page(record, RenderSettings(layout="3x4+1", dpi=200.0, grid="none",
                                              header=False, settings_line=False))
    rhythm = page.truth.lead("II")
    assert np.isnan(rhythm[500:750]).all() and np.isnan(rhythm[2000:]).all()
    assert np.isfinite(rhythm[:500]).all() and np.isfinite(rhythm[750:2000]).all()
    geo = page.geometry
    row = geo["rows"][3]
    s = geo["px_per_mm_x"]
    ink = page.image.min(axis=2) < 128
    band = slice(int(row["baseline_px"] - 3 * s), int(row["baseline_px"] + 3 * s))
    for t_s, printed in ((0.5, True), (1.25, False), (3.0, True), (6.0, False)):
        x = round(row["x0_px"] + t_s * 25.0 * s)
        assert ink[band, x - 1:x + 2].any() == printed, t_s
