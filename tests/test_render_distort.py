"""Distortion profiles: determinism, geometry that follows the transforms, profile errors."""

from __future__ import annotations

import numpy as np
import pytest

from ecglens.core.errors import EcglensError
from ecglens.core.io import read_record
from ecglens.synth.distort import (
    PROFILE_NAMES,
    Affine,
    Perspective,
    ProfileError,
    Resample,
    Warp,
    apply_distortions,
    apply_profile,
    get_profile,
)
from ecglens.synth.render import RenderSettings, render_page


@pytest.fixture(scope="module")
def page(shared_data):
    record = read_record(shared_data / "ludb" / "data" / "3")
    return render_page(record, RenderSettings(dpi=100.0, layout="3x4+1"))


def _clean_points(page) -> dict[str, np.ndarray]:
    """Points known to be ink / paper on the clean page (clean-page pixels)."""
    geo = page.geometry
    half = geo["trace_width_px"] / 2
    ink, paper = [], []
    for pulse in geo["pulses"]:
        x0, y0, x1, y1 = pulse["box"]
        ink.append([(x0 + x1) / 2, y0 + half])  # middle of the pulse top
        paper.append([(x0 + x1) / 2, (y0 + y1) / 2 + 0.2 * (y1 - y0)])  # inside the pulse
    return {"ink": np.array(ink), "paper": np.array(paper)}


def _apply_h(h, pts):
    xyw = np.column_stack([pts, np.ones(len(pts))]) @ np.asarray(h).T
    return xyw[:, :2] / xyw[:, 2:3]


def _darkness_at(image: np.ndarray, pts: np.ndarray, reach: int = 1) -> np.ndarray:
    grey = image.astype(np.float64).mean(axis=2)
    out = []
    for x, y in np.round(pts).astype(int):
        out.append(255.0 - grey[y - reach:y + reach + 1, x - reach:x + reach + 1].min())
    return np.array(out)


@pytest.mark.parametrize("profile", PROFILE_NAMES)
def test_profiles_are_deterministic_and_recorded(page, profile):
    a = apply_profile(page, profile, seed=11)
    b = apply_profile(page, profile, seed=11)
    assert np.array_equal(a.image, b.image)
    assert a.geometry == b.geometry
    geo = a.geometry
    assert geo["profile"] == profile and geo["seed"] == 11
    assert geo["image_size"] == [a.image.shape[1], a.image.shape[0]]
    assert all("name" in d for d in geo["distortions"])
    assert (len(geo["distortions"]) == 0) == (profile == "clean")
    # the truth signal is what was printed: distortions never change it
    np.testing.assert_array_equal(a.truth.signal, page.truth.signal)
    if profile != "clean":
        c = apply_profile(page, profile, seed=12)
        assert c.geometry["distortions"] != geo["distortions"]


def test_rotation_maps_known_points(page):
    rotated = apply_distortions(page, [Affine(angle_deg=4.0, shift_x_px=7.0, shift_y_px=-5.0)])
    geo = rotated.geometry
    assert geo["rotation_deg"] == pytest.approx(-4.0, abs=1e-3)  # image y points down
    assert geo["px_per_mm_x"] == pytest.approx(page.geometry["px_per_mm_x"], rel=1e-6)
    h = np.asarray(geo["page_to_image"])
    # the homography maps the clean baseline points onto the stored ones
    for clean_row, row in zip(page.geometry["rows"], geo["rows"], strict=True):
        mapped = _apply_h(h, np.asarray(clean_row["baseline_points_px"]))
        np.testing.assert_allclose(mapped, np.asarray(row["baseline_points_px"]), atol=2e-3)
        assert row["baseline_px"] == pytest.approx(mapped[0, 1], abs=2e-3)
    # ...and onto the pixels: the pulse tops are ink, the pulse insides paper, after rotation
    pts = _clean_points(page)
    assert (_darkness_at(rotated.image, _apply_h(h, pts["ink"])) > 120).all()
    assert (_darkness_at(rotated.image, _apply_h(h, pts["paper"]), reach=0) < 60).all()
    # a point far from the rotation centre moved by many pixels (so the check is not trivial)
    moved = np.hypot(*(_apply_h(h, pts["ink"]) - pts["ink"]).T)
    assert moved.max() > 20


def test_perspective_and_resample_follow_the_page(page):
    steps = [Perspective(pitch_deg=25.0, yaw_deg=-15.0, roll_deg=6.0, fill=0.9, seed=1),
             Resample(0.8, 0.6)]
    photo = apply_distortions(page, steps)
    h = np.asarray(photo.geometry["page_to_image"])
    pts = _clean_points(page)
    assert (_darkness_at(photo.image, _apply_h(h, pts["ink"])) > 60).all()
    assert photo.geometry["px_per_mm_y"] < photo.geometry["px_per_mm_x"]  # 0.6 vs 0.8 scale
    gx0, gy0, gx1, gy1 = photo.geometry["grid_box"]
    assert 0 <= gx0 < gx1 <= photo.image.shape[1] and 0 <= gy0 < gy1 <= photo.image.shape[0]


def test_warp_geometry_is_marked_approximate_and_tracks_ink(page):
    warp = Warp(curl_edge="right", curl_extent=0.4, curl_amount=0.02, bow=0.004,
                creases=((0.5, 0.5, 0.0, 0.01),), crease_shade=0.1)
    curled = apply_distortions(page, [warp])
    geo = curled.geometry
    assert geo["page_to_image_exact"] is False
    # the 0 mV points at the time-axis start lie on the flat ink just before the trace
    for clean_row, row in zip(page.geometry["rows"], geo["rows"], strict=True):
        clean_pt = np.asarray(clean_row["baseline_points_px"])[1:2] - [2.0, 0.0]
        mapped = warp.forward(clean_pt, curled.image.shape[1], curled.image.shape[0],
                              page.geometry)
        assert _darkness_at(curled.image, mapped)[0] > 100
        assert np.hypot(*(mapped[0] - row["baseline_points_px"][1])) < 4.0


def test_unknown_profile_lists_valid_names(page):
    with pytest.raises(ProfileError) as info:
        apply_profile(page, "polaroid", seed=0)
    assert isinstance(info.value, EcglensError) and isinstance(info.value, ValueError)
    for name in PROFILE_NAMES:
        assert name in str(info.value)
    assert get_profile("PHOTO-HARD") is get_profile("photo_hard")
