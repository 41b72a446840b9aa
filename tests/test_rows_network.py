"""Trace rows found in the ink the segmentation network calls trace, where the colour ink
gives a number of rows no template has (``digitize.seg_ink.trace_only_ink`` /
``rows_from_env``, issue 22)."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from ecglens.digitize.seg_ink import PROB_LEVEL, rows_from_env, trace_only_ink

DARK_GRID_PAGE = "eik00436_0"
"""An ECG-Image-Kit layout page of the tune folds (strat_fold 3): 6x2+1 with a lead I strip on
a dark blue grid, whose colour ink level (set above the grid) leaves the thin trace in pieces."""


def test_trace_only_ink_keeps_the_networks_trace_and_nothing_else() -> None:
    darkness = np.zeros((20, 30), dtype=np.float32)
    prob = np.zeros_like(darkness)
    darkness[5, :] = 0.9          # a lead name or a grid line as dark as the trace
    darkness[10, :] = 0.1         # a trace the colour level put under the grid level
    prob[10, :] = 0.9
    prob[15, :] = 0.9             # the network's band on paper: not ink, but trace
    out = trace_only_ink(darkness, prob, 0.35)
    assert out[5].max() == 0.0
    assert np.allclose(out[10], 0.35)
    assert np.allclose(out[15], 0.35)
    assert out.dtype == np.float32
    assert trace_only_ink(darkness, np.full_like(darkness, PROB_LEVEL), 0.35).max() == 0.0
    with pytest.raises(ValueError):
        trace_only_ink(darkness, prob[:-1], 0.35)


@pytest.mark.parametrize(("text", "mode"), [("", "fallback"), ("fallback", "fallback"),
                                            ("0", "colour"), ("1", "network")])
def test_rows_switch(text: str, mode: str) -> None:
    assert rows_from_env(text) == mode


def test_rows_switch_rejects_other_words() -> None:
    with pytest.raises(ValueError):
        rows_from_env("gate")


def _truth_baselines(root, page: str) -> list[float]:
    """0 mV rows (stored-image px) of the page's first column of leads and its strip."""
    with gzip.open(root / "geometry" / f"{page}.json.gz") as handle:
        geometry = json.loads(handle.read())
    rows = {round(lead["row_coef"][0], 1) for lead in geometry["eikdev"]["leads"]
            if lead["trace_box_rc"][1] < 100}
    return sorted(rows)


def test_dark_grid_rows_are_found_in_the_networks_trace_ink(shared_data) -> None:
    import cv2

    from ecglens.digitize.layout_detect import find_rows
    from ecglens.digitize.pipeline import TEMPLATE_ROWS, page_ink
    from ecglens.digitize.segment import trace_probability
    from ecglens.digitize.trace import RUN_LEVEL

    root = shared_data / "ecg_image_kit" / "synthetic"
    image = cv2.cvtColor(cv2.imread(str(root / "images" / f"{DARK_GRID_PAGE}.jpg")),
                         cv2.COLOR_BGR2RGB)
    geometry = page_ink(image, None)
    colour = find_rows(geometry.darkness, geometry.px_per_mm_y)
    assert len(colour.rows) not in TEMPLATE_ROWS          # measured: none
    prob = trace_probability(geometry.deskew.image,
                             0.5 * (geometry.px_per_mm_x + geometry.px_per_mm_y))
    network = find_rows(trace_only_ink(geometry.darkness, prob, RUN_LEVEL),
                        geometry.px_per_mm_y)
    truth = _truth_baselines(root, DARK_GRID_PAGE)
    assert len(truth) == 7
    found = [row.centre_px for row in network.rows]
    assert len(found) == 7
    # measured: within 4 px (1 mm) of every printed 0 mV line
    assert np.max(np.abs(np.array(found) - np.array(truth))) < 2 * geometry.px_per_mm_y


def test_dark_grid_page_is_read_on_the_networks_rows(shared_data, monkeypatch) -> None:
    from ecglens.core.errors import DigitizeError
    from ecglens.digitize.pipeline import digitize_file

    path = shared_data / "ecg_image_kit" / "synthetic" / "images" / f"{DARK_GRID_PAGE}.jpg"
    monkeypatch.setenv("ECGLENS_ROWS_NETWORK", "0")
    with pytest.raises(DigitizeError):
        digitize_file(path, use_ocr=False)
    monkeypatch.setenv("ECGLENS_ROWS_NETWORK", "fallback")
    result = digitize_file(path, use_ocr=False)[0]
    assert len(result.rows.rows) == 7
    assert result.layout.name == "6x2+1"
    assert any("segmentation network calls trace" in w for w in result.warnings)


BROKEN_TRACE_PAGE = "eik00284_1"
"""A tune-fold (strat_fold 1-8) ECG-Image-Kit 3x4+1 page, dark blue grid, 100 px per inch, no
lead names: in the network's trace ink its thin traces lose single columns every few mm."""


def test_single_column_gaps_do_not_break_a_row_in_the_networks_ink(shared_data) -> None:
    import cv2

    from ecglens.digitize.layout_detect import find_rows
    from ecglens.digitize.pipeline import page_ink
    from ecglens.digitize.segment import trace_probability
    from ecglens.digitize.trace import RUN_LEVEL

    root = shared_data / "ecg_image_kit" / "synthetic"
    image = cv2.cvtColor(cv2.imread(str(root / "images" / f"{BROKEN_TRACE_PAGE}.jpg")),
                         cv2.COLOR_BGR2RGB)
    geometry = page_ink(image, None)
    prob = trace_probability(geometry.deskew.image,
                             0.5 * (geometry.px_per_mm_x + geometry.px_per_mm_y))
    ink = trace_only_ink(geometry.darkness, prob, RUN_LEVEL)
    with gzip.open(root / "geometry" / f"{BROKEN_TRACE_PAGE}.json.gz") as handle:
        leads = json.loads(handle.read())["eikdev"]["leads"]
    truth = sorted({round(lead["row_coef"][0], 1) for lead in leads})   # printed 0 mV rows
    assert len(truth) == 4
    # measured: the two lower rows' longest stretches 19.6 and 18.3 mm, under the 20 mm
    assert len(find_rows(ink, geometry.px_per_mm_y).rows) == 2
    bridged = find_rows(ink, geometry.px_per_mm_y, bridge_single_gaps=True)
    found = np.array([row.centre_px for row in bridged.rows])
    assert len(found) == 4
    assert np.max(np.abs(found - np.array(truth))) < 2 * geometry.px_per_mm_y
