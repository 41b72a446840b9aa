"""The overlay is drawn for every page that is read (digitize.overlay)."""

from __future__ import annotations

import math

import cv2
import numpy as np


def test_overlay_of_a_page_read_without_a_vertical_scale(shared_data):
    """An ECG-Image-Kit page whose grid gives no vertical px/mm (it is read on the assumed
    scale): its calibration pulse has no drawable height, and the overlay used to crash on
    it (``cannot convert float NaN to integer``) while the record itself was written."""
    from ecglens.digitize.pipeline import digitize_image

    path = shared_data / "ecg_image_kit" / "synthetic" / "images" / "eik00212_0.jpg"
    image = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    result = digitize_image(image, source=path.name)
    assert not math.isfinite(float(result.grid.px_per_mm_y)) or any(
        not math.isfinite(p.baseline_px) for p in result.calibration.pulses)
    overlay = result.overlay_image()
    assert overlay.ndim == 3 and overlay.shape[2] == 3
    # the read trace is drawn: the overlay differs from the page somewhere
    page = result.deskew.image
    assert overlay.shape[:2] != page.shape[:2] or not np.array_equal(overlay, page)
