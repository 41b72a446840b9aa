"""Ink is measured above the paper where the network calls it trace (issue 22, step 3): on a
dark grid the page's grid level is above a thin stroke's darkness, which was then paper to the
trace stage's runs and path (``digitize.seg_ink.inked_pixels``)."""

from __future__ import annotations

import numpy as np
import pytest

from ecglens.digitize.seg_ink import PAPER_INK_LEVEL, inked_pixels, path_ink, raise_faint_trace
from ecglens.digitize.trace import RUN_LEVEL


def _dark_grid_page() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paper at 235 with dark grey grid lines (110) every 4 px, a stroke at 150 (lighter than
    the grid lines) down column 60, and the page-level darkness that maps the grid level to 0
    (the stroke is 0 there too); a probability map marking the stroke only."""
    image = np.full((120, 160, 3), 235, np.uint8)
    image[::4, :] = 110
    image[:, ::4] = 110
    image[20:100, 61] = 150
    darkness = np.zeros((120, 160), np.float32)       # everything at or below the grid level
    prob = np.zeros_like(darkness)
    prob[20:100, 60:63] = 0.9
    return image, darkness, prob


def test_a_stroke_lighter_than_the_grid_holds_ink() -> None:
    image, darkness, prob = _dark_grid_page()
    inked = inked_pixels(image, darkness)
    assert inked[50, 61]                       # the stroke: darker than paper
    assert not inked[50, 62]                   # paper beside it (in the network's band)
    assert inked[48, 10]                       # a grid line holds ink too ...
    raised = raise_faint_trace(darkness, prob, RUN_LEVEL, inked=inked)
    assert raised[50, 61] == pytest.approx(RUN_LEVEL)
    assert raised[50, 62] == 0.0               # paper is never raised
    assert raised[48, 10] == 0.0               # ... but the network does not call it trace
    path = path_ink(darkness, prob, inked=inked)
    assert path[50, 61] == pytest.approx(0.9) and path[50, 62] == 0.0
    # without the paper-relative test (the darkness alone) the stroke is paper
    assert raise_faint_trace(darkness, prob, RUN_LEVEL)[50, 61] == 0.0
    # a pixel only slightly darker than the paper does not hold ink
    faint = image.copy()
    faint[20:100, 61] = round(235 * (1.0 - 0.5 * PAPER_INK_LEVEL))
    assert not inked_pixels(faint, darkness)[50, 61]
    with pytest.raises(ValueError):
        inked_pixels(image[:-1], darkness)


def test_specks_of_faint_ink_count_only_at_a_scale_where_strokes_break_into_them() -> None:
    """Beside a well-inked line at 10 px/mm, a 2-px speck only darker than the paper is no
    stroke; at 4 px/mm (ECG-Image-Kit pages at 100 dpi) a thin stroke breaks into such specks
    and every one counts. A long faint stroke counts at both scales."""
    image = np.full((80, 120, 3), 235, np.uint8)
    image[40, 10:110] = 20                      # the trace's baseline, well inked
    image[30, 50:52] = 150                      # a 2-px speck in the band above it
    image[10:30, 90] = 150                      # a faint 20-px stroke
    darkness = np.zeros((80, 120), np.float32)
    darkness[40, 10:110] = 1.0
    fine = inked_pixels(image, darkness, px_per_mm=10.0)
    assert not fine[30, 50] and fine[20, 90] and fine[40, 60]
    coarse = inked_pixels(image, darkness, px_per_mm=4.0)
    assert coarse[30, 50] and coarse[20, 90]
    assert (inked_pixels(image, darkness) == coarse).all()


def test_thin_spikes_on_a_dark_grid_scan_are_read_to_their_tips(shared_data) -> None:
    """An ECG-Image-Kit tune scan (strat_fold 1-8) with a dark grey-teal grid: its thin R and
    S spikes were cut to under half their height (the precordial leads at 3-6 dB)."""
    from scipy.signal import find_peaks
    from signal_match import read_eik_page

    from ecglens.core.io import read_record
    from ecglens.score.metrics import align

    page = "eik00463_0"
    result = read_eik_page(shared_data, page)
    truth = read_record(shared_data / "ecg_image_kit" / "synthetic" / "truth" / f"{page}.hea")
    ratios = []
    for lead in ("V1", "V2", "V3", "V4"):
        reference = truth.signal[:, truth.leads.index(lead)]
        read, _, _ = align(reference, result.record.lead(lead)[:len(reference)], truth.fs)
        median = float(np.nanmedian(reference))
        for sign in (1, -1):
            deflection = np.nan_to_num(sign * (reference - median), nan=-9.0)
            peaks, _ = find_peaks(deflection, height=0.8, distance=100)
            for p in peaks:
                near = sign * (read[max(p - 10, 0):p + 11] - median)
                if np.isfinite(near).any():
                    ratios.append(float(np.nanmax(near) / deflection[p]))
    assert len(ratios) >= 8
    assert float(np.median(ratios)) > 0.85
