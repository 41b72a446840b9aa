"""Trace segmentation model (ONNX): finds the trace, not the grid, on a page it never saw."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ecglens.core.errors import InputError
from ecglens.core.io import read_record
from ecglens.digitize.segment import WEIGHTS_PATH, model_px_per_mm, trace_probability
from ecglens.synth.distort import apply_profile
from ecglens.synth.render import RenderSettings, render_page

MIN_TRACE_RECALL = 0.88
"""Least share of true trace pixels with probability > 0.5 (measured 0.946 on this page)."""
MAX_GRID_HITS = 0.002
"""Largest share of grid-only pixels with probability > 0.5 (measured 0 of 535,000)."""
MAX_TEXT_HITS = 0.05
"""Largest share of black label/header text pixels with probability > 0.5 (measured 0.003)."""
TEST_RECORD = "199"
"""A LUDB record that no training page was drawn from (training used records 1-160)."""


@pytest.fixture(scope="module")
def page(shared_data):
    record = read_record(shared_data / "ludb" / "data" / TEST_RECORD)
    settings = RenderSettings(layout="3x4+1", dpi=150.0, grid="red", trace_width_mm=0.25,
                              start_s=1.0)
    return render_page(record, settings, trace_mask=True)


def _grid_only(page) -> np.ndarray:
    """Pixels of the red grid away from any trace ink (dilated by 2 px) or black text."""
    rgb = page.image.astype(np.int16)
    grid = (rgb[..., 0] - rgb[..., 1]) > 30
    near_trace = cv2.dilate((page.trace_mask > 0).astype(np.uint8), np.ones((5, 5), np.uint8))
    return grid & (near_trace == 0)


def _text_only(page) -> np.ndarray:
    """Black ink at least 3 px away from the trace: labels, header, settings line."""
    near_trace = cv2.dilate((page.trace_mask > 0).astype(np.uint8), np.ones((7, 7), np.uint8))
    return (page.image.max(axis=2) < 128) & (near_trace == 0)


def test_weights_committed_and_small():
    assert WEIGHTS_PATH.is_file()
    assert WEIGHTS_PATH.stat().st_size < 2_000_000
    assert model_px_per_mm() > 0


def test_trace_found_grid_ignored(page):
    prob = trace_probability(page.image, page.settings.px_per_mm)
    assert prob.shape == page.image.shape[:2] and prob.dtype == np.float32
    assert float(prob.min()) >= 0.0 and float(prob.max()) <= 1.0
    trace = page.trace_mask >= 128
    grid = _grid_only(page)
    assert trace.sum() > 10_000 and grid.sum() > 100_000
    recall = float(np.mean(prob[trace] > 0.5))
    grid_hits = float(np.mean(prob[grid] > 0.5))
    assert recall >= MIN_TRACE_RECALL, recall
    assert grid_hits < MAX_GRID_HITS, grid_hits
    text = _text_only(page)
    assert text.sum() > 5_000
    assert float(np.mean(prob[text] > 0.5)) < MAX_TEXT_HITS


def test_distortion_warps_trace_mask(page):
    photo = apply_profile(page, "photo", seed=5)
    assert photo.trace_mask is not None
    assert photo.trace_mask.shape == photo.image.shape[:2]
    # the warped trace is dark in the photo: ink under the mask, paper around it
    grey = photo.image.mean(axis=2)
    on = grey[photo.trace_mask >= 200]
    assert on.size > 1000 and float(np.median(on)) < float(np.median(grey)) - 40


def test_render_without_mask_unchanged(page, shared_data):
    record = read_record(shared_data / "ludb" / "data" / TEST_RECORD)
    plain = render_page(record, page.settings)
    assert plain.trace_mask is None
    assert np.array_equal(plain.image, page.image)


def test_bad_input():
    with pytest.raises(InputError):
        trace_probability(np.zeros((10, 10, 4), dtype=np.uint8), 5.0)
    with pytest.raises(InputError):
        trace_probability(np.zeros((64, 64, 3), dtype=np.uint8), 0.0)
    small = trace_probability(np.full((40, 50), 255, dtype=np.uint8), 5.0)
    assert small.shape == (40, 50) and small.dtype == np.float32
