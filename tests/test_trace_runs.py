"""The trace stage counts faint strokes the segmentation network calls trace into its runs
(``digitize.seg_ink.raise_faint_trace`` / ``trace_stage_ink``, issue 22 step 3)."""

from __future__ import annotations

import numpy as np
import pytest

from ecglens.digitize.seg_ink import (
    FAINT_TRACE_LEVEL,
    raise_faint_trace,
    trace_runs_from_env,
)
from ecglens.digitize.trace import RUN_LEVEL, extract_traces


def _faint_spike_page() -> tuple[np.ndarray, np.ndarray]:
    """A dark baseline (row 100) with a 2-px wide spike up to row 40 drawn at darkness 0.2
    (below the run level, as a thin stroke on a noisy 100-dpi scan), and a probability map
    that marks the trace (baseline and spike) but not a faint grid line at row 70."""
    darkness = np.zeros((160, 240), dtype=np.float32)
    prob = np.zeros_like(darkness)
    darkness[99:102, :] = 1.0
    prob[98:103, :] = 0.9
    darkness[40:100, 120:122] = 0.2
    prob[39:101, 119:123] = 0.9
    darkness[70, :] = 0.2          # a grid line as light as the spike: not trace
    return darkness, prob


def test_only_inked_pixels_the_network_calls_trace_are_raised() -> None:
    darkness, prob = _faint_spike_page()
    raised = raise_faint_trace(darkness, prob, RUN_LEVEL)
    assert raised[60, 120] == pytest.approx(RUN_LEVEL)       # faint spike: raised
    assert raised[70, 10] == pytest.approx(0.2)              # grid line: left alone
    assert raised[39, 119] == 0.0                            # paper in the network's band
    assert raised[100, 5] == 1.0                             # dark ink keeps its darkness
    assert raised.dtype == np.float32
    below = darkness.copy()
    below[50, 120] = FAINT_TRACE_LEVEL / 2                   # no ink at all: not raised
    assert raise_faint_trace(below, prob, RUN_LEVEL)[50, 120] == pytest.approx(
        FAINT_TRACE_LEVEL / 2)
    with pytest.raises(ValueError):
        raise_faint_trace(darkness, prob[:-1], RUN_LEVEL)


def test_a_faint_spike_is_read_to_its_tip_only_with_the_network_runs() -> None:
    darkness, prob = _faint_spike_page()
    plain = extract_traces(darkness, [100.0], [(0, 240)], px_per_mm=4.0)
    helped = extract_traces(raise_faint_trace(darkness, prob, RUN_LEVEL), [100.0],
                            [(0, 240)], px_per_mm=4.0)
    top_plain = float(np.nanmin(plain.rows[0].y_px))
    top_helped = float(np.nanmin(helped.rows[0].y_px))
    assert top_plain > 90          # the colour level sees no spike
    assert top_helped < 45         # the tip (row 40) is read


@pytest.mark.parametrize(("text", "on"), [("", True), ("1", True), ("0", False),
                                          ("off", False)])
def test_switch(text: str, on: bool) -> None:
    assert trace_runs_from_env(text) is on


def test_switch_rejects_other_words() -> None:
    with pytest.raises(ValueError):
        trace_runs_from_env("gate")


def _lead_correlations(result, truth) -> list[float]:
    names = list(truth.sig_name)
    out = []
    for lead in result.record.leads:
        x = truth.p_signal[:, names.index(lead)]
        y = result.record.lead(lead)[: len(x)]
        ok = np.isfinite(x[: len(y)]) & np.isfinite(y)
        if ok.sum() > 500:
            out.append(float(np.corrcoef(x[: len(y)][ok], y[ok])[0, 1]))
    return out


def test_scan_page_qrs_read_better_with_the_network_runs(shared_data, monkeypatch) -> None:
    """An ECG-Image-Kit scan page of the tune folds (noisy, rotated, purple grid as dark as
    the thin QRS strokes): without the network's runs most R waves were read as baseline."""
    import wfdb

    from ecglens.digitize.pipeline import digitize_file

    root = shared_data / "ecg_image_kit" / "synthetic"
    page = "eik00344_0"   # strat_fold 1-8, variant scan
    truth = wfdb.rdrecord(str(root / "truth" / page))
    medians = {}
    monkeypatch.setenv("ECGLENS_TRACE_PATH", "0")    # the runs alone (the path: below)
    for switch in ("0", "1"):
        monkeypatch.setenv("ECGLENS_TRACE_RUNS", switch)
        result = digitize_file(root / "images" / f"{page}.jpg", use_ocr=False)[0]
        assert result.traces.network_runs is (switch == "1")
        assert result.to_json()["trace_network_runs"] is (switch == "1")
        correlations = _lead_correlations(result, truth)
        assert len(correlations) >= 10
        medians[switch] = float(np.median(correlations))
    # measured: median correlation over the leads 0.806 without, 0.861 with
    assert medians["1"] > medians["0"] + 0.03
    assert medians["1"] > 0.84


