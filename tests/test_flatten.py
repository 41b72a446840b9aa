"""Flatten stage: the grid's displacement field is measured and undone (digitize.flatten)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from signal_match import best_lag

from ecglens.digitize.deskew import DeskewResult
from ecglens.digitize.flatten import (
    MIN_SHIFT_MM,
    compose_remap,
    flatten_points,
    measure_flattening,
)

PX_PER_MM = 7.0


def _grid_map(width: int, height: int, dx: np.ndarray | None = None,
              dy: np.ndarray | None = None) -> np.ndarray:
    """A red-grid evidence map: 1 mm lines faint, 5 mm lines strong, drawn where the flat
    lattice point ``(x - dx, y - dy)`` lies on a line (lines displaced by ``+dx, +dy``)."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    u = xs - (0 if dx is None else dx)
    v = ys - (0 if dy is None else dy)

    def lines(c: np.ndarray, period: float, width_px: float) -> np.ndarray:
        d = np.abs((c + 0.5 * period) % period - 0.5 * period)
        return np.clip(1.0 - d / width_px, 0.0, 1.0)

    minor = np.maximum(lines(u, PX_PER_MM, 0.8), lines(v, PX_PER_MM, 0.8))
    major = np.maximum(lines(u, 5 * PX_PER_MM, 1.5), lines(v, 5 * PX_PER_MM, 1.5))
    return np.maximum(0.25 * minor, major).astype(np.float32)


def _bend(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """A curl-like smooth displacement: up to 2.5 mm along x, 1.5 mm along y."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    dx = 2.5 * PX_PER_MM * np.sin(np.pi * xs / width) * np.cos(0.7 * np.pi * ys / height)
    dy = 1.5 * PX_PER_MM * np.sin(1.3 * np.pi * xs / width + 0.4)
    return dx.astype(np.float32), dy.astype(np.float32)


def test_flat_grid_is_left_alone():
    flat = measure_flattening(_grid_map(1400, 900), PX_PER_MM, PX_PER_MM)
    assert not flat.applied
    assert flat.max_shift_mm < MIN_SHIFT_MM
    assert flat.period_mm == 5.0


def test_bent_grid_displacement_is_recovered_and_undone():
    w, h = 1400, 900
    dx, dy = _bend(w, h)
    flat = measure_flattening(_grid_map(w, h, dx, dy), PX_PER_MM, PX_PER_MM)
    assert flat.applied
    mx, my = flat.dense_shift(w, h)
    # the field is known up to a constant: compare after removing the medians
    inner = (slice(60, h - 60), slice(60, w - 60))
    err_x = (mx - dx)[inner] - np.median((mx - dx)[inner])
    err_y = (my - dy)[inner] - np.median((my - dy)[inner])
    assert np.percentile(np.abs(err_x), 95) / PX_PER_MM < 0.2  # mm
    assert np.percentile(np.abs(err_y), 95) / PX_PER_MM < 0.2
    # resampling through the field straightens the grid
    bent = (255 * (1 - _grid_map(w, h, dx, dy))).astype(np.uint8)
    map_x, map_y = compose_remap(np.eye(3), flat, w, h)
    straight = cv2.remap(bent, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    again = measure_flattening(1.0 - straight.astype(np.float32) / 255.0, PX_PER_MM, PX_PER_MM)
    assert again.max_shift_mm < 0.3 * flat.max_shift_mm
    assert again.max_shift_mm < MIN_SHIFT_MM


def test_points_round_trip_through_the_flattening():
    w, h = 1400, 900
    dx, dy = _bend(w, h)
    flat = measure_flattening(_grid_map(w, h, dx, dy), PX_PER_MM, PX_PER_MM)
    pts = np.array([[100.0, 100.0], [700.0, 450.0], [1300.0, 820.0]])
    back = flatten_points(flat, flatten_points(flat, pts), inverse=True)
    np.testing.assert_allclose(back, pts, atol=0.05)
    desk = DeskewResult(image=np.zeros((h, w, 3), np.uint8), matrix=np.eye(3), rotation_deg=0.0,
                        perspective_corrected=False, grid=None, flatten=flat)  # type: ignore[arg-type]
    np.testing.assert_allclose(desk.to_output(desk.to_input(pts)), pts, atol=0.05)


def test_no_grid_is_not_flattened():
    rng = np.random.default_rng(0)
    noise = rng.random((600, 800)).astype(np.float32)
    flat = measure_flattening(noise, PX_PER_MM, PX_PER_MM)
    assert not flat.applied
    assert flat.shift_px is None


@pytest.mark.parametrize("bad", [0.0, float("nan")])
def test_no_scale_is_not_flattened(bad):
    assert not measure_flattening(_grid_map(300, 200), bad, PX_PER_MM).applied


def _window_lags(truth: np.ndarray, read: np.ndarray, window: int = 250,
                 max_lag: int = 150) -> list[int]:
    """Best lag (samples) of ``read`` against ``truth`` in each whole window of the truth."""
    lags = []
    finite = np.flatnonzero(np.isfinite(truth))
    for start in range(int(finite[0]), int(finite[-1]) - window, window):
        r, lag = best_lag(truth, read, start, window, max_lag, step=2)
        if r > 0.8:
            lags.append(lag)
    return lags


@pytest.mark.parametrize("flatten", ["1", "0"])
def test_curled_photo_keeps_its_time_axis(shared_data, monkeypatch, flatten):
    """A curled phone photo (Paper2Pulse 02780, the grid bent by ~2.7 mm): flattened, the lead
    II strip's beats stay on the printed time in every 0.5-s window; without the flattening
    they drift by more than 40 ms over the strip."""
    import wfdb

    from ecglens.digitize.pipeline import digitize_image

    monkeypatch.setenv("ECGLENS_FLATTEN", flatten)
    root = shared_data / "real_photos" / "paper2pulse"
    bgr = cv2.imread(str(root / "images" / "02780_hr.jpg"), cv2.IMREAD_COLOR)
    result = digitize_image(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), source="02780_hr", check=False)
    truth = wfdb.rdrecord(str(root / "truth" / "02780_hr"))
    read = result.record
    flat = result.to_json()["flatten"]
    assert (flat is not None and flat["applied"]) is (flatten == "1")
    lead = "II"
    ref = truth.p_signal[:, truth.sig_name.index(lead)]
    est = np.asarray(read.signal[:, list(read.leads).index(lead)], dtype=float)
    lags = _window_lags(ref, est)
    assert len(lags) >= 12
    drift_ms = (max(lags) - min(lags)) * 1000.0 / truth.fs
    if flatten == "1":
        assert drift_ms <= 20.0
    else:
        assert drift_ms > 40.0


def test_flat_scan_with_a_faint_lattice_is_not_resampled(shared_data):
    """An ECG-Image-Kit scan-like page (flat by construction, rotated 4 deg, 100 px/inch): its
    faint 5 mm lattice gives a noisy field of several mm, which must not be applied."""
    from ecglens.digitize.deskew import deskew
    from ecglens.digitize.grid import find_grid

    path = shared_data / "ecg_image_kit" / "synthetic" / "images" / "eik00174_0.jpg"
    image = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    desk = deskew(image, find_grid(image))
    assert desk.flatten is not None and desk.flatten.shift_px is not None
    assert not desk.flatten.applied
    assert "too faint" in desk.flatten.reason
