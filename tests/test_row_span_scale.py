"""The scale of a page printed with neither a grid nor a calibration pulse, given without a
dpi: its trace rows' span taken as the standard 250 mm."""

from __future__ import annotations

import numpy as np
import pytest
from signal_match import lead_correlations

from ecglens.digitize.layout_detect import Row, RowsResult, scale_from_row_span

TRUE_PX_PER_MM = 100 / 25.4


def _page(spans_px: list[int], frame: bool = True) -> tuple[np.ndarray, RowsResult]:
    """A gridless page: rows of a wavy trace starting 40 px in, each ``spans_px`` long, a
    lead name under each start and (``frame``) a one-pixel frame round the page."""
    h, w = 640, 1100
    dark = np.zeros((h, w), dtype=np.float32)
    rows = []
    for i, span in enumerate(spans_px):
        centre = 120 + 130 * i
        x = np.arange(40, 40 + span)
        y = centre + np.round(6 * np.sin(x / 9.0)).astype(int)
        dark[y, x] = 1.0
        dark[centre + 12:centre + 20, 42:50] = 1.0   # the lead name under the trace start
        rows.append(Row(index=i, centre_px=float(centre), coverage=0.9, x_first_px=0,
                        x_last_px=w - 1))
    if frame:
        dark[:, 0] = dark[:, w - 1] = dark[0, :] = dark[h - 1, :] = 1.0
    return dark, RowsResult(rows=tuple(rows), pitch_px=130.0)


def test_the_rows_span_is_250_mm_and_the_frame_is_not_trace() -> None:
    span = round(250 * TRUE_PX_PER_MM)
    dark, rows = _page([span] * 4)
    scale = scale_from_row_span(dark, rows)
    assert scale is not None
    assert scale.px_per_mm == pytest.approx(TRUE_PX_PER_MM, rel=0.005)
    assert (scale.n_rows, scale.n_agree) == (4, 4)


def test_rows_that_disagree_on_their_span_give_no_scale() -> None:
    dark, rows = _page([984, 600, 400, 250])
    assert scale_from_row_span(dark, rows) is None


def test_two_rows_are_too_few() -> None:
    dark, rows = _page([984, 984])
    assert scale_from_row_span(dark, rows) is None


def test_gridless_pulseless_ecg_image_kit_page_is_read_at_its_true_scale(shared_data) -> None:
    """An ECG-Image-Kit page of the tune folds printed with neither a grid nor a pulse (100 px
    per inch, a V5 rhythm strip): before, read at the 200-dpi guess, twice its scale (a 5.2-s
    axis, -0.1 dB); now the rows' span gives its scale and every lead follows the truth."""
    from ecglens.digitize.pipeline import ROW_SPAN_SOURCE, digitize_file

    root = shared_data / "ecg_image_kit" / "synthetic"
    page = "eik00037_1"   # strat_fold 1-8, no grid and no pulse in its geometry
    result = digitize_file(root / "images" / f"{page}.jpg", use_ocr=False)[0]
    assert result.grid.source == ROW_SPAN_SOURCE
    assert result.grid.px_per_mm_x == pytest.approx(TRUE_PX_PER_MM, rel=0.01)
    assert result.time_axis.duration_s == pytest.approx(10.0, abs=0.05)
    correlations = lead_correlations(result.record, root / "truth" / page)
    assert len(correlations) >= 10
    assert float(np.median(correlations)) > 0.8
