"""Ground-truth paper-ECG renderer: draws an :class:`ECGRecord` as a printed 12-lead page.

The renderer is the digitizer's inverse. It returns the page image together with the exact
truth of what was printed (a 500-Hz record, NaN wherever a lead was not printed) and the page
geometry (px/mm per axis, each row's 0 mV line, lead/pulse/label boxes), so that a reader can be
scored against it.

Page model (all lengths in mm, origin at the page's top-left corner, x to the right, y down):

* A4 (297 x 210 mm) or US letter (279.4 x 215.9 mm) landscape, rasterised at ``dpi``.
* The grid area holds a calibration zone (2 mm + pulse width + 3 mm) followed by the 250-mm
  time axis: 10 s at 25 mm/s, 5 s at 50 mm/s. Minor grid lines every 1 mm, major every 5 mm,
  both counted from the grid area's top-left corner; the time axis starts on a grid line.
* Rows are spread evenly over the grid height; a row's 0 mV line sits at 55 % of its band.
  Traces are never clipped to their row.

Pixel convention: OpenCV's, pixel ``(i, j)`` has its centre at ``x = j, y = i``; a point at
``x_mm`` on the page is at ``x_mm * px_per_mm`` px.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import math
import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ecglens.core.errors import EcglensError, InputError
from ecglens.core.layouts import Layout, get_layout
from ecglens.core.record import STANDARD_LEADS, ECGRecord

TRUTH_FS_HZ = 500.0
"""Sampling rate of the truth record (and of the signal the renderer draws)."""
TIME_AXIS_MM = 250.0
"""Width of the printed time axis: 10 s at 25 mm/s."""
PAPER_SIZES_MM: dict[str, tuple[float, float]] = {"a4": (297.0, 210.0), "letter": (279.4, 215.9)}
"""Landscape page sizes (width, height) in mm."""

GRID_COLOURS: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]] | None] = {
    # name: (minor line RGB, major line RGB)
    "red": ((247, 178, 178), (228, 96, 96)),
    "pink": ((250, 208, 222), (236, 150, 176)),
    "orange": ((250, 205, 160), (238, 150, 80)),
    "green": ((186, 228, 190), (108, 182, 118)),
    "blue": ((196, 212, 244), (118, 150, 222)),
    "grey": ((214, 214, 214), (150, 150, 150)),
    "bw": ((120, 120, 120), (175, 175, 175)),
    "none": None,
}
"""Grid colours; ``bw`` prints grey dots at minor intersections and light major lines."""
GRID_NAMES: tuple[str, ...] = tuple(GRID_COLOURS)

_HERSHEY: dict[str, int] = {
    "hershey_simplex": cv2.FONT_HERSHEY_SIMPLEX,
    "hershey_duplex": cv2.FONT_HERSHEY_DUPLEX,
    "hershey_complex": cv2.FONT_HERSHEY_COMPLEX,
    "hershey_triplex": cv2.FONT_HERSHEY_TRIPLEX,
    "hershey_plain": cv2.FONT_HERSHEY_PLAIN,
    "hershey_complex_small": cv2.FONT_HERSHEY_COMPLEX_SMALL,
    "hershey_simplex_italic": cv2.FONT_HERSHEY_SIMPLEX | cv2.FONT_ITALIC,
}
_TRUETYPE: dict[str, tuple[str, ...]] = {
    # name: candidate files (first found wins; Pillow's bundled scalable font is the fallback)
    "sans": ("DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
    "sans_bold": ("DejaVuSans-Bold.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"),
    "sans_condensed": ("DejaVuSansCondensed.ttf",
                       "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed.ttf"),
    "serif": ("DejaVuSerif.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf"),
    "mono": ("DejaVuSansMono.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"),
}
FONT_NAMES: tuple[str, ...] = (*_HERSHEY, *_TRUETYPE)
LABEL_POSITIONS: tuple[str, ...] = ("top-left", "baseline", "bottom-left")

_PULSE_PRE_MM = 2.0
_PULSE_POST_MM = 3.0
_RIGHT_PAD_MM = 2.0
_GRID_TOP_MM = 32.0
_GRID_BOTTOM_GAP_MM = {"a4": 13.0, "letter": 13.9}
_BASELINE_FRACTION = 0.55
_INK_RGB = (18, 18, 24)


class RenderError(EcglensError, ValueError):
    """Invalid render settings (unknown grid/font/paper, dpi out of range, bad speed/gain)."""


@dataclasses.dataclass(frozen=True)
class RenderSettings:
    """How to print a page.

    Attributes
    ----------
    layout
        Layout name from :data:`ecglens.core.layouts.LAYOUTS`.
    speed_mm_s, gain_mm_mv
        Paper speed (mm/s) and amplitude gain (mm/mV).
    dpi
        Raster resolution, 72-600 dots per inch.
    grid
        Grid colour, one of :data:`GRID_NAMES`.
    font
        Label/text font, one of :data:`FONT_NAMES`.
    trace_width_mm
        Printed trace line width in mm.
    label_position
        One of :data:`LABEL_POSITIONS`.
    header, settings_line, pulse, separators
        Print the header block, the settings line, the calibration pulses, the cell separators.
    paper
        ``"a4"`` or ``"letter"`` (landscape).
    minor_grid
        ``"lines"`` or ``"dots"`` (minor grid as dots at the 1-mm intersections).
    grid_extent
        ``"area"`` (grid only behind the traces) or ``"page"`` (pre-printed paper: the grid
        covers the whole sheet, header and margins included).
    start_s
        Where in the record the printed time axis starts (s).
    pulse_width_s, pulse_feet
        Calibration pulse width (s; 0.2 is the standard) and whether it is drawn with its
        0 mV lead-in and lead-out joined to the trace (some printers draw a narrower pulse
        on its own, with no foot lines).
    """

    layout: str = "3x4+1"
    speed_mm_s: float = 25.0
    gain_mm_mv: float = 10.0
    dpi: float = 200.0
    grid: str = "red"
    font: str = "hershey_simplex"
    trace_width_mm: float = 0.3
    label_position: str = "top-left"
    header: bool = True
    settings_line: bool = True
    pulse: bool = True
    separators: bool = True
    paper: str = "a4"
    minor_grid: str = "lines"
    grid_extent: str = "area"
    start_s: float = 0.0
    pulse_width_s: float = 0.2
    pulse_feet: bool = True

    def validated(self) -> RenderSettings:
        """Check every field; raise :class:`RenderError`/``LayoutError`` naming valid values."""
        get_layout(self.layout)
        if not 72.0 <= float(self.dpi) <= 600.0:
            raise RenderError(f"dpi must be within 72-600, got {self.dpi}")
        if self.grid not in GRID_COLOURS:
            raise RenderError(f"unknown grid {self.grid!r}; valid grids: {', '.join(GRID_NAMES)}")
        if self.font not in FONT_NAMES:
            raise RenderError(f"unknown font {self.font!r}; valid fonts: {', '.join(FONT_NAMES)}")
        if self.label_position not in LABEL_POSITIONS:
            raise RenderError(f"unknown label_position {self.label_position!r}; valid: "
                              f"{', '.join(LABEL_POSITIONS)}")
        if self.paper not in PAPER_SIZES_MM:
            raise RenderError(f"unknown paper {self.paper!r}; valid: {', '.join(PAPER_SIZES_MM)}")
        if self.grid_extent not in ("area", "page"):
            raise RenderError(f"grid_extent must be 'area' or 'page', got {self.grid_extent!r}")
        if self.minor_grid not in ("lines", "dots"):
            raise RenderError(f"minor_grid must be 'lines' or 'dots', got {self.minor_grid!r}")
        if not 5.0 <= float(self.speed_mm_s) <= 100.0:
            raise RenderError(f"speed_mm_s must be within 5-100 mm/s, got {self.speed_mm_s}")
        if not 1.0 <= float(self.gain_mm_mv) <= 40.0:
            raise RenderError(f"gain_mm_mv must be within 1-40 mm/mV, got {self.gain_mm_mv}")
        if not 0.05 <= float(self.trace_width_mm) <= 2.0:
            raise RenderError(f"trace_width_mm must be within 0.05-2 mm, got {self.trace_width_mm}")
        if self.start_s < 0:
            raise RenderError(f"start_s must be >= 0, got {self.start_s}")
        if not 0.04 <= float(self.pulse_width_s) <= 0.4:
            raise RenderError(f"pulse_width_s must be within 0.04-0.4 s, got {self.pulse_width_s}")
        return self

    @property
    def px_per_mm(self) -> float:
        """Pixels per millimetre at this dpi."""
        return float(self.dpi) / 25.4

    @property
    def duration_s(self) -> float:
        """Printed duration: :data:`TIME_AXIS_MM` / speed."""
        return TIME_AXIS_MM / float(self.speed_mm_s)


@dataclasses.dataclass(frozen=True)
class RenderedPage:
    """A rendered page and its ground truth.

    Attributes
    ----------
    image
        ``(H, W, 3)`` uint8 RGB.
    truth
        12 standard leads at 500 Hz over exactly the printed duration; NaN where not printed.
    geometry
        JSON-ready page geometry in final-image pixels (see ``docs/renderer.md``).
    settings
        The settings the page was rendered with.
    trace_mask
        Only when asked for (``render_page(..., trace_mask=True)``): ``(H, W)`` uint8 pen
        coverage (0-255) of the trace polylines alone (signal, calibration pulses, separator
        ticks; no text), registered with ``image``; distortions warp it with the image.
    """

    image: np.ndarray
    truth: ECGRecord
    geometry: dict[str, Any]
    settings: RenderSettings = dataclasses.field(default_factory=RenderSettings)
    trace_mask: np.ndarray | None = dataclasses.field(default=None, repr=False)

    def replace(self, **changes: Any) -> RenderedPage:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


# ============================================================================ page geometry
@dataclasses.dataclass(frozen=True)
class PageFrame:
    """Where things go on the page, in mm (see the module docstring)."""

    page_w_mm: float
    page_h_mm: float
    grid_x0_mm: float
    grid_y0_mm: float
    grid_w_mm: float
    grid_h_mm: float
    time_x0_mm: float
    pulse_x0_mm: float
    pulse_w_mm: float
    row_pitch_mm: float
    baselines_mm: tuple[float, ...]


def page_frame(settings: RenderSettings, layout: Layout) -> PageFrame:
    """Lay the grid, calibration zone and rows out on the page (mm)."""
    page_w, page_h = PAPER_SIZES_MM[settings.paper]
    pulse_w = settings.pulse_width_s * settings.speed_mm_s
    zone = math.ceil(_PULSE_PRE_MM + pulse_w + _PULSE_POST_MM)
    grid_w = zone + TIME_AXIS_MM + _RIGHT_PAD_MM
    grid_x0 = math.floor((page_w - grid_w) / 2.0 * 2.0) / 2.0
    grid_y0 = _GRID_TOP_MM
    grid_h = page_h - grid_y0 - _GRID_BOTTOM_GAP_MM[settings.paper]
    grid_h = math.floor(grid_h / 5.0) * 5.0
    pitch = grid_h / layout.n_rows
    baselines = tuple(grid_y0 + pitch * (r + _BASELINE_FRACTION) for r in range(layout.n_rows))
    time_x0 = grid_x0 + zone
    pulse_x0 = time_x0 - _PULSE_POST_MM - pulse_w
    pulse_x0 = max(grid_x0 + 0.5, pulse_x0)
    return PageFrame(page_w, page_h, grid_x0, grid_y0, grid_w, grid_h, time_x0, pulse_x0,
                     pulse_w, pitch, baselines)


# ============================================================================ drawing helpers
def _line_coverage(n_px: int, px_per_mm: float, origin_mm: float, n_lines: int,
                   period_mm: float, width_px: float, every: int = 1,
                   skip_every: int = 0) -> np.ndarray:
    """Fraction of each pixel (along one axis) covered by periodic lines of ``width_px``.

    Lines sit at ``origin_mm + k * period_mm`` for ``k = 0..n_lines`` with ``k % every == 0``
    and (if ``skip_every``) ``k % skip_every != 0``.
    """
    coverage = np.zeros(n_px, dtype=np.float32)
    index = np.arange(n_lines + 1)
    keep = index % every == 0
    if skip_every:
        keep &= index % skip_every != 0
    centres_px = ((origin_mm + index[keep] * period_mm) * px_per_mm)[:, None]
    half = width_px / 2.0
    reach = math.ceil(half + 1)
    pix = np.round(centres_px).astype(np.int64) + np.arange(-reach, reach + 1)[None, :]
    cover = np.clip(np.minimum(pix + 0.5, centres_px + half)
                    - np.maximum(pix - 0.5, centres_px - half), 0.0, 1.0)
    ok = (pix >= 0) & (pix < n_px)
    np.maximum.at(coverage, pix[ok], cover[ok].astype(np.float32))
    return coverage


def grid_lines_mm(frame: PageFrame, extent: str
                  ) -> tuple[float, float, int, int, tuple[float, float, float, float]]:
    """First grid line (x, y mm), number of 1-mm steps per axis and the printed grid box (mm).

    ``extent="area"``: the grid area only; ``"page"``: pre-printed paper, grid over the whole
    sheet, with the same line positions (major lines stay on the area's 5-mm lattice).
    """
    if extent == "area":
        box = (frame.grid_x0_mm, frame.grid_y0_mm, frame.grid_x0_mm + frame.grid_w_mm,
               frame.grid_y0_mm + frame.grid_h_mm)
        return (frame.grid_x0_mm, frame.grid_y0_mm, round(frame.grid_w_mm),
                round(frame.grid_h_mm), box)
    ox = frame.grid_x0_mm - math.ceil(frame.grid_x0_mm / 5.0) * 5.0
    oy = frame.grid_y0_mm - math.ceil(frame.grid_y0_mm / 5.0) * 5.0
    n_x = math.ceil(frame.page_w_mm - ox)
    n_y = math.ceil(frame.page_h_mm - oy)
    return ox, oy, n_x, n_y, (0.0, 0.0, frame.page_w_mm, frame.page_h_mm)


def _draw_grid(image: np.ndarray, frame: PageFrame, settings: RenderSettings) -> None:
    """Composite the grid onto ``image`` (float32 RGB in [0, 255]) in place."""
    colours = GRID_COLOURS[settings.grid]
    if colours is None:
        return
    minor_rgb, major_rgb = (np.array(c, dtype=np.float32) for c in colours)
    s = settings.px_per_mm
    h_px, w_px = image.shape[:2]
    minor_w = max(0.10 * s, 0.9)
    major_w = max(0.22 * s, 1.4)
    ox_mm, oy_mm, n_x, n_y, box_mm = grid_lines_mm(frame, settings.grid_extent)
    x0, y0, x1, y1 = (v * s for v in box_mm)
    # extent of the grid area as a soft mask (edges covered by half pixels)
    def extent(n: int, a: float, b: float, pad: float) -> np.ndarray:
        idx = np.arange(n, dtype=np.float32)
        return np.clip(np.minimum(idx + 0.5, b + pad) - np.maximum(idx - 0.5, a - pad), 0, 1)

    ex = extent(w_px, x0, x1, major_w / 2)
    ey = extent(h_px, y0, y1, major_w / 2)
    dots = settings.minor_grid == "dots" or settings.grid == "bw"
    vx_minor = _line_coverage(w_px, s, ox_mm, n_x, 1.0, minor_w, skip_every=5) * ex
    hy_minor = _line_coverage(h_px, s, oy_mm, n_y, 1.0, minor_w, skip_every=5) * ey
    vx_major = _line_coverage(w_px, s, ox_mm, n_x, 1.0, major_w, every=5) * ex
    hy_major = _line_coverage(h_px, s, oy_mm, n_y, 1.0, major_w, every=5) * ey
    if dots:
        dot_w = max(0.25 * s, 1.2)
        vx_dot = _line_coverage(w_px, s, ox_mm, n_x, 1.0, dot_w) * ex
        hy_dot = _line_coverage(h_px, s, oy_mm, n_y, 1.0, dot_w) * ey
        alpha_minor = hy_dot[:, None] * vx_dot[None, :]
    else:
        alpha_minor = 1.0 - (1.0 - hy_minor[:, None]) * (1.0 - vx_minor[None, :])
    alpha_major = 1.0 - (1.0 - hy_major[:, None] * ex[None, :]) * (
        1.0 - vx_major[None, :] * ey[:, None])
    if not dots:
        alpha_minor *= ey[:, None] * ex[None, :]
    for c in range(3):
        channel = image[..., c]
        channel -= alpha_minor * (channel - minor_rgb[c])
        channel -= alpha_major * (channel - major_rgb[c])


def _text_scale(font: int, cap_px: float) -> float:
    (_, h), _ = cv2.getTextSize("H", font, 1.0, 1)
    return cap_px / max(h, 1)


@lru_cache(maxsize=32)
def _truetype(name: str, size_px: int) -> Any:
    from PIL import ImageFont

    for candidate in _TRUETYPE[name]:
        try:
            return ImageFont.truetype(candidate, size_px)
        except OSError:
            continue
    return ImageFont.load_default(size=size_px)


class _Ink:
    """A single-channel ink layer (0 = paper, 1 = ink) that traces and text are drawn onto.

    With ``keep_traces`` the polylines are also drawn onto ``traces`` (trace-only layer)."""

    SHIFT = 4

    def __init__(self, h_px: int, w_px: int, px_per_mm: float, font: str,
                 keep_traces: bool = False) -> None:
        self.mask = np.zeros((h_px, w_px), dtype=np.uint8)
        self.traces = np.zeros((h_px, w_px), dtype=np.uint8) if keep_traces else None
        self.px_per_mm = px_per_mm
        self.font = font

    def polyline(self, xy_px: np.ndarray, width_px: float) -> None:
        """Anti-aliased polyline through ``xy_px`` ((n, 2) float px), sub-pixel vertices."""
        if len(xy_px) < 2:
            return
        pts = np.round(xy_px * (1 << self.SHIFT)).astype(np.int32)
        # collapse repeated vertices (cheap; keeps every distinct sample)
        keep = np.ones(len(pts), dtype=bool)
        keep[1:] = np.any(pts[1:] != pts[:-1], axis=1)
        pts = pts[keep]
        if len(pts) < 2:
            pts = np.vstack([pts, pts])
        thickness = max(1, round(width_px))
        value = 255 if width_px >= 1.0 else max(64, round(255 * width_px))
        for layer in (self.mask, self.traces):
            if layer is not None:
                cv2.polylines(layer, [pts.reshape(-1, 1, 2)], False, value, thickness,
                              cv2.LINE_AA, self.SHIFT)

    def text(self, text: str, x_px: float, y_bottom_px: float, cap_mm: float,
             weight: float = 1.0) -> list[float]:
        """Draw ``text`` with its baseline at ``y_bottom_px``; return its box [x0, y0, x1, y1]."""
        cap_px = cap_mm * self.px_per_mm
        if self.font in _HERSHEY:
            font = _HERSHEY[self.font]
            scale = _text_scale(font, cap_px)
            thick = max(1, round(0.12 * cap_px * weight))
            (w, h), base = cv2.getTextSize(text, font, scale, thick)
            org = (round(x_px), round(y_bottom_px))
            cv2.putText(self.mask, text, org, font, scale, 255, thick, cv2.LINE_AA)
            return [org[0], org[1] - h - thick / 2, org[0] + w, org[1] + base]
        from PIL import Image, ImageDraw

        size_px = max(6, round(cap_px / 0.73))
        pil_font = _truetype(self.font, size_px)
        left, top, right, bottom = pil_font.getbbox(text, anchor="ls")
        pad = 2
        w, h = int(right - left) + 2 * pad, int(bottom - top) + 2 * pad
        canvas = Image.new("L", (w, h), 0)
        ImageDraw.Draw(canvas).text((pad - left, pad - top), text, fill=255, font=pil_font,
                                    anchor="ls")
        x0 = round(x_px + left) - pad
        y0 = round(y_bottom_px + top) - pad
        patch = np.asarray(canvas)
        H, W = self.mask.shape
        xa, ya = max(x0, 0), max(y0, 0)
        xb, yb = min(x0 + w, W), min(y0 + h, H)
        if xb > xa and yb > ya:
            region = self.mask[ya:yb, xa:xb]
            np.maximum(region, patch[ya - y0:yb - y0, xa - x0:xb - x0], out=region)
        return [x_px + left, y_bottom_px + top, x_px + right, y_bottom_px + bottom]


# ============================================================================ header text
def _estimate_rate_bpm(signal_mv: np.ndarray, fs: float) -> float | None:
    """Rough ventricular rate from one lead (for the header text only)."""
    from scipy.signal import find_peaks

    x = signal_mv[np.isfinite(signal_mv)]
    if len(x) < fs * 2:
        return None
    energy = np.abs(np.diff(x))
    kernel = np.ones(int(0.08 * fs)) / int(0.08 * fs)
    energy = np.convolve(energy, kernel, mode="same")
    peaks, _ = find_peaks(energy, height=0.35 * np.percentile(energy, 99.5),
                          distance=int(0.3 * fs))
    if len(peaks) < 2:
        return None
    return float(60.0 * fs / np.median(np.diff(peaks)))


def _header_lines(record: ECGRecord, truth: ECGRecord, seed: int) -> list[list[str]]:
    """Fake but plausible header text columns (name/ID/date, rate, intervals)."""
    rng = np.random.default_rng(seed)
    names = ["DOE, JOHN", "ROE, JANE", "SMITH, A.", "MUSTERMANN, M.", "ROSSI, M.", "DUPONT, C."]
    date = datetime.date(2015, 1, 1) + datetime.timedelta(days=int(rng.integers(0, 3650)))
    clock = f"{int(rng.integers(7, 20)):02d}:{int(rng.integers(0, 60)):02d}"
    rate = _estimate_rate_bpm(truth.lead("II"), truth.fs) if truth.has_lead("II") else None
    rate_text = f"{rate:.0f}" if rate else "---"
    pr = int(rng.integers(130, 200))
    qrs = int(rng.integers(80, 110))
    # plausible QT for the rate (QTc ~ 390-450 ms, Bazett), not a measurement
    rr_s = 60.0 / rate if rate else 1.0
    qt = round(float(rng.uniform(390, 450)) * math.sqrt(rr_s))
    qtc = round(qt / math.sqrt(rr_s))
    age = f"{record.age:.0f}" if record.age is not None else str(int(rng.integers(30, 85)))
    sex = {"M": "Male", "F": "Female"}.get(record.sex or "", "")
    return [
        [f"Name: {names[int(rng.integers(len(names)))]}",
         f"ID: {int(rng.integers(1_000_000, 10_000_000))}",
         f"Age: {age} yr   {sex}", f"{date.isoformat()}  {clock}"],
        [f"Vent. rate   {rate_text} bpm", f"PR interval   {pr} ms", f"QRS duration   {qrs} ms",
         f"QT/QTc   {qt}/{qtc} ms"],
        ["Unconfirmed report", "Sinus rhythm" if rate and 50 <= rate <= 100 else
         "Rhythm: see strip", "", "Referred by: ---"],
    ]


# ============================================================================ render
def _prepare_signal(record: ECGRecord, settings: RenderSettings) -> tuple[np.ndarray, int]:
    """The 12 standard leads at 500 Hz over the printed duration (NaN beyond the record)."""
    rec12 = record.resample(TRUTH_FS_HZ).standard12() if record.fs != TRUTH_FS_HZ else \
        record.standard12()
    n = round(settings.duration_s * TRUTH_FS_HZ)
    start = round(settings.start_s * TRUTH_FS_HZ)
    out = np.full((n, 12), np.nan)
    chunk = rec12.signal[start:start + n]
    out[: len(chunk)] = chunk
    return out, n


def _finite_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    padded = np.concatenate([[False], mask, [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def _r(values: Sequence[float]) -> list[float]:
    return [round(float(v), 3) for v in values]


@dataclasses.dataclass(frozen=True)
class _DrawnRow:
    """Geometry of one drawn row (clean-page px)."""

    row: dict[str, Any]
    pulse: dict[str, Any] | None
    leads: list[dict[str, Any]]
    labels: list[dict[str, Any]]


_LABEL_CAP_MM = 3.0


def _draw_row(ink: _Ink, frame: PageFrame, settings: RenderSettings, layout: Layout, row: int,
              signal: np.ndarray, truth: np.ndarray) -> _DrawnRow:
    """Draw one row (pulse, cells, separators, labels); fill ``truth`` with what was drawn."""
    s = settings.px_per_mm
    n = signal.shape[0]
    gain_px = settings.gain_mm_mv * s
    trace_w_px = settings.trace_width_mm * s
    half = trace_w_px / 2
    x0_px = frame.time_x0_mm * s
    x1_px = x0_px + TIME_AXIS_MM * s
    t_px = x0_px + np.arange(n) / TRUTH_FS_HZ * settings.speed_mm_s * s
    base_px = frame.baselines_mm[row] * s
    y_top = base_px - _BASELINE_FRACTION * frame.row_pitch_mm * s
    y_bottom = base_px + (1 - _BASELINE_FRACTION) * frame.row_pitch_mm * s
    grid_left = frame.grid_x0_mm * s
    xs_line = [grid_left, *np.linspace(x0_px, x1_px, 11).tolist()]
    row_geo = {
        "row": row, "baseline_px": round(base_px, 3), "x0_px": round(x0_px, 3),
        "x1_px": round(x1_px, 3), "y_top_px": round(y_top, 3), "y_bottom_px": round(y_bottom, 3),
        # the 0 mV line sampled at the grid's left edge, the time-axis start, ..., its end
        "baseline_points_px": [_r([x, base_px]) for x in xs_line],
        "band_box": _r([grid_left, y_top, x1_px, y_bottom]),
    }
    pulse_xy = None
    pulse_geo = None
    if settings.pulse:
        px0 = frame.pulse_x0_mm * s
        px1 = px0 + frame.pulse_w_mm * s
        lead_in = max(grid_left + 0.5 * s, px0 - _PULSE_PRE_MM * s)
        top = base_px - gain_px
        # drawn with the trace: 0 mV lead-in, up 1 mV, 0.2 s across, down, on to the trace
        pulse_xy = np.array([[lead_in, base_px], [px0, base_px], [px0, top], [px1, top],
                             [px1, base_px], [x0_px, base_px]])
        if not settings.pulse_feet:   # on its own, no foot lines
            ink.polyline(pulse_xy[1:5], trace_w_px)
            pulse_xy = None
        pulse_geo = {"row": row, "box": _r([px0 - half, top - half, px1 + half, base_px + half])}
    leads_geo, labels_geo = [], []
    for k, cell in enumerate(layout.row_cells(row)):
        i0, i1 = round(cell.t0 * n), round(cell.t1 * n)
        j0 = round(cell.record_span[0] * n)   # the samples it prints (see Cell.source_t0)
        j1 = j0 + (i1 - i0)
        lead_index = STANDARD_LEADS.index(cell.stored_lead)
        values = signal[j0:j1, lead_index]
        truth[j0:j1, lead_index] = values
        y = base_px - (-1.0 if cell.inverted else 1.0) * values * gain_px
        finite = np.isfinite(y)
        for a, b in _finite_runs(finite):
            xy = np.column_stack([t_px[i0 + a:i0 + b], y[a:b]])
            if pulse_xy is not None and k == 0 and a == 0:  # pulse runs into the trace
                xy = np.vstack([pulse_xy, xy])
                pulse_xy = None
            ink.polyline(xy, trace_w_px)
        if pulse_xy is not None and k == 0:  # the row starts blank: pulse on its own
            ink.polyline(pulse_xy, trace_w_px)
            pulse_xy = None
        cell_x0 = x0_px + cell.t0 * TIME_AXIS_MM * s
        cell_x1 = x0_px + cell.t1 * TIME_AXIS_MM * s
        if finite.any():
            box = [cell_x0, float(np.nanmin(y)) - half, cell_x1, float(np.nanmax(y)) + half]
        else:
            box = [cell_x0, base_px, cell_x1, base_px]
        leads_geo.append({
            "lead": cell.lead, "stored_lead": cell.stored_lead, "row": row, "box": _r(box),
            "t_start_s": round(j0 / TRUTH_FS_HZ, 6), "t_end_s": round(j1 / TRUTH_FS_HZ, 6),
        })
        if settings.separators and k > 0:  # tick at the boundary with the previous cell
            tick = 2.0 * s
            ink.polyline(np.array([[cell_x0, base_px - tick], [cell_x0, base_px + tick]]),
                         trace_w_px)
        if settings.label_position == "top-left":
            lab_y = base_px - min(7.0, 0.42 * frame.row_pitch_mm) * s
        elif settings.label_position == "baseline":
            lab_y = base_px - 1.0 * s
        else:
            lab_y = base_px + (1.5 + _LABEL_CAP_MM) * s
        box = ink.text(cell.lead, cell_x0 + 1.2 * s, lab_y, _LABEL_CAP_MM, weight=1.4)
        labels_geo.append({"text": cell.lead, "box": _r(box)})
    return _DrawnRow(row_geo, pulse_geo, leads_geo, labels_geo)


def _draw_texts(ink: _Ink, frame: PageFrame, settings: RenderSettings, record: ECGRecord,
                truth: np.ndarray) -> tuple[list[float] | None, list[float] | None]:
    """Header block above the grid and settings line under it; returns their boxes."""
    s = settings.px_per_mm
    header_box = None
    if settings.header:
        # the fake header is seeded by the record's own name (last path parts), not its
        # absolute path, so a page renders identically from any checkout or data folder
        source = "/".join(Path(str(record.provenance.get("source", ""))).parts[-3:])
        seed = int(hashlib.sha1(source.encode()).hexdigest()[:8], 16)
        columns = _header_lines(record, ECGRecord(truth, TRUTH_FS_HZ, STANDARD_LEADS), seed)
        col_x_mm = (frame.grid_x0_mm, frame.grid_x0_mm + 75.0, frame.grid_x0_mm + 150.0)
        boxes = []
        for col_x, lines in zip(col_x_mm, columns, strict=True):
            for j, line in enumerate(lines):
                if line:
                    boxes.append(ink.text(line, col_x * s, (9.0 + 5.0 * j) * s, 2.4))
        arr = np.array(boxes)
        header_box = _r([arr[:, 0].min(), arr[:, 1].min(), arr[:, 2].max(), arr[:, 3].max()])
    settings_box = None
    if settings.settings_line:
        text = f"{settings.speed_mm_s:g} mm/s   {settings.gain_mm_mv:g} mm/mV   0.05-150 Hz"
        y_mm = frame.grid_y0_mm + frame.grid_h_mm + 6.0
        settings_box = _r(ink.text(text, (frame.grid_x0_mm + 5.0) * s, y_mm * s, 2.6,
                                   weight=1.2))
    return header_box, settings_box


def _composite(canvas: np.ndarray, ink_mask: np.ndarray) -> np.ndarray:
    """Lay the ink (uint8 coverage) over the grid canvas (float32, modified); return uint8."""
    alpha = ink_mask.astype(np.float32) * np.float32(1.0 / 255.0)
    for c in range(3):
        channel = canvas[..., c]
        channel -= alpha * (channel - np.float32(_INK_RGB[c] - 0.5))
    canvas += 0.5  # values stay within [0.5, 255.5]: rounding by truncation, no clip needed
    return canvas.astype(np.uint8)


def render_page(record: ECGRecord, settings: RenderSettings | None = None, *,
                trace_mask: bool = False) -> RenderedPage:
    """Draw ``record`` as a paper ECG page.

    Parameters
    ----------
    record
        Any sampling rate, any leads (resampled to 500 Hz; leads outside the 12 standard ones
        are ignored, missing ones print as empty cells).
    settings
        :class:`RenderSettings` (defaults: 3x4+1, 25 mm/s, 10 mm/mV, 200 dpi, red grid).
    trace_mask
        Also return the trace-only pen coverage as ``RenderedPage.trace_mask`` (the image is
        the same either way).

    Returns
    -------
    RenderedPage
        Image, truth (12 leads, 500 Hz, printed duration, NaN where not printed), geometry.
    """
    settings = (settings or RenderSettings()).validated()
    layout = get_layout(settings.layout)
    frame = page_frame(settings, layout)
    s = settings.px_per_mm
    w_px = round(frame.page_w_mm * s)
    h_px = round(frame.page_h_mm * s)
    signal, n = _prepare_signal(record, settings)
    trace_w_px = settings.trace_width_mm * s

    canvas = np.full((h_px, w_px, 3), 255.0, dtype=np.float32)
    _draw_grid(canvas, frame, settings)
    ink = _Ink(h_px, w_px, s, settings.font, keep_traces=trace_mask)
    truth = np.full((n, 12), np.nan)

    rows_geo: list[dict[str, Any]] = []
    leads_geo: list[dict[str, Any]] = []
    pulses_geo: list[dict[str, Any]] = []
    labels_geo: list[dict[str, Any]] = []
    for row in range(layout.n_rows):
        drawn = _draw_row(ink, frame, settings, layout, row, signal, truth)
        rows_geo.append(drawn.row)
        leads_geo.extend(drawn.leads)
        labels_geo.extend(drawn.labels)
        if drawn.pulse is not None:
            pulses_geo.append(drawn.pulse)
    header_box, settings_box = _draw_texts(ink, frame, settings, record, truth)
    image = _composite(canvas, ink.mask)

    source = str(record.provenance.get("source", ""))
    truth_record = ECGRecord(
        signal=truth, fs=TRUTH_FS_HZ, leads=STANDARD_LEADS, age=record.age, sex=record.sex,
        provenance={"source": source, "producer": "ecglens render (ground truth)",
                    "layout": layout.name, "speed_mm_s": settings.speed_mm_s,
                    "gain_mm_mv": settings.gain_mm_mv, "start_s": settings.start_s},
    )
    geometry: dict[str, Any] = {
        "image_size": [w_px, h_px], "page_size_px": [w_px, h_px], "dpi": float(settings.dpi),
        "px_per_mm_x": round(s, 6), "px_per_mm_y": round(s, 6),
        "speed_mm_s": float(settings.speed_mm_s), "gain_mm_mv": float(settings.gain_mm_mv),
        "layout": layout.name, "profile": "clean", "seed": None, "grid": settings.grid,
        "duration_s": round(settings.duration_s, 6), "source_record": source,
        "paper": settings.paper, "font": settings.font,
        "label_position": settings.label_position,
        "grid_box": _r([v * s for v in grid_lines_mm(frame, settings.grid_extent)[4]]),
        "grid_origin_px": _r([frame.grid_x0_mm * s, frame.grid_y0_mm * s]),
        "trace_width_px": round(trace_w_px, 3), "clean_px_per_mm": round(s, 6),
        "page_to_image_exact": True,
        "rows": rows_geo, "leads": leads_geo, "pulses": pulses_geo, "labels": labels_geo,
        "settings_line_box": settings_box, "header_box": header_box,
        "page_to_image": np.eye(3).tolist(), "distortions": [],
    }
    return RenderedPage(image=image, truth=truth_record, geometry=geometry, settings=settings,
                        trace_mask=ink.traces)


# ============================================================================ saving
def _truth_stem(path: Path) -> Path:
    return path.with_name(path.stem + "_truth")


def _write_truth(page: RenderedPage, stem: Path) -> None:
    from ecglens.core.io import write_wfdb

    write_wfdb(page.truth, stem)
    stem.with_suffix(".json").write_text(json.dumps(page.geometry, indent=1))


def _pil_image(page: RenderedPage) -> Any:
    from PIL import Image

    return Image.fromarray(np.ascontiguousarray(page.image), mode="RGB")


def save_page(page: RenderedPage, path: str | Path, jpeg_quality: int = 92,
              compress_level: int = 6) -> Path:
    """Write the page image (``.png``, ``.jpg``/``.jpeg`` or ``.pdf``, dpi in the metadata)
    plus ``<stem>_truth.hea/.dat`` and ``<stem>_truth.json``. Returns the image path.

    ``jpeg_quality`` applies to JPEG output, ``compress_level`` (0-9) to PNG output."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in {".png", ".jpg", ".jpeg", ".pdf"}:
        raise InputError("output must end in .png, .jpg, .jpeg or .pdf", path)
    if not re.fullmatch(r"[A-Za-z0-9_-]+", path.stem):
        raise InputError(f"output name {path.stem!r} cannot name its WFDB truth record "
                         "(use letters, digits, _ and -)", path)
    if path.parent.exists() and not path.parent.is_dir():
        raise InputError("output folder is a file", path.parent)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the output folder ({exc.strerror or exc})",
                         path.parent) from exc
    dpi = float(page.geometry["dpi"])
    # the resolution a file would state: a phone photo says 72 dpi whatever its true scale
    file_dpi = float(page.geometry.get("file_dpi") or dpi)
    try:
        if suffix == ".pdf":
            _write_lossless_pdf([page.image], [dpi], path)
        elif suffix == ".png":
            _pil_image(page).save(path, dpi=(file_dpi, file_dpi),
                                  compress_level=int(compress_level))
        else:
            _pil_image(page).save(path, quality=int(jpeg_quality),
                                  dpi=(round(file_dpi), round(file_dpi)))
    except OSError as exc:
        raise InputError(f"cannot write image ({exc})", path) from exc
    _write_truth(page, _truth_stem(path))
    return path


