"""The overlay is drawn for every page that is read (digitize.overlay)."""

from __future__ import annotations

import math

import cv2
import numpy as np


def test_overlay_of_a_page_read_without_a_vertical_scale(shared_data):
    """A page read without a vertical px/mm: its calibration pulse has no drawable height,
    and the overlay used to crash on it (``cannot convert float NaN to integer``) while the
    record itself was written. The gridless ECG-Image-Kit page that showed it (eik00212_0)
    now takes its scale from its rows' span and pulses, so its read is given no vertical
    scale here."""
    import dataclasses

    from ecglens.digitize.pipeline import digitize_image

    path = shared_data / "ecg_image_kit" / "synthetic" / "images" / "eik00212_0.jpg"
    image = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    read = digitize_image(image, source=path.name)
    assert read.calibration.pulses
    result = dataclasses.replace(read, grid=dataclasses.replace(read.grid,
                                                                px_per_mm_y=float("nan")))
    assert not math.isfinite(float(result.grid.px_per_mm_y))
    overlay = result.overlay_image()
    assert overlay.ndim == 3 and overlay.shape[2] == 3
    # the read trace is drawn: the overlay differs from the page somewhere
    page = result.deskew.image
    assert overlay.shape[:2] != page.shape[:2] or not np.array_equal(overlay, page)


def test_overlay_draws_the_trace_the_record_is_built_from(shared_data):
    """The record is built from the sub-column trace (``fine_y_px``), so the overlay draws that
    one: a row whose fine trace is moved 12 px down is drawn there, not at its column trace."""
    import dataclasses

    from ecglens.digitize.overlay import TRACE_RGB
    from ecglens.digitize.pipeline import digitize_image

    path = shared_data / "ecg_image_kit" / "synthetic" / "images" / "eik00101_1.jpg"
    image = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    result = digitize_image(image, source=path.name)
    row = result.traces.rows[0]
    assert row.fine_x_px is not None and row.fine_y_px is not None
    moved = dataclasses.replace(row, fine_y_px=row.fine_y_px + 12.0)
    traces = dataclasses.replace(result.traces, rows=(moved, *result.traces.rows[1:]))
    overlay = dataclasses.replace(result, traces=traces).overlay_image()
    assert overlay.shape[1] == result.deskew.image.shape[1]      # drawn at the page's scale
    blue = (np.abs(overlay.astype(int) - np.array(TRACE_RGB)).sum(axis=2) < 120)
    cols = np.arange(int(row.x_px[50]), int(row.x_px[-50]), 25)
    at_fine = at_column = 0
    for x in cols:
        i = int(np.searchsorted(row.x_px, x))
        if not np.isfinite(row.y_px[i]):
            continue
        y = int(np.round(row.y_px[i]))
        at_column += bool(blue[y - 1:y + 2, x].any())
        at_fine += bool(blue[y + 11:y + 14, x].any())
    assert at_fine > 0.8 * len(cols) and at_column < 0.3 * len(cols)
