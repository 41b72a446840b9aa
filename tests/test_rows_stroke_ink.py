"""Rows looked for in the network's trace ink count the colour ink's pixels in their
unbroken-stretch test (``layout_detect.find_rows(stroke_ink=...)``,
``pipeline.STROKE_INK_ROWS``, issue 22)."""

from __future__ import annotations

import gzip
import json

import numpy as np

from ecglens.digitize.layout_detect import find_rows

STRIP_PAGE = "eik00004_0"
"""An ECG-Image-Kit layout page of the tune folds (strat_fold 3): 6x2+1 with a V5 strip at
100 dpi; the colour ink loses the strip's fast strokes, the network's a tall-QRS row's."""


def _broken_rows_page(px_per_mm: float = 4.0) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Three flat trace rows; the third broken every 15 mm (its strokes in another ink)."""
    height, width = int(120 * px_per_mm), int(250 * px_per_mm)
    ink = np.zeros((height, width), np.float32)
    strokes = np.zeros_like(ink)
    centres = [30 * px_per_mm, 60 * px_per_mm, 90 * px_per_mm]
    xs = np.arange(int(10 * px_per_mm), int(240 * px_per_mm))
    wave = np.round(1.5 * px_per_mm * np.sin(xs / (1.3 * px_per_mm))).astype(int)
    for y in centres:   # a wavy line (a straight one is a ruled line, not a trace)
        for dy in (0, 1):
            ink[int(y) + wave + dy, xs] = 0.8
    gap = int(1.0 * px_per_mm)
    for x in range(int(25 * px_per_mm), int(240 * px_per_mm), int(15 * px_per_mm)):
        ink[:, x:x + gap][int(centres[2]) - 8:int(centres[2]) + 9] = 0.0
        strokes[int(centres[2]) - 8:int(centres[2]) + 9, x:x + gap] = 0.8
    return ink, strokes, centres


def test_a_row_broken_at_every_beat_is_completed_by_the_stroke_ink() -> None:
    ink, strokes, centres = _broken_rows_page()
    alone = find_rows(ink, 4.0)
    found = [r.centre_px for r in alone.rows]
    assert len(found) == 2 and np.allclose(found, centres[:2], atol=2)
    completed = find_rows(ink, 4.0, stroke_ink=strokes)
    found = [r.centre_px for r in completed.rows]
    assert len(found) == 3 and np.allclose(found, centres, atol=2)


def test_rows_found_only_with_the_stroke_ink_are_no_rows_alone() -> None:
    ink, strokes, centres = _broken_rows_page()
    for y in centres[:2]:
        ink[int(y) - 8:int(y) + 9] = 0.0
    assert find_rows(ink, 4.0).rows == ()
    assert find_rows(ink, 4.0, stroke_ink=strokes).rows == ()


def _first_column_baselines(root, page: str) -> list[float]:
    """0 mV rows (stored-image px) of the page's first column of leads and its strip."""
    with gzip.open(root / "geometry" / f"{page}.json.gz") as handle:
        leads = json.loads(handle.read())["eikdev"]["leads"]
    first = min(lead["trace_box_rc"][1] for lead in leads)
    return sorted({round(lead["row_coef"][0], 1) for lead in leads
                   if lead["trace_box_rc"][1] < first + 10})


def test_strip_page_rows_need_both_inks(shared_data) -> None:
    import cv2

    from ecglens.digitize.pipeline import page_ink
    from ecglens.digitize.seg_ink import trace_only_ink
    from ecglens.digitize.segment import trace_probability
    from ecglens.digitize.trace import RUN_LEVEL

    root = shared_data / "ecg_image_kit" / "synthetic"
    image = cv2.cvtColor(cv2.imread(str(root / "images" / f"{STRIP_PAGE}.jpg")),
                         cv2.COLOR_BGR2RGB)
    geometry = page_ink(image, None)
    ppmm = geometry.px_per_mm_y
    prob = trace_probability(geometry.deskew.image,
                             0.5 * (geometry.px_per_mm_x + ppmm))
    network = trace_only_ink(geometry.darkness, prob, RUN_LEVEL)
    truth = _first_column_baselines(root, STRIP_PAGE)
    assert len(truth) == 7
    assert len(find_rows(geometry.darkness, ppmm).rows) == 6      # measured: the strip lost
    assert len(find_rows(network, ppmm).rows) == 6                # measured: a QRS row lost
    both = find_rows(network, ppmm, stroke_ink=geometry.darkness)
    found = np.array([row.centre_px for row in both.rows])
    assert len(found) == 7
    assert np.max(np.abs(found - np.array(truth))) < 2 * ppmm


def test_strip_page_is_read_as_6x2_plus_strip(shared_data, monkeypatch) -> None:
    from ecglens.digitize import pipeline
    from ecglens.digitize.pipeline import digitize_file

    path = shared_data / "ecg_image_kit" / "synthetic" / "images" / f"{STRIP_PAGE}.jpg"
    result = digitize_file(path, use_ocr=False)[0]
    assert result.layout.name == "6x2+1"
    monkeypatch.setattr(pipeline, "STROKE_INK_ROWS", False)
    assert digitize_file(path, use_ocr=False)[0].layout.name == "6x2"