def _write_lossless_pdf(images: Sequence[np.ndarray], dpis: Sequence[float], path: Path) -> None:
    """Write RGB pages as one PDF, each page one Flate-compressed (lossless) image sized by its
    own dpi. (Pillow's PDF writer stores RGB as JPEG, which would blur the trace the benchmark
    is meant to read.)"""
    import zlib

    objects: list[bytes] = [b"", b""]  # 1: catalog, 2: page tree; filled in below
    page_ids = []
    for image, dpi in zip(images, dpis, strict=True):
        rgb = np.ascontiguousarray(image, dtype=np.uint8)
        height_px, width_px = rgb.shape[:2]
        width_pt, height_pt = width_px / dpi * 72.0, height_px / dpi * 72.0
        data = zlib.compress(rgb.tobytes(), 6)
        image_id, content_id, page_id = len(objects) + 1, len(objects) + 2, len(objects) + 3
        objects.append(b"<< /Type /XObject /Subtype /Image /Width %d /Height %d "
                       b"/ColorSpace /DeviceRGB /BitsPerComponent 8 /Filter /FlateDecode "
                       b"/Length %d >>\nstream\n" % (width_px, height_px, len(data))
                       + data + b"\nendstream")
        content = b"q %.4f 0 0 %.4f 0 0 cm /Im0 Do Q" % (width_pt, height_pt)
        objects.append(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %.4f %.4f] "
                       b"/Resources << /XObject << /Im0 %d 0 R >> >> /Contents %d 0 R >>"
                       % (width_pt, height_pt, image_id, content_id))
        page_ids.append(page_id)
    objects[0] = b"<< /Type /Catalog /Pages 2 0 R >>"
    kids = b" ".join(b"%d 0 R" % k for k in page_ids)
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(page_ids))
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += (b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n"
            % (len(objects) + 1, xref_at))
    path.write_bytes(bytes(out))


def save_pdf(pages: Sequence[RenderedPage], path: str | Path) -> Path:
    """Write a multi-page PDF (each page a lossless image at its own dpi, so the page size is
    the sheet's) plus ``<stem>_p<k>_truth.*``."""
    path = Path(path)
    if not pages:
        raise InputError("no pages to write", path)
    if path.suffix.lower() != ".pdf":
        raise InputError("multi-page output must end in .pdf", path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        _write_lossless_pdf([p.image for p in pages], [float(p.geometry["dpi"]) for p in pages],
                            path)
    except OSError as exc:
        raise InputError(f"cannot write PDF ({exc})", path) from exc
    for k, page in enumerate(pages, start=1):
        _write_truth(page, path.with_name(f"{path.stem}_p{k}_truth"))
    return path
