"""Grid, deskew and ink stages on renders with known truth and on real scans."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from ecglens.digitize.deskew import deskew, local_scale
from ecglens.digitize.grid import find_grid
from ecglens.digitize.ink import find_ink

render = pytest.importorskip("ecglens.synth.render")
distort = pytest.importorskip("ecglens.synth.distort")

PPM_TOL = 0.003  # relative px/mm error allowed
ROT_TOL = 0.05   # deg


_CACHE: dict = {}


@pytest.fixture(scope="module")
def record(shared_data: Path):
    from ecglens.core.io import read_record

    return read_record(shared_data / "ludb" / "data" / "1")


def _page(record, grid: str = "red", dpi: float = 150.0, minor_grid: str = "lines"):
    key = (grid, dpi, minor_grid)
    if key not in _CACHE:
        _CACHE[key] = render.render_page(record, render.RenderSettings(
            dpi=dpi, grid=grid, minor_grid=minor_grid))
    return _CACHE[key]


def _truth(page) -> tuple[float, float, float]:
    geo = page.geometry
    # the renderer's geometry measures rotation clockwise-positive; ecglens is CCW-positive
    return float(geo["px_per_mm_x"]), float(geo["px_per_mm_y"]), -float(geo.get("rotation_deg", 0))


def _check(result, page, ppm_tol: float = PPM_TOL, rot_tol: float = ROT_TOL) -> None:
    tx, ty, trot = _truth(page)
    assert result.found, result.reason
    assert result.source == "grid"
    assert abs(result.px_per_mm_x / tx - 1) < ppm_tol, (result.px_per_mm_x, tx)
    assert abs(result.px_per_mm_y / ty - 1) < ppm_tol, (result.px_per_mm_y, ty)
    assert abs(result.rotation_deg - trot) < rot_tol, (result.rotation_deg, trot)


@pytest.mark.parametrize("grid", ["red", "pink", "orange", "green", "blue", "grey", "bw"])
def test_every_grid_colour_gives_px_per_mm_and_colour(record, grid: str) -> None:
    page = _page(record, grid)
    result = find_grid(page.image)
    _check(result, page)
    expected = {"grey": ("grey", "bw"), "bw": ("bw", "grey")}.get(grid, (grid,))
    assert result.grid_colour in expected


@pytest.mark.parametrize("angle", [-5.0, 2.4, 5.0])
def test_rotation_is_measured_and_removed(record, angle: float) -> None:
    page = distort.apply_distortions(_page(record, "red", 150.0), [distort.Affine(angle_deg=angle)])
    result = find_grid(page.image)
    _check(result, page)
    out = deskew(page.image, result)
    again = find_grid(out.image)
    assert abs(again.rotation_deg) < ROT_TOL
    assert abs(again.px_per_mm_x / result.px_per_mm_x - 1) < PPM_TOL
    # the matrix maps a page point to where it lands in the deskewed image
    centre = np.array([[page.image.shape[1] / 2, page.image.shape[0] / 2]])
    back = out.to_input(out.to_output(centre))
    assert np.allclose(back, centre)


@pytest.mark.parametrize("dpi", [100.0, 300.0])
def test_resolution_extremes(record, dpi: float) -> None:
    page = _page(record, "pink", dpi)
    _check(find_grid(page.image), page)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scan_profile(record, seed: int) -> None:
    page = distort.apply_profile(_page(record, "orange", 150.0), "scan", seed=seed)
    _check(find_grid(page.image), page)


def test_dotted_minor_grid(record) -> None:
    page = _page(record, "green", 150.0, minor_grid="dots")
    _check(find_grid(page.image), page)


def test_no_grid_falls_back_to_dpi_prior(record) -> None:
    page = _page(record, "none")
    result = find_grid(page.image, dpi_prior=150.0)
    assert not result.found and result.grid_colour == "none"
    assert result.source == "dpi" and result.px_per_mm_x == pytest.approx(150 / 25.4)
    result = find_grid(page.image)
    assert result.source == "none" and np.isnan(result.px_per_mm_y)
    assert result.reason


def test_blank_page_and_text_page_are_not_grids() -> None:
    blank = np.full((900, 1300, 3), 245, np.uint8)
    assert not find_grid(blank).found
    text = np.full((1100, 1500, 3), 255, np.uint8)
    for row in range(40, 1060, 36):
        cv2.putText(text, "Lorem ipsum dolor sit amet, consectetur adipiscing elit 0123",
                    (40, row), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (20, 20, 20), 2)
    result = find_grid(text)
    assert not result.found, result
    rng = np.random.default_rng(3)
    noise = cv2.GaussianBlur(rng.integers(0, 255, (800, 1200, 3), dtype=np.uint8), (0, 0), 3)
    assert not find_grid(noise).found


def test_ink_separates_trace_from_grid(record) -> None:
    page = _page(record, "red", 150.0)
    grid = find_grid(page.image)
    ink = find_ink(page.image, grid)
    assert ink.darkness.shape == page.image.shape[:2] and ink.darkness.dtype == np.float32
    geo = page.geometry
    x0, y0, x1, y1 = (round(v) for v in geo["grid_box"])
    region = ink.mask[y0:y1, x0:x1]
    assert 0.002 < region.mean() < 0.05  # traces and labels only, not the grid
    # pixels on major grid lines far from traces are not ink
    s = geo["px_per_mm_x"]
    row_y = round(y0 + 5 * s * 2)
    assert ink.darkness[row_y, x0 + 10: x0 + 60].max() < 0.3


def test_real_scan_is_200_dpi(shared_data: Path) -> None:
    from ecglens.digitize.load import load_pages

    page = load_pages(shared_data / "real_images" / "tereshchenkolab_paper-ecg" / "fullScan.png")[0]
    result = find_grid(page.image, page.dpi_prior)
    assert result.found and result.minor_visible
    assert result.px_per_mm_x == pytest.approx(200 / 25.4, rel=0.01)
    assert result.px_per_mm_y == pytest.approx(200 / 25.4, rel=0.01)
    assert abs(result.rotation_deg) < 0.2


@pytest.mark.parametrize("seed", [2, 5])
def test_photo_perspective_is_rectified(record, seed: int) -> None:
    page = distort.apply_profile(_page(record, "red", 150.0), "photo", seed=seed)
    grid = find_grid(page.image)
    assert grid.found and grid.homography is not None, grid.reason
    out = deskew(page.image, grid)
    assert out.perspective_corrected
    # the rectified grid is square and axis-aligned
    assert abs(out.grid.px_per_mm_x / out.grid.px_per_mm_y - 1) < 0.02
    assert out.grid.rotation_deg == 0.0 and out.grid.homography is None
    # the chain input -> deskewed -> mm reproduces the local scale at the grid centre
    gx0, gy0, gx1, gy1 = page.geometry["grid_box"]
    centre = np.array([(gx0 + gx1) / 2, (gy0 + gy1) / 2])
    px, py, rot = local_scale(out.matrix, out.grid.px_per_mm_x, out.grid.px_per_mm_y, centre)
    tx, ty, trot = _truth(page)
    assert abs(px / tx - 1) < 0.01 and abs(py / ty - 1) < 0.01, (px, tx, py, ty)
    assert abs(rot - trot) < 0.3, (rot, trot)


@pytest.mark.parametrize("name", ["astronaut", "coffee", "brick", "page", "text", "checkerboard"])
def test_non_ecg_pictures_have_no_grid(name: str) -> None:
    data = pytest.importorskip("skimage.data")
    try:
        img = getattr(data, name)()
    except Exception as exc:  # a sample that would need a download
        pytest.skip(f"skimage sample {name} unavailable: {exc}")
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    result = find_grid(np.ascontiguousarray(img[:, :, :3].astype(np.uint8)))
    assert not result.found and result.reason
    assert result.source == "none" and np.isnan(result.px_per_mm_x)


def test_decimate_by_odd_factor_equals_area_resize() -> None:
    """The box-blur path of ``_decimate`` (odd factors) gives the area resize's values."""
    from ecglens.digitize.grid import _decimate

    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, size=(101, 157, 3), dtype=np.uint8)
    for factor in (3, 5, 7):
        h, w = (101 // factor) * factor, (157 // factor) * factor
        expected = cv2.resize(image[:h, :w], (w // factor, h // factor),
                              interpolation=cv2.INTER_AREA)
        assert np.array_equal(_decimate(image, factor), expected)
