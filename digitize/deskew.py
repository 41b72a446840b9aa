"""Deskew stage: rotate (scans) or rectify by a homography (photos) so the grid is axis-aligned.

After the rotation or homography the grid's remaining bend is measured; where the paper's
curl and folds bend it measurably (phone photos), a dense flattening
(:mod:`digitize.flatten`) is composed into the same single resampling.

The output canvas is enlarged so no part of the page is cut off; uncovered corners are
filled with the paper colour. ``DeskewResult.matrix`` maps input pixel coordinates
``(x, y, 1)`` to output pixel coordinates (3x3 homography; affine for a pure rotation).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass

import cv2
import numpy as np

from ecglens.digitize.flatten import (
    FlattenResult,
    compose_remap,
    flatten_points,
    measure_flattening,
)
from ecglens.digitize.grid import GridResult, find_grid, grid_evidence

log = logging.getLogger(__name__)

#: rotations smaller than this (deg) are not resampled (saves time, avoids blur)
MIN_ROTATION_DEG = 0.01


@dataclass(frozen=True)
class DeskewResult:
    """The deskewed page.

    Attributes
    ----------
    image
        ``(H', W', 3)`` uint8 RGB, grid lines horizontal/vertical.
    matrix
        3x3 float64 homography, input pixel ``(x, y, 1)`` -> output pixel.
    rotation_deg
        Rotation that was removed (deg, CCW positive as displayed, as in ``GridResult``).
    perspective_corrected
        True if a full homography (not only a rotation) was applied.
    grid
        The grid on the deskewed image (rotation ~0, same px/mm for a pure rotation).
    reason
        Notes: why perspective was not corrected, residuals.
    flatten
        The grid's bend measured after the rotation or homography, or None (page read as
        is, grid not found, or ``ECGLENS_FLATTEN=0``). When
        ``flatten.applied``, the output pixel ``p`` shows input pixel
        ``matrix⁻¹ · (p + shift(p))``.
    """

    image: np.ndarray = dataclasses.field(repr=False)
    matrix: np.ndarray = dataclasses.field(repr=False)
    rotation_deg: float
    perspective_corrected: bool
    grid: GridResult
    reason: str = ""
    flatten: FlattenResult | None = None

    @property
    def flattened(self) -> bool:
        return self.flatten is not None and self.flatten.applied

    def to_output(self, xy: np.ndarray) -> np.ndarray:
        """Map ``(N, 2)`` input pixel coordinates to output coordinates."""
        out = _apply_h(self.matrix, xy)
        if self.flattened:
            assert self.flatten is not None
            out = flatten_points(self.flatten, out, inverse=True)
        return out

    def to_input(self, xy: np.ndarray) -> np.ndarray:
        """Map ``(N, 2)`` output pixel coordinates back to input coordinates."""
        pts = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        if self.flattened:
            assert self.flatten is not None
            pts = flatten_points(self.flatten, pts)
        return _apply_h(np.linalg.inv(self.matrix), pts)

    def warp(self, plane: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """Carry a single-channel float32 map of the input image onto the output page."""
        h, w = self.image.shape[:2]
        if self.flattened:
            assert self.flatten is not None
            map_x, map_y = compose_remap(self.matrix, self.flatten, w, h)
            return cv2.remap(plane, map_x, map_y, cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=fill)
        return cv2.warpPerspective(plane, np.asarray(self.matrix, dtype=np.float64), (w, h),
                                   flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                   borderValue=fill)


def _apply_h(m: np.ndarray, xy: np.ndarray) -> np.ndarray:
    pts = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    hom = np.column_stack([pts, np.ones(len(pts))]) @ m.T
    return hom[:, :2] / hom[:, 2:3]


def local_scale(matrix: np.ndarray, px_per_mm_x: float, px_per_mm_y: float,
                xy: np.ndarray) -> tuple[float, float, float]:
    """px/mm along the page's x and y axes and rotation (deg, CCW+) at input pixel ``xy``.

    ``matrix`` maps input pixels to the deskewed page, whose grid is axis-aligned with
    ``px_per_mm_x``/``px_per_mm_y``; the result is the image, in input pixels, of a 1 mm step
    along each page axis (the renderer's truth is defined the same way).
    """
    to_mm = np.diag([1 / px_per_mm_x, 1 / px_per_mm_y, 1.0]) @ matrix
    from_mm = np.linalg.inv(to_mm)
    centre_mm = _apply_h(to_mm, np.asarray(xy, dtype=float))[0]
    origin = _apply_h(from_mm, centre_mm)[0]
    step_x = _apply_h(from_mm, centre_mm + np.array([1.0, 0.0]))[0] - origin
    step_y = _apply_h(from_mm, centre_mm + np.array([0.0, 1.0]))[0] - origin
    rotation = -math.degrees(math.atan2(step_x[1], step_x[0]))
    return float(np.hypot(*step_x)), float(np.hypot(*step_y)), rotation


def paper_colour(image_rgb: np.ndarray) -> tuple[int, int, int]:
    """Typical paper colour (RGB): the median of the brightest half of a subsample."""
    sub = image_rgb[::7, ::7].reshape(-1, 3)
    lum = sub.astype(np.int32).sum(axis=1)
    bright = sub[lum >= np.median(lum)]
    med = np.median(bright, axis=0) if len(bright) else np.array([255, 255, 255])
    return int(med[0]), int(med[1]), int(med[2])


def rotation_matrix(shape: tuple[int, ...], rotation_deg: float) -> tuple[np.ndarray, int, int]:
    """Homography that removes ``rotation_deg`` about the image centre on an enlarged canvas.

    Returns
    -------
    matrix : (3, 3) float64
        Input -> output pixel coordinates.
    out_w, out_h : int
        Size of the output canvas holding the whole rotated input.
    """
    h, w = shape[:2]
    # content rotated CCW by theta is undone by rotating it by -theta (cv2: positive = CCW)
    rot = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), -rotation_deg, 1.0)
    c, s = abs(math.cos(math.radians(rotation_deg))), abs(math.sin(math.radians(rotation_deg)))
    out_w = math.ceil(w * c + h * s)
    out_h = math.ceil(h * c + w * s)
    rot[0, 2] += out_w / 2.0 - w / 2.0
    rot[1, 2] += out_h / 2.0 - h / 2.0
    return np.vstack([rot, [0.0, 0.0, 1.0]]), out_w, out_h


def deskew(image_rgb: np.ndarray, grid: GridResult, reestimate: bool = False) -> DeskewResult:
    """Remove the grid's rotation (and perspective, when measured) from a page image.

    Parameters
    ----------
    image_rgb
        ``(H, W, 3)`` uint8 RGB page image.
    grid
        Result of :func:`digitize.grid.find_grid` on the same image. If the grid was not
        found its rotation is still used when non-zero (it comes from the spectral stage).
    reestimate
        Run :func:`find_grid` again on the output (costs about one more grid stage) instead of
        carrying the px/mm over analytically (exact for a pure rotation).

    Returns
    -------
    DeskewResult
    """
    if grid.homography is not None and grid.rectified_size is not None:
        return _deskew_perspective(image_rgb, grid, reestimate)
    rot = float(grid.rotation_deg) if np.isfinite(grid.rotation_deg) else 0.0
    if abs(rot) < MIN_ROTATION_DEG:
        out_grid = dataclasses.replace(grid, rotation_deg=0.0)
        if reestimate:
            out_grid = find_grid(image_rgb)
        return DeskewResult(image=image_rgb, matrix=np.eye(3), rotation_deg=rot,
                            perspective_corrected=False, grid=out_grid,
                            reason="rotation below resampling threshold")
    matrix, out_w, out_h = rotation_matrix(image_rgb.shape, rot)
    fill = paper_colour(image_rgb)
    out = cv2.warpAffine(image_rgb, matrix[:2], (out_w, out_h), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=fill)
    if reestimate:
        out_grid = find_grid(out)
    else:
        out_grid = dataclasses.replace(
            grid, rotation_deg=0.0,
            rotation_h_deg=grid.rotation_h_deg - rot if np.isfinite(grid.rotation_h_deg)
            else float("nan"),
            rotation_v_deg=grid.rotation_v_deg - rot if np.isfinite(grid.rotation_v_deg)
            else float("nan"))
    log.debug("deskew: rotated by %.4f deg to %dx%d", -rot, out_w, out_h)
    reason = "rotation only" if grid.found else (
        "rotation only, estimated without a grid (from trace rows/text), approximate")
    flat = None
    if grid.found:
        out, flat = _flatten(image_rgb, out, matrix, out_grid, fill)
        if flat is not None:
            reason += "; " + flat.reason
    return DeskewResult(image=out, matrix=matrix, rotation_deg=rot, perspective_corrected=False,
                        grid=out_grid, reason=reason, flatten=flat)


def _flatten(image_rgb: np.ndarray, out: np.ndarray, matrix: np.ndarray, grid: GridResult,
             fill: tuple[int, int, int]) -> tuple[np.ndarray, FlattenResult | None]:
    """Measure the grid's curl on the deskewed page ``out``; where it is large enough,
    resample the input once through the homography and the flattening together."""
    if not flatten_from_env():
        return out, None
    evidence, darkness = grid_evidence(out)
    flat = measure_flattening(evidence, float(grid.px_per_mm_x), float(grid.px_per_mm_y),
                              ink=darkness > FLATTEN_INK_DARKNESS)
    if flat.applied:
        map_x, map_y = compose_remap(matrix, flat, out.shape[1], out.shape[0])
        out = cv2.remap(image_rgb, map_x, map_y, cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_CONSTANT, borderValue=fill)
    return out, flat


def _deskew_perspective(image_rgb: np.ndarray, grid: GridResult,
                        reestimate: bool = False) -> DeskewResult:
    """Warp a photographed page with the grid's homography, then remove any residual rotation.

    The grid of the output is the one the grid stage measured on its rectified copy, or is
    re-measured on the output with ``reestimate``; if it is not found there, the homography
    is rejected and only the rotation is removed.
    """
    assert grid.homography is not None and grid.rectified_size is not None
    hom = np.asarray(grid.homography, dtype=np.float64)
    out_w, out_h = grid.rectified_size
    fill = paper_colour(image_rgb)
    out = cv2.warpPerspective(image_rgb, hom, (out_w, out_h), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=fill)
    if reestimate or grid.rectified_px_per_mm is None:
        out_grid = find_grid(out, perspective=False)
    else:
        px_x, px_y = grid.rectified_px_per_mm
        out_grid = dataclasses.replace(
            grid, px_per_mm_x=px_x, px_per_mm_y=px_y, rotation_deg=grid.rectified_rotation_deg,
            rotation_h_deg=float("nan"), rotation_v_deg=float("nan"), homography=None,
            rectified_size=None, rectified_px_per_mm=None, rectified_rotation_deg=0.0)
    if not out_grid.found:
        log.info("deskew: rectified page has no coherent grid; falling back to rotation only")
        plain = dataclasses.replace(grid, homography=None, rectified_size=None)
        res = deskew(image_rgb, plain)
        return dataclasses.replace(res, reason="perspective rejected (no grid after "
                                   "rectification); rotation only")
    matrix = hom
    resid = out_grid.rotation_deg
    if abs(resid) >= MIN_ROTATION_DEG:
        rot_m, rw, rh = rotation_matrix(out.shape, resid)
        out = cv2.warpAffine(out, rot_m[:2], (rw, rh), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=fill)
        matrix = rot_m @ hom
        out_grid = dataclasses.replace(out_grid, rotation_deg=0.0,
                                       rotation_h_deg=out_grid.rotation_h_deg - resid,
                                       rotation_v_deg=out_grid.rotation_v_deg - resid)
    bend = abs(out_grid.rotation_h_deg - out_grid.rotation_v_deg)
    reason = f"perspective corrected; residual rotation {resid:+.3f} deg removed"
    if np.isfinite(bend):
        reason += f"; line families {bend:.2f} deg from square"
    matrix = matrix / matrix[2, 2]
    out, flat = _flatten(image_rgb, out, matrix, out_grid, fill)
    if flat is not None:
        reason += "; " + flat.reason
    return DeskewResult(image=out, matrix=matrix, rotation_deg=grid.rotation_deg,
                        perspective_corrected=True, grid=out_grid, reason=reason, flatten=flat)


FLATTEN_INK_DARKNESS = 0.6
"""Darkness (paper 0, black 1) above which a pixel counts as trace or text ink, not grid, for
the flattening's lattice map. Chosen once, not tuned; it went in together with the lattice
share gate, and its own effect was not measured separately."""

FLATTEN_DEFAULT = True
"""The grid's bend is measured and, past the flattening's gates, undone unless
``ECGLENS_FLATTEN=0``."""


def flatten_from_env() -> bool:
    """Whether pages are flattened (``ECGLENS_FLATTEN`` 0/1, default
    :data:`FLATTEN_DEFAULT`)."""
    import os

    value = os.environ.get("ECGLENS_FLATTEN", "").strip()
    if value in ("0", "1"):
        return value == "1"
    return FLATTEN_DEFAULT