def test_path_ink_is_the_networks_probability_on_ink_only() -> None:
    from ecglens.digitize.seg_ink import PATH_COLOUR_SHARE, path_ink

    darkness = np.zeros((10, 12), dtype=np.float32)
    prob = np.zeros_like(darkness)
    darkness[2, :] = 0.8           # grid residue beside a trace: ink, not trace
    prob[2, :] = 0.05
    darkness[5, :] = 0.3           # a faint stroke the network calls trace
    prob[5, :] = 0.95
    prob[7, :] = 0.9               # the network's band on paper
    out = path_ink(darkness, prob)
    assert np.allclose(out[2], PATH_COLOUR_SHARE * 0.8)     # half its colour darkness
    assert np.allclose(out[5], 0.95)
    assert out[7].max() == 0.0
    assert out.dtype == np.float32
    with pytest.raises(ValueError):
        path_ink(darkness, prob[:, :-1])


def test_the_path_climbs_a_faint_spike_past_grid_residue_on_the_baseline() -> None:
    """A grid line's residue (darkness 0.8) along the baseline under a spike whose two thin
    strokes are lighter (0.5): on the colour darkness the path keeps to the residue under
    the spike, which is then read from the residue; on the network's map (the residue at
    half its darkness) it climbs."""
    darkness = np.zeros((160, 240), dtype=np.float32)
    prob = np.zeros_like(darkness)
    darkness[99:102, :] = 1.0                       # the trace's baseline
    prob[98:103, :] = 0.95
    darkness[104, :] = 0.8                          # grid residue under it
    prob[104, :] = 0.05
    darkness[99:102, 118:124] = 0.0                 # the baseline is broken under the spike
    prob[99:102, 118:124] = 0.0
    darkness[104, 118:124] = 0.8
    for x, (top, bottom) in zip(range(118, 124), [(80, 101), (60, 80), (40, 60), (40, 60),
                                                   (60, 80), (80, 101)], strict=True):
        darkness[top:bottom, x] = 0.5
        prob[top:bottom, x] = 0.95
    from ecglens.digitize.seg_ink import path_ink

    plain = extract_traces(darkness, [100.0], [(0, 240)], px_per_mm=4.0)
    helped = extract_traces(darkness, [100.0], [(0, 240)], px_per_mm=4.0,
                            path_darkness=path_ink(darkness, prob))
    assert float(np.nanmin(plain.rows[0].y_px[115:127])) > 90
    assert float(np.nanmin(helped.rows[0].y_px[115:127])) < 45


def test_clean_page_read_better_with_the_path_on_the_networks_map(shared_data,
                                                                  monkeypatch) -> None:
    """A clean ECG-Image-Kit page of the tune folds (strat_fold 7, red grid at 100 dpi): on
    the colour darkness the path kept to grid residue along the baselines under some QRS."""
    import wfdb

    from ecglens.digitize.pipeline import digitize_file
    from ecglens.score.metrics import align

    root = shared_data / "ecg_image_kit" / "synthetic"
    page = "eik00014_0"
    truth = wfdb.rdrecord(str(root / "truth" / page))
    names = list(truth.sig_name)
    worst = {}
    for switch in ("0", "1"):
        monkeypatch.setenv("ECGLENS_TRACE_PATH", switch)
        result = digitize_file(root / "images" / f"{page}.jpg", use_ocr=False)[0]
        correlations = []
        for lead in result.record.leads:
            ref = truth.p_signal[:, names.index(lead)]
            read, _, _ = align(ref, result.record.lead(lead), truth.fs)
            read = np.concatenate([read, np.full(max(0, len(ref) - len(read)), np.nan)])
            ok = np.isfinite(ref) & np.isfinite(read[: len(ref)])
            correlations.append(float(np.corrcoef(ref[ok], read[: len(ref)][ok])[0, 1]))
        assert len(correlations) == 12
        worst[switch] = min(correlations)
    # measured (time-aligned, as the scorer does): worst lead 0.63 without, 0.93 with
    assert worst["0"] < 0.8
    assert worst["1"] > 0.9
