"""Flatten stage: a dense warp that makes the grid of a rectified photo uniform.

A homography removes the camera's perspective but not the paper's curl and folds: on phone
photos the grid lines stay bent by up to a few mm after it, so px/mm changes along a row and
a lead's beats drift in time against the printed signal. This stage measures where the grid
lines are, everywhere on the page, and returns the displacement that puts them back on a
uniform lattice.

Method
------
1. The grid evidence map (grid colour, ink faded) is demodulated at the lattice frequency of
   each line family: multiplied by ``exp(-2πi x / P)`` (vertical lines, period ``P`` px) and
   low-passed over about one period. The phase of the result is the local shift of the line
   lattice, ``d = -phase · P / 2π``, known only modulo ``P``.
2. The shift is unwrapped by least squares on a coarse node lattice: every pair of
   neighbouring nodes gives the wrapped phase difference (unambiguous while the lattice
   bends by less than half a period between nodes), weighted by how clearly the grid is
   seen at both; a weak smoothness term fills nodes without a grid (trace rows, text, the
   desk) and removes node noise.
3. The period used is the 5 mm lattice where its lines are printed heavier than the 1 mm ones
   (most ECG paper), the 1 mm lattice otherwise, whichever is the stronger share of the map's
   energy.

The result is a displacement field per output pixel: the flattened page at ``(x, y)`` is the
rectified page at ``(x + dx, y + dy)``.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import cv2
import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import spsolve

log = logging.getLogger(__name__)

MIN_SHIFT_MM = 1.0
"""Largest grid displacement (mm, 99th percentile over the page's grid) below which the page
is not resampled. Set on pages known to be flat, the own renderer's and ECG-Image-Kit's
rotated scans (every 4th own seed-0 page, all ECG-Image-Kit pages): where their lattice is
clear (share ≥ :data:`MIN_APPLY_SHARE`) they measure up to 0.74 mm, the method's noise, and
resampling them by 0.56-0.69 mm fields cost 5-15 dB; one own scan with perspective measures
1.49 mm and is flattened (a known failure). The Paper2Pulse photos measure 0.85-9.3 mm."""

WORK_PERIOD_PX = 8.0
"""The evidence map is shrunk so that the demodulated period is about this many px (a 5 mm
lattice at 7 px/mm becomes 8 px: 4x less work, the phase is unchanged)."""

SHARE_PERCENTILE = 75.0
"""The page's typical lattice share is this percentile over its pixels: on a photo the desk
around the paper can be half the image (median share 0.05-0.07 on two rotated photos whose
paper shows a clear 5 mm lattice)."""

MIN_LATTICE_SHARE = 0.15
"""Share (:data:`SHARE_PERCENTILE`) of the grid map's local energy at the 5 mm lattice
frequency above which the 1 mm lattice is not tried (and half of it, the least share for any
measurement)."""

MIN_APPLY_SHARE = 0.2
"""Least lattice share (:data:`SHARE_PERCENTILE` of the map's energy at the lattice
frequency) for a measured field to be applied. On the same known-flat pages every field of
1-22 mm came with a share of 0.08-0.19 (faint or uniform grids at 100 px/inch, where the
phase is noise); the photos' lattices have 0.20-0.34."""

SMOOTH_WEIGHT = 0.05
"""Weight of the smoothness (second difference) term relative to a clearly seen neighbour
pair; the membrane (first difference) term is a tenth of it. Chosen once and not tuned
(no truth was used): it is weak enough that a clearly seen lattice decides the field, and it
only fills nodes without a grid."""


@dataclass(frozen=True)
class FlattenResult:
    """The grid's displacement field on a rectified page.

    Attributes
    ----------
    applied
        True when the page is to be resampled (some displacement ≥ :data:`MIN_SHIFT_MM`).
    shift_px
        ``(2, h, w)`` float32 displacement (x, y) in px on a node lattice (node ``(i, j)``
        at pixel ``(origin_px + j * step_px, origin_px + i * step_px)``), or None.
    step_px, origin_px
        Node spacing and first node's position, px of the rectified page.
    period_mm
        The lattice period demodulated (1 or 5 mm).
    max_shift_mm
        99th percentile of |displacement| over the nodes that see the grid.
    scale_spread
        5th-95th percentile spread of the local px/mm (x, y) relative to the page's, before
        flattening, over the nodes that see the grid.
    reason
        What was decided and why.
    """

    applied: bool
    shift_px: np.ndarray | None = dataclasses.field(repr=False)
    step_px: float
    origin_px: float
    period_mm: float
    max_shift_mm: float
    scale_spread: tuple[float, float]
    reason: str

    def dense_shift(self, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        """Per-pixel displacement ``(dx, dy)`` (float32 ``(height, width)``) of a page of
        that size."""
        if self.shift_px is None:
            zero = np.zeros((height, width), np.float32)
            return zero, zero.copy()
        xs = (np.arange(width, dtype=np.float32) - self.origin_px) / self.step_px
        ys = (np.arange(height, dtype=np.float32) - self.origin_px) / self.step_px
        map_x = np.broadcast_to(xs[None, :], (height, width)).astype(np.float32)
        map_y = np.broadcast_to(ys[:, None], (height, width)).astype(np.float32)
        dx, dy = (cv2.remap(plane, map_x, map_y, cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE) for plane in self.shift_px)
        return dx, dy

    def to_dict(self) -> dict:
        return {"applied": self.applied, "period_mm": self.period_mm,
                "max_shift_mm": round(self.max_shift_mm, 3),
                "scale_spread": [round(v, 4) for v in self.scale_spread],
                "reason": self.reason}


def _not_flattened(reason: str) -> FlattenResult:
    return FlattenResult(False, None, 0.0, 0.0, float("nan"), float("nan"),
                         (float("nan"), float("nan")), reason)


def _demodulate(gmap: np.ndarray, period_px: float, axis: int, sigma_px: float
                ) -> tuple[np.ndarray, np.ndarray]:
    """Complex lattice coefficient of lines across ``axis`` (1: vertical lines) and the local
    energy of the map, both low-passed with ``sigma_px``."""
    n = gmap.shape[axis]
    coord = np.arange(n, dtype=np.float64)
    carrier = np.exp(-2j * np.pi * coord / period_px)
    g = gmap - cv2.GaussianBlur(gmap, (0, 0), period_px)
    c = g * (carrier[None, :] if axis == 1 else carrier[:, None])
    re = cv2.GaussianBlur(c.real.astype(np.float32), (0, 0), sigma_px)
    im = cv2.GaussianBlur(c.imag.astype(np.float32), (0, 0), sigma_px)
    energy = cv2.GaussianBlur(g * g, (0, 0), sigma_px)
    return re + 1j * im, energy


def _unwrap(coef: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Least-squares unwrapped phase (radians) of ``coef`` on its node lattice."""
    h, w = coef.shape
    idx = np.arange(h * w).reshape(h, w)
    rows, cols, vals, rhs, wts = [], [], [], [], []
    n_eq = 0

    def add_pairs(a: np.ndarray, b: np.ndarray, ca: np.ndarray, cb: np.ndarray,
                  wa: np.ndarray, wb: np.ndarray) -> None:
        nonlocal n_eq
        k = a.size
        eq = np.arange(n_eq, n_eq + k)
        rows.extend([eq, eq])
        cols.extend([b.ravel(), a.ravel()])
        vals.extend([np.ones(k), -np.ones(k)])
        rhs.append(np.angle(cb * np.conj(ca)).ravel())
        wts.append(np.minimum(wa, wb).ravel())
        n_eq += k

    add_pairs(idx[:, :-1], idx[:, 1:], coef[:, :-1], coef[:, 1:], weight[:, :-1], weight[:, 1:])
    add_pairs(idx[:-1, :], idx[1:, :], coef[:-1, :], coef[1:, :], weight[:-1, :], weight[1:, :])
    data_w = np.concatenate(wts)
    # smoothness: second differences (bending) and a weaker first difference (membrane) that
    # carries the field flat into nodes without a grid
    reg_rows, reg_cols, reg_vals, reg_w = [], [], [], []
    n_reg = 0

    def add_stencil(ids: list[np.ndarray], coefs: list[float], wt: float) -> None:
        nonlocal n_reg
        k = ids[0].size
        eq = np.arange(n_reg, n_reg + k)
        for i, c in zip(ids, coefs, strict=True):
            reg_rows.append(eq)
            reg_cols.append(i.ravel())
            reg_vals.append(np.full(k, c))
        reg_w.append(np.full(k, wt))
        n_reg += k

    bend = SMOOTH_WEIGHT
    add_stencil([idx[:, :-2], idx[:, 1:-1], idx[:, 2:]], [1.0, -2.0, 1.0], bend)
    add_stencil([idx[:-2, :], idx[1:-1, :], idx[2:, :]], [1.0, -2.0, 1.0], bend)
    add_stencil([idx[:, :-1], idx[:, 1:]], [1.0, -1.0], 0.1 * bend)
    add_stencil([idx[:-1, :], idx[1:, :]], [1.0, -1.0], 0.1 * bend)
    # a tiny pull towards 0 pins the constant the field is otherwise defined up to
    add_stencil([idx], [1.0], 1e-4 * bend)
    a_data = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                           shape=(n_eq, h * w))
    a_reg = sp.csr_matrix((np.concatenate(reg_vals),
                           (np.concatenate(reg_rows), np.concatenate(reg_cols))),
                          shape=(n_reg, h * w))
    w_reg = np.concatenate(reg_w)
    a = sp.vstack([sp.diags(data_w) @ a_data, sp.diags(w_reg) @ a_reg]).tocsr()
    b = np.concatenate([data_w * np.concatenate(rhs), np.zeros(n_reg)])
    sol = spsolve((a.T @ a).tocsc(), a.T @ b)
    return np.asarray(sol).reshape(h, w)


def measure_flattening(grid_map: np.ndarray, px_per_mm_x: float, px_per_mm_y: float,
                       ink: np.ndarray | None = None) -> FlattenResult:
    """Displacement that puts the grid lines of a rectified page on a uniform lattice.

    Parameters
    ----------
    grid_map
        ``(H, W)`` float32 grid evidence of the rectified page (grid lines bright).
    px_per_mm_x, px_per_mm_y
        The page's px/mm (the lattice the grid stage measured at its centre).
    ink
        Optional ``(H, W)`` bool: trace and text ink, replaced by the map's median before
        demodulating (a trace baseline is a line at no lattice position: on grey grids it
        pulled the horizontal lattice's phase and the flattening bent the traces).
    """
    if not (px_per_mm_x > 0 and px_per_mm_y > 0):
        return _not_flattened("no grid scale")
    mean_ppmm = 0.5 * (px_per_mm_x + px_per_mm_y)
    chosen = None
    shares: dict[float, float] = {}
    for period_mm in (5.0, 1.0):
        # the map is shrunk so the period is about WORK_PERIOD_PX (never below 5 px)
        factor = max(1.0, period_mm * mean_ppmm / WORK_PERIOD_PX)
        if period_mm * mean_ppmm / factor < 5.0:
            continue
        small = cv2.resize(grid_map, None, fx=1.0 / factor, fy=1.0 / factor,
                           interpolation=cv2.INTER_AREA)
        if ink is not None:
            frac = cv2.resize(ink.astype(np.float32), (small.shape[1], small.shape[0]),
                              interpolation=cv2.INTER_AREA)
            small = small * (1.0 - frac) + frac * float(np.median(small))
        pers = (period_mm * px_per_mm_x / factor, period_mm * px_per_mm_y / factor)
        demods = [_demodulate(small, per, axis, per) for axis, per in zip((1, 0), pers,
                                                                          strict=True)]
        share = [np.abs(c) / np.sqrt(e + 1e-12) for c, e in demods]
        shares[period_mm] = min(float(np.percentile(v, SHARE_PERCENTILE)) for v in share)
        if chosen is None or shares[period_mm] > shares[chosen[0]]:
            chosen = (period_mm, factor, small.shape, pers, demods, share)
        if shares[period_mm] >= MIN_LATTICE_SHARE:
            break  # the 5 mm lattice is clear: the costlier 1 mm one is not tried
    if chosen is None:
        return _not_flattened("grid too fine to demodulate")
    period_mm, factor, _shape, pers, demods, share_maps = chosen
    if shares[period_mm] < 0.5 * MIN_LATTICE_SHARE:
        return _not_flattened(f"no clear grid lattice (share {shares[period_mm]:.3f})")
    # nodes half a period apart: neighbours then differ by less than half a period even
    # where the lattice bends sharply (a fold), so their wrapped phase difference holds
    step = max(2, round(0.5 * min(pers)))
    shifts = []
    weights = None
    for (coef, _energy), share, per in zip(demods, share_maps, pers, strict=True):
        c = coef[::step, ::step]
        s = share[::step, ::step]
        # a node sees the grid when its lattice share is above half the page's typical
        # share on the paper; below, the phase is mostly noise
        typical = max(1e-9, float(np.percentile(s, SHARE_PERCENTILE)))
        wgt = np.clip((s - 0.5 * typical) / (0.5 * typical), 0.0, 1.0)
        phase = _unwrap(c, wgt)
        shifts.append(-phase * per / (2 * np.pi) * factor)  # full-res px
        weights = wgt if weights is None else np.minimum(weights, wgt)
    assert weights is not None
    shift = np.stack(shifts).astype(np.float32)
    seen = weights > 0.5
    if seen.sum() < 16:
        return _not_flattened("too few nodes see the grid")
    # the field is defined up to a constant: none where the grid is seen
    for k in range(2):
        shift[k] -= float(np.median(shift[k][seen]))
    step_full = step * factor
    mag_mm = np.hypot(shift[0] / px_per_mm_x, shift[1] / px_per_mm_y)
    max_shift = float(np.percentile(mag_mm[seen], 99))
    gx = np.gradient(shift[0], step_full, axis=1)
    gy = np.gradient(shift[1], step_full, axis=0)
    spread = (float(np.percentile(gx[seen], 95) - np.percentile(gx[seen], 5)),
              float(np.percentile(gy[seen], 95) - np.percentile(gy[seen], 5)))
    applied = max_shift >= MIN_SHIFT_MM and shares[period_mm] >= MIN_APPLY_SHARE
    reason = (f"{period_mm:.0f} mm lattice (share {shares[period_mm]:.2f}); grid displaced up "
              f"to {max_shift:.2f} mm, local px/mm spread {100 * spread[0]:.1f} % (x) / "
              f"{100 * spread[1]:.1f} % (y)")
    if applied:
        reason += "; flattened"
    elif max_shift < MIN_SHIFT_MM:
        reason += "; below the resampling threshold"
    else:
        reason += "; lattice too faint to trust the field, not flattened"
    log.debug("flatten: %s", reason)
    return FlattenResult(applied, shift, float(step_full), 0.5 * factor - 0.5, period_mm,
                         max_shift, spread, reason)


def compose_remap(matrix: np.ndarray, flat: FlattenResult, width: int, height: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``cv2.remap`` maps (float32 ``(height, width)``) from the flattened page to the input
    image: the input pixel is ``matrix⁻¹ · (x + dx, y + dy)``. One resampling in all."""
    dx, dy = flat.dense_shift(width, height)
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    u, v = xs + dx, ys + dy
    inv = np.linalg.inv(np.asarray(matrix, dtype=np.float64))
    den = inv[2, 0] * u + inv[2, 1] * v + inv[2, 2]
    map_x = ((inv[0, 0] * u + inv[0, 1] * v + inv[0, 2]) / den).astype(np.float32)
    map_y = ((inv[1, 0] * u + inv[1, 1] * v + inv[1, 2]) / den).astype(np.float32)
    return map_x, map_y


def flatten_points(flat: FlattenResult, xy: np.ndarray, inverse: bool = False) -> np.ndarray:
    """Map ``(N, 2)`` flattened-page px to rectified-page px (``inverse``: the other way,
    by fixed-point iteration; the field is smooth and small)."""
    pts = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    field = flat.shift_px
    if field is None:
        return pts.copy()

    def shift_at(p: np.ndarray) -> np.ndarray:
        h, w = field.shape[1:]
        j = np.clip((p[:, 0] - flat.origin_px) / flat.step_px, 0, w - 1)
        i = np.clip((p[:, 1] - flat.origin_px) / flat.step_px, 0, h - 1)
        j0, i0 = np.floor(j).astype(int), np.floor(i).astype(int)
        j1, i1 = np.minimum(j0 + 1, w - 1), np.minimum(i0 + 1, h - 1)
        fj, fi = j - j0, i - i0
        out = np.empty_like(p)
        for k in range(2):
            f = field[k]
            out[:, k] = ((1 - fi) * ((1 - fj) * f[i0, j0] + fj * f[i0, j1])
                         + fi * ((1 - fj) * f[i1, j0] + fj * f[i1, j1]))
        return out

    if not inverse:
        return pts + shift_at(pts)
    q = pts.copy()
    for _ in range(6):
        q = pts - shift_at(q)
    return q

