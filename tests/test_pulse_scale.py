"""The scale of a page printed without a grid, from its calibration pulses and the rows' span."""

from __future__ import annotations

import numpy as np
import pytest
from signal_match import lead_correlations

from ecglens.digitize.calibration import Pulse, scale_from_pulses

FALLBACK_PX_PER_MM = 200.0 / 25.4


def _pulse(row: int, height_px: float, width_px: float, ppmm: float = FALLBACK_PX_PER_MM
           ) -> Pulse:
    """A pulse measured at the fallback scale ``ppmm`` (as the pipeline measures it)."""
    height_mm, width_mm = height_px / ppmm, width_px / ppmm
    return Pulse(row=row, x_left_px=100.0, x_right_px=100.0 + width_px, baseline_px=200.0 * row,
                 height_mm=height_mm, width_mm=width_mm, gain_mm_mv=5.0, speed_mm_s=None,
                 score=0.9)


def test_standard_pulses_at_100_dpi_give_its_scale_and_gain() -> None:
    # a 100-dpi page read at the 200-dpi fallback: 39.4 px tall, 19.7 px wide pulses
    true_ppmm = 100 / 25.4
    pulses = [_pulse(r, 10 * true_ppmm + d, 5 * true_ppmm) for r, d in enumerate((0.0, 1.0, -0.5))]
    scale = scale_from_pulses(pulses, FALLBACK_PX_PER_MM, FALLBACK_PX_PER_MM)
    assert scale is not None
    assert scale.px_per_mm == pytest.approx(true_ppmm, rel=0.03)
    assert scale.speed_mm_s == 25.0 and scale.n_agree == 3
    assert [p.gain_mm_mv for p in scale.pulses] == [10.0, 10.0, 10.0]
    assert [p.speed_mm_s for p in scale.pulses] == [25.0, 25.0, 25.0]


def test_a_square_pulse_says_50_mm_s() -> None:
    pulses = [_pulse(r, 40.0, 40.0) for r in range(3)]
    scale = scale_from_pulses(pulses, FALLBACK_PX_PER_MM, FALLBACK_PX_PER_MM)
    assert scale is not None and scale.speed_mm_s == 50.0
    assert scale.px_per_mm == pytest.approx(4.0)


@pytest.mark.parametrize("pulses", [
    [_pulse(0, 40.0, 20.0)],                          # one stroke: could be a letter
    [_pulse(0, 40.0, 20.0), _pulse(1, 60.0, 30.0)],   # two heights: no common scale
    [_pulse(0, 40.0, 30.0), _pulse(1, 40.0, 30.0)],   # 0.75 wide: no standard pulse
])
def test_no_scale_from_too_few_disagreeing_or_odd_pulses(pulses: list[Pulse]) -> None:
    assert scale_from_pulses(pulses, FALLBACK_PX_PER_MM, FALLBACK_PX_PER_MM) is None


def test_gridless_ecg_image_kit_page_is_read_at_its_true_scale(shared_data) -> None:
    """An ECG-Image-Kit page of the tune folds printed without a grid (100 px per inch): before,
    read at the 200-dpi fallback (gain 5 mm/mV, time axis off, -0.3 dB); now the pulses and the
    rows' span give its scale, gain and time."""
    from ecglens.digitize.pipeline import digitize_file

    root = shared_data / "ecg_image_kit" / "synthetic"
    page = "eik00249_1"   # strat_fold 1-8, grid "none" in pages.csv
    result = digitize_file(root / "images" / f"{page}.jpg", use_ocr=False)[0]
    assert result.grid.source == "pulses+axis"
    assert result.grid.px_per_mm_x == pytest.approx(100 / 25.4, rel=0.01)
    assert result.calibration.gain_mm_mv == 10.0 and result.calibration.speed_mm_s == 25.0
    correlations = lead_correlations(result.record, root / "truth" / page)
    assert len(correlations) >= 10
    assert float(np.median(correlations)) > 0.8
