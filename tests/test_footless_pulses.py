"""Calibration pulses printed without foot lines, the trace starting beside them at its own
level (ECG-Image-Kit's scan and layout-variant pages)."""

from __future__ import annotations

import numpy as np
import pytest
from signal_match import lead_correlations


@pytest.mark.parametrize("page", ["eik00415_0", "eik00385_1"])
def test_footless_pulses_give_the_pages_gain_and_speed(shared_data, page: str) -> None:
    """Tune-fold scans (strat_fold 1-8) at 10 mm/mV and 25 mm/s: a QRS complex beside a pulse's
    falling side was matched as a footed pulse, and the pages were read at 50 mm/s (and at
    5 mm/mV), below 0 dB; their footless pulses are found."""
    from ecglens.digitize.pipeline import digitize_file

    root = shared_data / "ecg_image_kit" / "synthetic"
    result = digitize_file(root / "images" / f"{page}.jpg", use_ocr=False)[0]
    assert result.calibration.gain_mm_mv == 10.0 and result.calibration.speed_mm_s == 25.0
    pulses = result.calibration.pulses
    assert len(pulses) >= 3
    widths_mm = [(p.x_right_px - p.x_left_px) / result.grid.px_per_mm_x for p in pulses]
    assert max(abs(w - 5.0) for w in widths_mm) < 0.5
    correlations = lead_correlations(result.record, root / "truth" / page)
    assert len(correlations) >= 10
    assert float(np.median(correlations)) > 0.8
