"""Trace segmentation in the ink stage (digitize.seg_ink): the network's gate keeps the trace,
the calibration pulses and the letters (lead names, settings line), and drops a large dark
smudge far from every row; the switch is on unless the environment turns it off."""

from __future__ import annotations

import numpy as np
import pytest

from ecglens.core.io import read_record
from ecglens.digitize.grid import find_grid
from ecglens.digitize.ink import find_ink
from ecglens.digitize.seg_ink import (
    DEFAULT_VARIANT,
    TRACE_MODEL_ENV,
    resolve,
    variant_from_env,
)
from ecglens.synth.render import RenderSettings, render_page

TEST_RECORD = "199"
"""A LUDB record that no training page of the segmentation network was drawn from."""
DPI = 150.0
SMUDGE_BOX = (1400, 1210, 1700, 1235)
"""A dark bar (x0, y0, x1, y1 px) in the bottom margin, 27 mm below the last row's baseline:
51 x 4 mm, larger than a letter, not connected to any trace."""
SMUDGE_GREY = 40
MIN_KEPT = 0.98
"""Least share of the colour rule's ink kept by the gate on the trace, pulses, lead names and
settings line (measured: 100 % of each on this page)."""
MAX_SMUDGE_KEPT = 0.02
"""Largest share of the smudge's ink kept (measured 0 of 7,500 px)."""


@pytest.fixture(scope="module")
def inks(shared_data):
    record = read_record(shared_data / "ludb" / "data" / TEST_RECORD)
    page = render_page(record, RenderSettings(layout="3x4+1", dpi=DPI, grid="red",
                                              trace_width_mm=0.25, start_s=1.0),
                       trace_mask=True)
    image = page.image.copy()
    x0, y0, x1, y1 = SMUDGE_BOX
    image[y0:y1, x0:x1] = SMUDGE_GREY
    grid = find_grid(image, DPI)
    return page, find_ink(image, grid, trace_model=False), find_ink(image, grid,
                                                                    trace_model="gate_max")


def _boxes_mask(shape: tuple[int, ...], boxes: list[list[float]]) -> np.ndarray:
    out = np.zeros(shape[:2], dtype=bool)
    for x0, y0, x1, y1 in boxes:
        out[round(y0):round(y1), round(x0):round(x1)] = True
    return out


def test_gate_keeps_trace_pulses_and_letters(inks):
    page, off, on = inks
    assert off.trace_model is None and on.trace_model == "gate_max"
    geometry = page.geometry
    regions = {
        "trace": page.trace_mask >= 128,
        "pulses": _boxes_mask(page.image.shape, [p["box"] for p in geometry["pulses"]]),
        "lead names": _boxes_mask(page.image.shape, [lab["box"] for lab in geometry["labels"]]),
        "settings line": _boxes_mask(page.image.shape, [geometry["settings_line_box"]]),
    }
    for name, region in regions.items():
        ink = off.mask & region
        assert ink.sum() > 200, name
        kept = float((on.mask & ink).sum()) / float(ink.sum())
        assert kept >= MIN_KEPT, (name, kept)


def test_gate_drops_smudge_far_from_rows(inks):
    _, off, on = inks
    smudge = _boxes_mask(off.mask.shape, [list(SMUDGE_BOX)])
    assert off.mask[smudge].mean() > 0.9   # the colour rule calls it ink
    assert on.mask[smudge].mean() <= MAX_SMUDGE_KEPT


def test_switch_off_by_default_and_on_by_env(monkeypatch):
    monkeypatch.delenv(TRACE_MODEL_ENV, raising=False)
    assert resolve(None) == DEFAULT_VARIANT
    assert DEFAULT_VARIANT is None
    monkeypatch.setenv(TRACE_MODEL_ENV, "0")
    assert resolve(None) is None
    monkeypatch.setenv(TRACE_MODEL_ENV, "1")
    assert resolve(None) == "gate"
    assert variant_from_env("gate_max") == "gate_max" and variant_from_env("0") is None
    assert resolve(False) is None and resolve(True) == "gate"
    with pytest.raises(ValueError):
        variant_from_env("maybe")
