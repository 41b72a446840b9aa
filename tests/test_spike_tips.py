"""A QRS spike one or two columns wide keeps its tip through the trace refinement."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from ecglens.digitize import trace

PX_PER_MM = 3.94          # 100 px per inch, as ECG-Image-Kit's stored pages


def _spike_page(tip_px: float) -> np.ndarray:
    """Darkness of one row: a flat line at 100 px with a 1.5-px pen, and at column 150 a spike
    up to ``tip_px`` whose strokes rise and fall within a column each."""
    canvas = np.zeros((200, 300), dtype=np.uint8)
    shift = 4                                      # sub-pixel vertices (1/16 px)
    points = np.array([[20, 100], [149, 100], [150, tip_px], [151, 100], [280, 100]],
                      dtype=np.float64)
    cv2.polylines(canvas, [np.round(points * 2 ** shift).astype(np.int32)], False, 255,
                  thickness=1, lineType=cv2.LINE_AA, shift=shift)
    return canvas.astype(np.float32) / 255.0


def _tip_read(darkness: np.ndarray) -> float:
    result = trace.extract_traces(darkness, [100.0], [(20, 280)], PX_PER_MM)
    row = result.rows[0]
    assert row.fine_y_px is not None
    near = (row.fine_x_px > 145) & (row.fine_x_px < 156)
    return float(np.nanmin(row.fine_y_px[near]))


@pytest.mark.parametrize("tip_px", [40.0, 60.0])
def test_the_refined_trace_reaches_a_narrow_spikes_tip(tip_px: float) -> None:
    assert _tip_read(_spike_page(tip_px)) < tip_px + 1.5


def test_without_keeping_tips_the_refinement_cuts_the_spike(monkeypatch) -> None:
    monkeypatch.setattr(trace, "KEEP_TIPS", False)
    assert _tip_read(_spike_page(40.0)) > 40.0 + 3.0       # the premise: several px short


def test_keep_tips_moves_only_the_tip_sample_outwards() -> None:
    fine = np.array([[10.0, 10.0, 12.0, 14.0, 10.0, 10.0]])
    values = np.array([[10.0, 8.0, 10.0]])
    apex = np.array([[0, -1, 0]], dtype=np.int8)            # a downward peak (y grows down)
    out = trace.keep_tips(fine, values, apex, 2)
    assert out.tolist() == [[10.0, 10.0, 12.0, 14.0, 10.0, 10.0]]  # already beyond: unchanged
    apex = np.array([[0, 1, 0]], dtype=np.int8)             # an upward one at 8 px
    out = trace.keep_tips(fine, values, apex, 2)
    assert out.tolist() == [[10.0, 10.0, 8.0, 14.0, 10.0, 10.0]]
    assert fine[0, 2] == 12.0                               # the input is not changed
