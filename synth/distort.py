"""Distortions of rendered pages (scans, faxes, phone photos), TorchIO style.

A *profile* (``scan``, ``fax``, ``photo``, ...) draws random parameters from a seed and returns
a list of deterministic :class:`Distortion` objects; :func:`apply_profile` applies them in order
and records each one (name + parameters) in the page geometry's ``distortions`` list.

Every geometric distortion maps the geometry truth with it: points (0 mV lines, row bands) are
mapped exactly, boxes become the axis-aligned bound of their mapped outline, and projective
steps (rotation, resampling, padding, perspective) are composed into ``page_to_image``, the 3x3
homography from clean-page pixels to final-image pixels. Smooth non-projective fields (page
curl, creases) are applied after the projective part; they are stored as parameters, mapped
into the points and boxes by inverting the field numerically, and set
``page_to_image_exact`` to False (``page_to_image`` is then the projective part only; the
0 mV points are exact at their samples, approximate in between).

Images are worked on as float32 RGB in [0, 255] and returned as uint8.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
from collections.abc import Callable
from typing import Any, ClassVar

import cv2
import numpy as np

from ecglens.core.errors import EcglensError
from ecglens.synth.render import RenderedPage

log = logging.getLogger(__name__)


class ProfileError(EcglensError, ValueError):
    """An unknown distortion profile name."""


Points = np.ndarray  # (n, 2) float64 pixel coordinates (x, y)


# ============================================================================ geometry mapping
def _box_outline(box: list[float], n: int = 3) -> Points:
    x0, y0, x1, y1 = box
    t = np.linspace(0.0, 1.0, n)
    top = np.column_stack([x0 + (x1 - x0) * t, np.full(n, y0)])
    bottom = np.column_stack([x0 + (x1 - x0) * t, np.full(n, y1)])
    left = np.column_stack([np.full(n, x0), y0 + (y1 - y0) * t])
    right = np.column_stack([np.full(n, x1), y0 + (y1 - y0) * t])
    return np.vstack([top, bottom, left, right])


def _map_box(box: list[float] | None, fn: Callable[[Points], Points]) -> list[float] | None:
    if box is None:
        return None
    pts = fn(_box_outline(box))
    return [round(float(v), 3) for v in (pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(),
                                         pts[:, 1].max())]


def _apply_h(h: np.ndarray, pts: Points) -> Points:
    xyw = np.column_stack([pts, np.ones(len(pts))]) @ h.T
    return xyw[:, :2] / xyw[:, 2:3]


def map_geometry(geometry: dict[str, Any], fn: Callable[[Points], Points],
                 new_size: tuple[int, int], homography: np.ndarray | None = None
                 ) -> dict[str, Any]:
    """Geometry after a point mapping ``fn`` (current px → new px) onto a ``new_size`` image.

    ``homography`` (3x3) is composed into ``page_to_image`` when the mapping is projective;
    ``None`` marks a non-projective mapping (``page_to_image_exact`` becomes False).
    """
    geo = copy.deepcopy(geometry)
    geo["image_size"] = [int(new_size[0]), int(new_size[1])]
    for row in geo["rows"]:
        pts = fn(np.asarray(row["baseline_points_px"], dtype=np.float64))
        row["baseline_points_px"] = [[round(float(x), 3), round(float(y), 3)] for x, y in pts]
        row["baseline_px"] = round(float(pts[0, 1]), 3)
        row["x0_px"] = round(float(pts[1, 0]), 3)
        row["x1_px"] = round(float(pts[-1, 0]), 3)
        row["band_box"] = _map_box(row["band_box"], fn)
        row["y_top_px"], row["y_bottom_px"] = row["band_box"][1], row["band_box"][3]
    for key in ("leads", "pulses", "labels"):
        for item in geo[key]:
            item["box"] = _map_box(item["box"], fn)
    for key in ("settings_line_box", "header_box", "grid_box", "fax_header_box"):
        geo[key] = _map_box(geo.get(key), fn)
    if geo.get("grid_origin_px") is not None:
        geo["grid_origin_px"] = [round(float(v), 3) for v in
                                 fn(np.asarray([geo["grid_origin_px"]], dtype=np.float64))[0]]
    if homography is not None:
        total = homography @ np.asarray(geo["page_to_image"], dtype=np.float64)
        total /= total[2, 2]
        geo["page_to_image"] = [[round(float(v), 9) for v in r] for r in total]
    else:
        geo["page_to_image_exact"] = False
    _update_scale(geo)
    return geo


def _rows_box(geo: dict[str, Any]) -> list[float]:
    """Bounding box of every row band (the traced part of the grid), current px."""
    boxes = np.array([row["band_box"] for row in geo["rows"]], dtype=np.float64)
    return [float(boxes[:, 0].min()), float(boxes[:, 1].min()), float(boxes[:, 2].max()),
            float(boxes[:, 3].max())]


def _update_scale(geo: dict[str, Any]) -> None:
    """px/mm per axis and rotation at the centre of the rows, from ``page_to_image``."""
    h = np.asarray(geo["page_to_image"], dtype=np.float64)
    s0 = float(geo["clean_px_per_mm"])
    # clean-page centre of the rows: invert the homography at the current centre
    gx0, gy0, gx1, gy1 = _rows_box(geo)
    centre = _apply_h(np.linalg.inv(h), np.array([[(gx0 + gx1) / 2, (gy0 + gy1) / 2]]))[0]
    eps = 5.0
    p = _apply_h(h, np.vstack([centre, centre + np.array([eps, 0.0]),
                              centre + np.array([0.0, eps])]))
    jx, jy = (p[1] - p[0]) / eps, (p[2] - p[0]) / eps
    geo["px_per_mm_x"] = round(float(np.hypot(*jx)) * s0, 6)
    geo["px_per_mm_y"] = round(float(np.hypot(*jy)) * s0, 6)
    geo["rotation_deg"] = round(math.degrees(math.atan2(jx[1], jx[0])), 4)


def _page_mask(geo: dict[str, Any], shape_hw: tuple[int, int], scale: float) -> np.ndarray:
    """Where the page is, at ``scale`` times the current image size (float32 0..1)."""
    h = np.asarray(geo["page_to_image"], dtype=np.float64)
    clean_w, clean_h = geo["page_size_px"]
    corners = np.array([[0, 0], [clean_w - 1, 0], [clean_w - 1, clean_h - 1], [0, clean_h - 1]],
                       dtype=np.float64)
    quad = _apply_h(h, corners) * scale
    mask = np.zeros(shape_hw, dtype=np.float32)
    cv2.fillConvexPoly(mask, np.round(quad * 16).astype(np.int32), 1.0, cv2.LINE_AA, 4)
    return mask


# ============================================================================ base class
@dataclasses.dataclass(frozen=True)
class Distortion:
    """A deterministic page transform; subclasses set ``name`` and implement ``apply``."""

    name: ClassVar[str] = "distortion"

    def apply(self, image: np.ndarray, geo: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
        """Return the transformed float32 image and geometry."""
        raise NotImplementedError

    def warp_mask(self, mask: np.ndarray, geo: dict[str, Any]) -> np.ndarray:
        """Move a float32 ``(H, W)`` coverage layer as :meth:`apply` moves the image
        (``geo``: the geometry before this step). Identity for photometric steps."""
        return mask

    def record(self) -> dict[str, Any]:
        """``{"name": ..., params...}`` for the geometry's ``distortions`` list."""
        def clean(value: Any) -> Any:
            if isinstance(value, float):
                return round(value, 6)
            if isinstance(value, (tuple, list)):
                return [clean(v) for v in value]
            return value

        return {"name": self.name, **{k: clean(v) for k, v in dataclasses.asdict(self).items()}}


def _smooth_field(rng: np.random.Generator, shape_hw: tuple[int, int], cells: int = 6
                  ) -> np.ndarray:
    """Zero-mean, unit-ish smooth random field (bicubic upsampling of a coarse grid)."""
    h, w = shape_hw
    gh = max(2, round(cells * h / max(h, w)) + 1)
    gw = max(2, round(cells * w / max(h, w)) + 1)
    coarse = rng.standard_normal((gh, gw)).astype(np.float32)
    field = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    return field / max(float(np.std(field)), 1e-6) * 0.5


def _small(shape_hw: tuple[int, int], factor: int = 8) -> tuple[int, int]:
    return max(2, shape_hw[0] // factor), max(2, shape_hw[1] // factor)


def _upsample(field: np.ndarray, shape_hw: tuple[int, int]) -> np.ndarray:
    return cv2.resize(field.astype(np.float32), (shape_hw[1], shape_hw[0]),
                      interpolation=cv2.INTER_LINEAR)


def _multiply(image: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """Multiply every channel by a (H, W) gain field."""
    for c in range(3):
        image[..., c] *= gain
    return image


def _ink_blend(image: np.ndarray, alpha: np.ndarray, rgb: tuple[float, float, float],
               multiply: bool = True) -> np.ndarray:
    """Lay ink of colour ``rgb`` with coverage ``alpha`` (H, W) onto the image."""
    for c in range(3):
        channel = image[..., c]
        if multiply:  # ink filters the light: darker where paper is already dark
            channel *= 1.0 - alpha * (1.0 - rgb[c] / 255.0)
        else:
            channel -= alpha * (channel - rgb[c])
    return image


# ============================================================================ photometric
@dataclasses.dataclass(frozen=True)
class PaperTexture(Distortion):
    """Fine multiplicative paper grain and a slight paper tint."""

    name: ClassVar[str] = "paper_texture"
    strength: float = 0.02
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    seed: int = 0

    def apply(self, image, geo):
        rng = np.random.default_rng(self.seed)
        h, w = image.shape[:2]
        grain = rng.standard_normal(_small((h, w), 2)).astype(np.float32)
        grain = cv2.GaussianBlur(grain, (0, 0), 1.0)
        gain = 1.0 + self.strength * _upsample(grain / max(grain.std(), 1e-6), (h, w))
        gain += 0.5 * self.strength * _smooth_field(rng, (h, w), 10)
        _multiply(image, gain)
        for c in range(3):
            image[..., c] *= self.tint[c]
        return image, geo


@dataclasses.dataclass(frozen=True)
class ThermalFade(Distortion):
    """Faded thermal print: ink and grid lose contrast unevenly; paper yellows."""

    name: ClassVar[str] = "thermal_fade"
    fade: float = 0.5
    unevenness: float = 0.3
    paper_rgb: tuple[float, float, float] = (250.0, 244.0, 222.0)
    seed: int = 0

    def apply(self, image, geo):
        rng = np.random.default_rng(self.seed)
        h, w = image.shape[:2]
        keep = (1.0 - self.fade) * (1.0 + self.unevenness * _smooth_field(rng, (h, w), 4))
        keep = np.clip(keep, 0.08, 1.0)
        for c in range(3):
            channel = image[..., c]
            darkness = (255.0 - channel) * keep
            # thermal ink fades to brownish grey
            shade = (1.0, 0.97, 0.9)[c]
            image[..., c] = self.paper_rgb[c] - darkness * shade * self.paper_rgb[c] / 255.0
        return image, geo


@dataclasses.dataclass(frozen=True)
class Stains(Distortion):
    """Coffee/water stains: irregular rings with a darker rim and a faint fill."""

    name: ClassVar[str] = "stains"
    count: int = 1
    seed: int = 0

    def apply(self, image, geo):
        rng = np.random.default_rng(self.seed)
        h, w = image.shape[:2]
        scale = w / 2339.0
        for _ in range(self.count):
            cx, cy = rng.uniform(0.05, 0.95) * w, rng.uniform(0.1, 0.95) * h
            radius = rng.uniform(60, 260) * scale
            size = int(radius * 2.6)
            x0, y0 = int(cx - size / 2), int(cy - size / 2)
            yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
            ang = np.arctan2(yy - size / 2, xx - size / 2)
            dist = np.hypot(xx - size / 2, yy - size / 2)
            wobble = sum(rng.uniform(0.005, 0.03) / k * 3 * np.sin(k * ang + rng.uniform(0, 6.3))
                         for k in (2, 3, 5, 9))
            r = radius * (1 + wobble)
            rim_w = radius * rng.uniform(0.012, 0.03)
            rim = np.exp(-0.5 * ((dist - r) / rim_w) ** 2)
            fill = 1.0 / (1.0 + np.exp(np.clip((dist - r) / (rim_w * 0.7), -50, 50)))
            strength = rng.uniform(0.25, 0.6)
            # darker just inside the rim (where the liquid dried), a faint mottled interior
            inner = np.exp(-0.5 * ((dist - r + 2.5 * rim_w) / (2.5 * rim_w)) ** 2)
            mottle = 0.5 + 0.5 * _upsample(rng.random((6, 6)), (size, size))
            alpha = strength * (0.9 * rim + 0.25 * inner + 0.08 * fill * mottle)
            if rng.random() < 0.4:  # partial ring (cup lifted off)
                keep = np.cos(ang - rng.uniform(0, 6.3)) > rng.uniform(-0.6, 0.2)
                alpha *= np.where(keep, 1.0, 0.15).astype(np.float32)
            colour = (rng.uniform(150, 190), rng.uniform(105, 135), rng.uniform(50, 85))
            _paste_alpha(image, alpha.astype(np.float32), x0, y0, colour)
        return image, geo


def _paste_alpha(image: np.ndarray, alpha: np.ndarray, x0: int, y0: int,
                 rgb: tuple[float, float, float], multiply: bool = True) -> None:
    h, w = image.shape[:2]
    ah, aw = alpha.shape
    xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + aw, w), min(y0 + ah, h)
    if xb <= xa or yb <= ya:
        return
    _ink_blend(image[ya:yb, xa:xb], alpha[ya - y0:yb - y0, xa - x0:xb - x0], rgb, multiply)


@dataclasses.dataclass(frozen=True)
class Scribbles(Distortion):
    """Handwriting-like pen marks: cursive loops, underlines, circles, ticks."""

    name: ClassVar[str] = "scribbles"
    count: int = 2
    pen_rgb: tuple[float, float, float] = (30.0, 45.0, 140.0)
    seed: int = 0

    def apply(self, image, geo):
        rng = np.random.default_rng(self.seed)
        h, w = image.shape[:2]
        s = float(geo["px_per_mm_x"])
        mask = np.zeros((h, w), dtype=np.uint8)
        thick = max(1, round(rng.uniform(0.25, 0.5) * s))
        for _ in range(self.count):
            kind = rng.choice(["cursive", "cursive", "circle", "underline", "tick"])
            cx, cy = rng.uniform(0.08, 0.85) * w, rng.uniform(0.05, 0.92) * h
            if kind == "cursive":
                size = rng.uniform(1.8, 3.5) * s  # x-height
                slant = rng.uniform(0.1, 0.45)
                ang = rng.uniform(-0.12, 0.12)
                x_pen = 0.0
                for _word in range(int(rng.integers(1, 4))):
                    stroke = _cursive_word(rng, int(rng.integers(2, 9)), size)
                    stroke[:, 0] += x_pen
                    x_pen = stroke[-1, 0] + rng.uniform(1.2, 2.5) * size
                    x, y = stroke[:, 0] - slant * stroke[:, 1], stroke[:, 1]
                    pts = np.column_stack([cx + x * np.cos(ang) - y * np.sin(ang),
                                           cy + x * np.sin(ang) + y * np.cos(ang)])
                    _cv_polyline(mask, pts, thick)
            elif kind == "circle":
                rx, ry = rng.uniform(8, 25) * s, rng.uniform(5, 15) * s
                t = np.linspace(0, 2 * np.pi * rng.uniform(1.05, 1.3), 200)
                wobble = 1 + 0.08 * _smooth1d(rng, len(t)) * 3 + 0.06 * t / (2 * np.pi)
                tilt = rng.uniform(-0.4, 0.4)
                ex, ey = rx * np.cos(t) * wobble, ry * np.sin(t) * wobble
                pts = np.column_stack([cx + ex * np.cos(tilt) - ey * np.sin(tilt),
                                       cy + ex * np.sin(tilt) + ey * np.cos(tilt)])
                _cv_polyline(mask, pts, thick)
            elif kind == "underline":
                length = rng.uniform(20, 60) * s
                t = np.linspace(0, 1, 60)
                pts = np.column_stack([cx + length * t,
                                       cy + 1.5 * s * np.sin(t * rng.uniform(2, 6)) * t])
                _cv_polyline(mask, pts, thick)
            else:
                a = rng.uniform(2, 4) * s
                pts = np.array([[cx, cy], [cx + a, cy + a], [cx + 3 * a, cy - 2 * a]])
                _cv_polyline(mask, pts, thick)
        alpha = mask.astype(np.float32) * (rng.uniform(0.7, 0.95) / 255.0)
        _ink_blend(image, alpha, self.pen_rgb)
        return image, geo


def _cursive_word(rng: np.random.Generator, n_letters: int, size: float) -> Points:
    """A pen path like a cursive word: loops (e, l), humps (n, m), ascenders, descenders.

    Coordinates in px relative to the word start; y grows downward, the baseline is y = 0.
    """
    parts = []
    x0 = 0.0
    for _ in range(n_letters):
        kind = rng.choice(["loop", "loop", "hump", "hump", "tall", "tail"])
        width = size * rng.uniform(0.6, 1.1)
        height = size * {"loop": 1.0, "hump": 0.9, "tall": 2.2, "tail": 1.0}[kind]
        height *= rng.uniform(0.85, 1.15)
        t = np.linspace(0, 2 * np.pi, 36)
        loop = {"loop": 0.45, "tall": 0.35, "hump": 0.1, "tail": 0.4}[kind] * width
        x = x0 + width * t / (2 * np.pi) - loop * np.sin(t)
        y = -height * (0.5 - 0.5 * np.cos(t))
        if kind == "tail":  # a descender below the baseline
            y = np.where(t > np.pi, 1.3 * height * (0.5 - 0.5 * np.cos(t)) * (t - np.pi) / np.pi,
                         y)
        parts.append(np.column_stack([x, y]))
        x0 += width
    path = np.vstack(parts)
    path += rng.normal(0, 0.03 * size, path.shape)
    kernel = np.ones(5) / 5
    return np.column_stack([np.convolve(path[:, k], kernel, mode="same") for k in (0, 1)])[2:-2]


def _smooth1d(rng: np.random.Generator, n: int) -> np.ndarray:
    coarse = rng.standard_normal(max(2, n // 20))
    return np.interp(np.linspace(0, len(coarse) - 1, n), np.arange(len(coarse)), coarse) * 0.3


def _cv_polyline(mask: np.ndarray, pts: Points, thickness: int) -> None:
    if len(pts) < 2:
        return
    cv2.polylines(mask, [np.round(pts * 16).astype(np.int32).reshape(-1, 1, 2)], False, 255,
                  thickness, cv2.LINE_AA, 4)


@dataclasses.dataclass(frozen=True)
class Stamps(Distortion):
    """Rubber stamps: a rotated framed word and date in red/blue/purple, with uneven ink."""

    name: ClassVar[str] = "stamps"
    count: int = 1
    seed: int = 0

    WORDS: ClassVar[tuple[str, ...]] = ("RECEIVED", "COPY", "REVIEWED", "CONFIDENTIAL",
                                        "SCANNED", "FILED", "URGENT")

    def apply(self, image, geo):
        rng = np.random.default_rng(self.seed)
        h, w = image.shape[:2]
        s = float(geo["px_per_mm_x"])
        for _ in range(self.count):
            word = str(rng.choice(self.WORDS))
            month = rng.choice(["JAN", "MAR", "JUN", "SEP", "NOV"])
            date = f"{int(rng.integers(1, 29)):02d} {month} {int(rng.integers(2012, 2025))}"
            font = cv2.FONT_HERSHEY_TRIPLEX
            cap = rng.uniform(4.0, 7.0) * s
            scale = cap / 22.0
            thick = max(1, round(cap / 8))
            (tw, th), _ = cv2.getTextSize(word, font, scale, thick)
            (dw, dh), _ = cv2.getTextSize(date, font, scale * 0.55, max(1, thick // 2))
            pad = int(cap * 0.6)
            bw, bh = max(tw, dw) + 2 * pad, th + dh + 3 * pad
            size = int(math.hypot(bw, bh)) + 4
            mask = np.zeros((size, size), dtype=np.uint8)
            ox, oy = (size - bw) // 2, (size - bh) // 2
            if rng.random() < 0.5:
                cv2.rectangle(mask, (ox, oy), (ox + bw, oy + bh), 255, thick, cv2.LINE_AA)
                cv2.rectangle(mask, (ox + 2 * thick, oy + 2 * thick),
                              (ox + bw - 2 * thick, oy + bh - 2 * thick), 255,
                              max(1, thick // 2), cv2.LINE_AA)
            else:
                cv2.ellipse(mask, (size // 2, size // 2), (bw // 2 + pad, bh // 2 + pad // 2), 0,
                            0, 360, 255, thick, cv2.LINE_AA)
            cv2.putText(mask, word, (ox + (bw - tw) // 2, oy + pad + th), font, scale, 255,
                        thick, cv2.LINE_AA)
            cv2.putText(mask, date, (ox + (bw - dw) // 2, oy + 2 * pad + th + dh), font,
                        scale * 0.55, 255, max(1, thick // 2), cv2.LINE_AA)
            rot = cv2.getRotationMatrix2D((size / 2, size / 2), rng.uniform(-30, 30), 1.0)
            mask = cv2.warpAffine(mask, rot, (size, size), flags=cv2.INTER_LINEAR)
            grunge = _upsample(rng.random(_small((size, size), 3)), (size, size))
            alpha = mask.astype(np.float32) / 255.0 * np.clip(grunge * 1.6 - 0.1, 0, 1)
            alpha *= rng.uniform(0.55, 0.85)
            colour = [(200.0, 40.0, 50.0), (40.0, 60.0, 170.0), (110.0, 40.0, 130.0)][
                int(rng.integers(3))]
            x0 = int(rng.uniform(0.05, 0.95) * w - size / 2)
            y0 = int(rng.uniform(0.05, 0.95) * h - size / 2)
            _paste_alpha(image, alpha, x0, y0, colour)
        return image, geo


@dataclasses.dataclass(frozen=True)
class UnevenLight(Distortion):
    """Low-frequency illumination: a linear gradient, smooth variation and a vignette."""

    name: ClassVar[str] = "uneven_light"
    gradient: float = 0.1
    angle_deg: float = 0.0
    variation: float = 0.05
    vignette: float = 0.0
    seed: int = 0

    def apply(self, image, geo):
        rng = np.random.default_rng(self.seed)
        h, w = image.shape[:2]
        sh, sw = _small((h, w), 16)
        yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32)
        u = (xx / (sw - 1) - 0.5) * math.cos(math.radians(self.angle_deg)) + \
            (yy / (sh - 1) - 0.5) * math.sin(math.radians(self.angle_deg))
        gain = 1.0 + self.gradient * u
        gain += self.variation * _smooth_field(rng, (sh, sw), 4)
        r2 = ((xx / (sw - 1) - 0.5) ** 2 + (yy / (sh - 1) - 0.5) ** 2) / 0.5
        gain *= 1.0 - self.vignette * r2
        _multiply(image, _upsample(gain, (h, w)))
        return image, geo


@dataclasses.dataclass(frozen=True)
class Shadow(Distortion):
    """A soft shadow (a hand or phone) over part of the image."""

    name: ClassVar[str] = "shadow"
    strength: float = 0.35
    softness: float = 0.05
    seed: int = 0

    def apply(self, image, geo):
        rng = np.random.default_rng(self.seed)
        h, w = image.shape[:2]
        sh, sw = _small((h, w), 8)
        mask = np.zeros((sh, sw), dtype=np.float32)
        # a blob entering from one side
        side = int(rng.integers(4))
        cx, cy = [(rng.uniform(0, 1) * sw, -0.1 * sh), (1.1 * sw, rng.uniform(0, 1) * sh),
                  (rng.uniform(0, 1) * sw, 1.1 * sh), (-0.1 * sw, rng.uniform(0, 1) * sh)][side]
        axes = (int(rng.uniform(0.25, 0.6) * sw), int(rng.uniform(0.2, 0.5) * sh))
        cv2.ellipse(mask, (int(cx), int(cy)), axes, rng.uniform(0, 180), 0, 360, 1.0, -1)
        mask = cv2.GaussianBlur(mask, (0, 0), max(1.0, self.softness * max(sh, sw)))
        _multiply(image, 1.0 - self.strength * _upsample(mask, (h, w)))
        return image, geo


@dataclasses.dataclass(frozen=True)
class Glare(Distortion):
    """A specular highlight: washes part of the page toward white."""

    name: ClassVar[str] = "glare"
    x_frac: float = 0.5
    y_frac: float = 0.5
    radius_frac: float = 0.15
    strength: float = 0.7
    aspect: float = 1.5

    def apply(self, image, geo):
        h, w = image.shape[:2]
        sh, sw = _small((h, w), 4)
        yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32)
        r = self.radius_frac * max(sw, sh)
        d2 = ((xx - self.x_frac * sw) / (r * self.aspect)) ** 2 + ((yy - self.y_frac * sh) / r) ** 2
        alpha = self.strength * np.exp(-d2) + 0.12 * self.strength * np.exp(-d2 / 5.0)
        alpha = _upsample(np.clip(alpha, 0, 0.97), (h, w))
        for c in range(3):
            channel = image[..., c]
            channel += alpha * (255.0 - channel)
        return image, geo


@dataclasses.dataclass(frozen=True)
class Blur(Distortion):
    """Gaussian blur (defocus / scanner optics), sigma in px."""

    name: ClassVar[str] = "blur"
    sigma_px: float = 0.8

    def apply(self, image, geo):
        if self.sigma_px > 0.05:
            image = cv2.GaussianBlur(image, (0, 0), self.sigma_px)
        return image, geo


@dataclasses.dataclass(frozen=True)
class Noise(Distortion):
    """Additive Gaussian sensor noise (luminance + some chroma), sigma in grey levels."""

    name: ClassVar[str] = "noise"
    sigma: float = 3.0
    chroma: float = 0.3
    seed: int = 0

    def apply(self, image, geo):
        rng = np.random.default_rng(self.seed)
        h, w = image.shape[:2]
        lum = rng.standard_normal((h, w), dtype=np.float32) * np.float32(self.sigma)
        for c in range(3):
            image[..., c] += lum
        if self.chroma > 0:
            sh, sw = _small((h, w), 2)
            for c in range(3):
                chroma = rng.standard_normal((sh, sw), dtype=np.float32)
                image[..., c] += _upsample(chroma, (h, w)) * np.float32(self.sigma * self.chroma)
        return image, geo


@dataclasses.dataclass(frozen=True)
class ColourCast(Distortion):
    """Per-channel gains (warm/cool light, scanner white balance)."""

    name: ClassVar[str] = "colour_cast"
    gains: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def apply(self, image, geo):
        for c in range(3):
            image[..., c] *= self.gains[c]
        return image, geo


@dataclasses.dataclass(frozen=True)
class Jpeg(Distortion):
    """JPEG compression round trip at ``quality``."""

    name: ClassVar[str] = "jpeg"
    quality: int = 85

    def apply(self, image, geo):
        bgr = np.clip(image[..., ::-1] + 0.5, 0, 255).astype(np.uint8)
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(self.quality)])
        if not ok:
            return image, geo
        return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32), geo


# ============================================================================ geometric
@dataclasses.dataclass(frozen=True)
class Affine(Distortion):
    """Rotation about the image centre (degrees, counter-clockwise as seen) plus a shift in px,
    onto a canvas of the same size; uncovered areas get ``fill_rgb`` (scanner lid)."""

    name: ClassVar[str] = "rotate"
    angle_deg: float = 0.0
    shift_x_px: float = 0.0
    shift_y_px: float = 0.0
    fill_rgb: tuple[float, float, float] = (250.0, 250.0, 250.0)

    def matrix(self, w: int, h: int) -> np.ndarray:
        m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), self.angle_deg, 1.0)
        m[:, 2] += np.array([self.shift_x_px, self.shift_y_px])
        return np.vstack([m, [0, 0, 1]])

    def apply(self, image, geo):
        h, w = image.shape[:2]
        hom = self.matrix(w, h)
        image = cv2.warpAffine(image, hom[:2], (w, h), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=self.fill_rgb)
        return image, map_geometry(geo, lambda p: _apply_h(hom, p), (w, h), hom)

    def warp_mask(self, mask, geo):
        h, w = mask.shape[:2]
        return cv2.warpAffine(mask, self.matrix(w, h)[:2], (w, h), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)


@dataclasses.dataclass(frozen=True)
class Resample(Distortion):
    """Resample to another resolution (per axis: fax standard mode is 204 x 98 dpi)."""

    name: ClassVar[str] = "resample"
    scale_x: float = 1.0
    scale_y: float = 1.0

    def _size(self, w: int, h: int) -> tuple[int, int, int]:
        """New (width, height) and the interpolation for a (w, h) image."""
        nw, nh = max(8, round(w * self.scale_x)), max(8, round(h * self.scale_y))
        return nw, nh, cv2.INTER_AREA if nw / w * nh / h < 1 else cv2.INTER_LINEAR

    def warp_mask(self, mask, geo):
        nw, nh, interp = self._size(mask.shape[1], mask.shape[0])
        return cv2.resize(mask, (nw, nh), interpolation=interp)

    def apply(self, image, geo):
        h, w = image.shape[:2]
        nw, nh, interp = self._size(w, h)
        sx, sy = nw / w, nh / h
        image = cv2.resize(image, (nw, nh), interpolation=interp)
        # pixel centres: x' + 0.5 = (x + 0.5) * s
        hom = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1.0]])
        geo = map_geometry(geo, lambda p: _apply_h(hom, p), (nw, nh), hom)
        geo["dpi"] = round(float(geo["dpi"]) * math.sqrt(sx * sy), 3)
        return image, geo


def _tilt_homography(w: int, h: int, pitch_deg: float, yaw_deg: float, roll_deg: float,
                     focal_rel: float, out_w: int, out_h: int, fill: float, offset_x: float,
                     offset_y: float, fit_box: list[float] | None = None) -> np.ndarray:
    """Homography of a camera looking at the (w, h) page tilted by pitch/yaw, rolled by roll.

    The projected ``fit_box`` (default: the whole page) is scaled to ``fill`` of the frame and
    centred (plus ``offset`` fractions); with ``fill`` near 1 and the grid box, the page edges
    and header fall outside the frame, as in a tightly framed phone photo.
    """
    f = focal_rel * max(w, h)
    corners = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=np.float64)
    xyz = np.column_stack([corners - np.array([(w - 1) / 2, (h - 1) / 2]), np.zeros(4)])
    a, b, c = (math.radians(v) for v in (pitch_deg, yaw_deg, roll_deg))
    rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    cam = xyz @ (rz @ ry @ rx).T + np.array([0.0, 0.0, f])
    proj = f * cam[:, :2] / cam[:, 2:3]
    h0 = cv2.getPerspectiveTransform(corners.astype(np.float32), proj.astype(np.float32))
    fit = corners if fit_box is None else _box_outline(list(fit_box), 2)
    fitted = _apply_h(h0.astype(np.float64), fit)
    lo, hi = fitted.min(axis=0), fitted.max(axis=0)
    k = fill * min(out_w / (hi[0] - lo[0]), out_h / (hi[1] - lo[1]))
    centre = np.array([out_w / 2 + offset_x * out_w, out_h / 2 + offset_y * out_h])
    shift = centre - k * (lo + hi) / 2
    t = np.array([[k, 0, shift[0]], [0, k, shift[1]], [0, 0, 1.0]])
    hom = t @ h0
    return hom / hom[2, 2]


def _background(rng: np.random.Generator, kind: str, out_h: int, out_w: int) -> np.ndarray:
    """A desk/table texture (float32 RGB)."""
    base = {"wood": (150, 105, 65), "dark_wood": (85, 58, 40), "grey_desk": (120, 122, 125),
            "white_table": (215, 212, 205), "dark_cloth": (45, 48, 58),
            "green_mat": (60, 95, 75)}[kind]
    sh, sw = _small((out_h, out_w), 4)
    tex = _smooth_field(rng, (sh, sw), 8) * 0.08
    if "wood" in kind:  # grain: noise stretched along x
        grain = rng.standard_normal((sh, max(2, sw // 40))).astype(np.float32)
        streaks = cv2.resize(grain, (sw, sh), interpolation=cv2.INTER_CUBIC)
        tex = (tex + 0.12 * cv2.GaussianBlur(streaks, (0, 0), 0.8)).astype(np.float32)
    else:
        tex += 0.04 * rng.standard_normal((sh, sw)).astype(np.float32)
    tex = _upsample(tex, (out_h, out_w))
    bg = np.empty((out_h, out_w, 3), dtype=np.float32)
    for c in range(3):
        bg[..., c] = base[c] * (1.0 + tex)
    return bg


@dataclasses.dataclass(frozen=True)
class Perspective(Distortion):
    """Photograph the page: tilt (pitch/yaw), roll, framing and a desk background.

    ``fit`` is ``"page"`` (the whole sheet, ``fill`` of the frame) or ``"grid"`` (the grid area
    fills ``fill`` of the frame; page edges and header may be cut off).
    """

    name: ClassVar[str] = "perspective"
    pitch_deg: float = 0.0
    yaw_deg: float = 0.0
    roll_deg: float = 0.0
    focal_rel: float = 1.0
    out_scale: float = 1.0
    fill: float = 0.85
    offset_x: float = 0.0
    offset_y: float = 0.0
    background: str = "wood"
    fit: str = "page"
    seed: int = 0

    def _homography(self, w: int, h: int, geo: dict[str, Any]
                    ) -> tuple[np.ndarray, int, int, float]:
        """Homography, output (width, height) and mean downscale for a (w, h) image."""
        out_w = round(w * self.out_scale)
        out_h = round(out_w * 3 / 4)
        hom = _tilt_homography(w, h, self.pitch_deg, self.yaw_deg, self.roll_deg,
                               self.focal_rel, out_w, out_h, self.fill, self.offset_x,
                               self.offset_y, _rows_box(geo) if self.fit == "grid" else None)
        shrink = math.sqrt(abs(np.linalg.det(hom[:2, :2]))) if abs(hom[2, 2]) > 0 else 1.0
        return hom, out_w, out_h, shrink

    def warp_mask(self, mask, geo):
        hom, out_w, out_h, shrink = self._homography(mask.shape[1], mask.shape[0], geo)
        if shrink < 0.8:
            mask = cv2.GaussianBlur(mask, (0, 0), 0.45 / shrink)
        return cv2.warpPerspective(mask, hom, (out_w, out_h), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)

    def apply(self, image, geo):
        rng = np.random.default_rng(self.seed)
        h, w = image.shape[:2]
        hom, out_w, out_h, shrink = self._homography(w, h, geo)
        # anti-alias before shrinking: blur by the mean downscale
        if shrink < 0.8:
            image = cv2.GaussianBlur(image, (0, 0), 0.45 / shrink)
        warped = cv2.warpPerspective(image, hom, (out_w, out_h), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
        ones = np.ones((h, w), dtype=np.float32)
        mask = cv2.warpPerspective(ones, hom, (out_w, out_h), flags=cv2.INTER_LINEAR)
        bg = _background(rng, self.background, out_h, out_w)
        # soft drop shadow of the page on the desk
        sh, sw = _small((out_h, out_w), 8)
        small_mask = cv2.resize(mask, (sw, sh), interpolation=cv2.INTER_AREA)
        drop = cv2.GaussianBlur(small_mask, (0, 0), 0.01 * sw)
        drop = np.roll(drop, (max(1, round(0.004 * sh)), max(1, round(0.004 * sw))), axis=(0, 1))
        _multiply(bg, 1.0 - 0.45 * _upsample(drop, (out_h, out_w)))
        for c in range(3):
            bg[..., c] = bg[..., c] * (1.0 - mask) + warped[..., c]
        geo = map_geometry(geo, lambda p: _apply_h(hom, p), (out_w, out_h), hom)
        geo["dpi"] = round(float(np.sqrt(geo["px_per_mm_x"] * geo["px_per_mm_y"])) * 25.4, 3)
        geo["file_dpi"] = 72.0  # what a phone writes into the file
        return bg, geo


@dataclasses.dataclass(frozen=True)
class Warp(Distortion):
    """Smooth non-projective warps: page curl at one edge, a gentle bow, and creases.

    The field is a backward map ``src = p + v(p)`` (output pixel ``p`` shows input ``src``);
    amplitudes are fractions of the image width. Creases are fold lines given on the clean
    page (``x_frac``, ``y_frac`` of the page size, ``angle`` in radians, ``slope`` of the kink)
    and follow the page through ``page_to_image``; they also shade the page (a thin dark/light
    ridge and a slight brightness step across the fold).
    """

    name: ClassVar[str] = "warp"
    curl_edge: str = "right"
    curl_extent: float = 0.0
    curl_amount: float = 0.0
    bow: float = 0.0
    creases: tuple[tuple[float, float, float, float], ...] = ()  # (x_frac, y_frac, angle, slope)
    crease_shade: float = 0.0

    def crease_lines(self, geo: dict[str, Any]) -> list[tuple[float, float, float, float]]:
        """The creases in current image px: (x, y) of a point, angle (rad), slope."""
        hom = np.asarray(geo["page_to_image"], dtype=np.float64)
        page_w, page_h = geo["page_size_px"]
        lines = []
        for xf, yf, angle, slope in self.creases:
            a = np.array([xf * page_w, yf * page_h])
            b = a + 100.0 * np.array([math.cos(angle), math.sin(angle)])
            pa, pb = _apply_h(hom, np.vstack([a, b]))
            lines.append((float(pa[0]), float(pa[1]),
                          math.atan2(pb[1] - pa[1], pb[0] - pa[0]), slope))
        return lines

    def field(self, pts: Points, w: int, h: int,
              lines: list[tuple[float, float, float, float]] | None = None) -> Points:
        """Backward displacement ``v`` at points (x, y) in px of a (w, h) image."""
        x, y = pts[:, 0], pts[:, 1]
        v = np.zeros_like(pts, dtype=np.float64)
        scale = float(w)
        if self.curl_extent > 0 and self.curl_amount != 0:
            if self.curl_edge in ("left", "right"):
                dist = x if self.curl_edge == "left" else (w - 1) - x
                along = y / (h - 1) - 0.5
                normal_sign = 1.0 if self.curl_edge == "left" else -1.0
                t = np.clip(1.0 - dist / (self.curl_extent * w), 0, 1)
                v[:, 0] += normal_sign * self.curl_amount * scale * t ** 2
                v[:, 1] += -0.6 * self.curl_amount * scale * t ** 2 * along
            else:
                dist = y if self.curl_edge == "top" else (h - 1) - y
                along = x / (w - 1) - 0.5
                normal_sign = 1.0 if self.curl_edge == "top" else -1.0
                t = np.clip(1.0 - dist / (self.curl_extent * h), 0, 1)
                v[:, 1] += normal_sign * self.curl_amount * scale * t ** 2
                v[:, 0] += -0.6 * self.curl_amount * scale * t ** 2 * along
        if self.bow:
            u = 2 * x / (w - 1) - 1
            v[:, 1] += self.bow * scale * (1 - u ** 2)
        for lx, ly, angle, slope in lines or []:
            nx, ny = -math.sin(angle), math.cos(angle)
            d = (x - lx) * nx + (y - ly) * ny
            soft = np.sqrt(d ** 2 + (0.004 * scale) ** 2) - 0.004 * scale
            v[:, 0] += slope * soft * nx
            v[:, 1] += slope * soft * ny
        return v

    def forward(self, pts: Points, w: int, h: int, geo: dict[str, Any] | None = None) -> Points:
        """Where input points appear in the output (fixed-point inverse of the field);
        ``geo`` is the geometry before the warp (it places the creases)."""
        lines = self.crease_lines(geo) if geo is not None and self.creases else []
        p = np.array(pts, dtype=np.float64)
        for _ in range(8):
            p = pts - self.field(p, w, h, lines)
        return p

    def _maps(self, w: int, h: int, geo: dict[str, Any]
              ) -> tuple[np.ndarray, np.ndarray, list[tuple[float, float, float, float]]]:
        """Backward remap (map_x, map_y) of a (w, h) image and the crease lines."""
        step = 8
        gy, gx = np.mgrid[0:h + step:step, 0:w + step:step].astype(np.float64)
        grid = np.column_stack([gx.ravel(), gy.ravel()])
        lines = self.crease_lines(geo) if self.creases else []
        v = self.field(grid, w, h, lines).reshape(gx.shape[0], gx.shape[1], 2)
        # coarse node k sits at pixel k*step; cv2.resize aligns pixel centres, so fine pixel p
        # reads the resized map at p + (step - 1) / 2
        offset = (step - 1) / 2.0
        map_x = cv2.resize((gx + v[..., 0]).astype(np.float32),
                           (gx.shape[1] * step, gx.shape[0] * step),
                           interpolation=cv2.INTER_LINEAR)
        map_y = cv2.resize((gy + v[..., 1]).astype(np.float32),
                           (gx.shape[1] * step, gx.shape[0] * step),
                           interpolation=cv2.INTER_LINEAR)
        shift = np.array([[1, 0, -offset], [0, 1, -offset]], dtype=np.float32)
        map_x = cv2.warpAffine(map_x, shift, (w, h), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
        map_y = cv2.warpAffine(map_y, shift, (w, h), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
        return map_x, map_y, lines

    def warp_mask(self, mask, geo):
        map_x, map_y, _ = self._maps(mask.shape[1], mask.shape[0], geo)
        return cv2.remap(mask, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)

    def apply(self, image, geo):
        h, w = image.shape[:2]
        map_x, map_y, lines = self._maps(w, h, geo)
        out = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        if self.creases and self.crease_shade > 0:
            sh, sw = _small((h, w), 2)
            yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32) * 2
            shade = np.ones((sh, sw), dtype=np.float32)
            for lx, ly, angle, _slope in lines:
                nx, ny = -math.sin(angle), math.cos(angle)
                d = (xx - lx) * nx + (yy - ly) * ny
                width = 0.002 * w
                shade *= 1.0 - self.crease_shade * np.exp(-0.5 * (d / width) ** 2)
                shade *= 1.0 + 0.3 * self.crease_shade * np.tanh(d / (8 * width))
            page = _page_mask(geo, (sh, sw), 0.5)
            shade = 1.0 + (shade - 1.0) * page
            _multiply(out, _upsample(shade, (h, w)))
        geo = map_geometry(geo, lambda p: self.forward(p, w, h, geo), (w, h), None)
        return out, geo


@dataclasses.dataclass(frozen=True)
class Fax(Distortion):
    """Low-resolution fax: grey, resample to 204 x 196 (fine) or 204 x 98 dpi (standard),
    binarise with a threshold, speckle noise, a few streaks and the sender's header line
    (its box goes into the geometry as ``fax_header_box``)."""

    name: ClassVar[str] = "fax"
    dpi_x: float = 204.0
    dpi_y: float = 196.0
    threshold: float = 170.0
    speckle: float = 0.002
    streaks: int = 2
    header: bool = True
    seed: int = 0

    def apply(self, image, geo):
        rng = np.random.default_rng(self.seed)
        dpi = float(geo["dpi"])
        grey = image @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        grey3 = np.repeat(grey[..., None], 3, axis=2)
        grey3, geo = Resample(self.dpi_x / dpi, self.dpi_y / dpi).apply(grey3, geo)
        g = grey3[..., 0]
        h, w = g.shape
        thr = self.threshold + 10.0 * _smooth_field(rng, (h, w), 3)
        binary = np.where(g < thr, 0.0, 255.0).astype(np.float32)
        flips = rng.random((h, w)) < self.speckle
        binary[flips] = 255.0 - binary[flips]
        for _ in range(self.streaks):
            y = int(rng.integers(0, h))
            binary[y:y + int(rng.integers(1, 3)), :] = 0.0 if rng.random() < 0.3 else 255.0
        if self.header:
            geo["fax_header_box"] = _fax_header(binary, rng, float(geo["px_per_mm_x"]),
                                                float(geo["px_per_mm_y"]))
        geo["dpi"] = round(math.sqrt(self.dpi_x * self.dpi_y), 3)
        return np.repeat(binary[..., None], 3, axis=2), geo

    def warp_mask(self, mask, geo):
        dpi = float(geo["dpi"])
        return Resample(self.dpi_x / dpi, self.dpi_y / dpi).warp_mask(mask, geo)


def _fax_header(binary: np.ndarray, rng: np.random.Generator, px_per_mm_x: float,
                px_per_mm_y: float) -> list[float]:
    """Print a fax transmission line (date, sender, page) across the top; return its box."""
    month = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
    text = (f"{month[int(rng.integers(12))]}-{int(rng.integers(1, 29)):02d}-"
            f"{int(rng.integers(2012, 2026))} {int(rng.integers(0, 24)):02d}:"
            f"{int(rng.integers(0, 60)):02d}   FROM: "
            f"{rng.choice(['CARDIOLOGY', 'ED TRIAGE', 'CLINIC 4', 'WARD 7B', 'GP PRACTICE'])}"
            f"   +{int(rng.integers(10, 99))} {int(rng.integers(100, 999))} "
            f"{int(rng.integers(1000, 9999))}      P. 1/1")
    cap_px_y = 2.2 * px_per_mm_y
    cap_px_x = 2.2 * px_per_mm_x
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_PLAIN, 1.0, 1)
    # draw at square pixels, then squash to the (possibly anisotropic) fax grid
    scale = cap_px_x / th
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_PLAIN, scale, 1)
    patch = np.full((th + base + 4, tw + 4), 255, dtype=np.uint8)
    cv2.putText(patch, text, (2, th + 2), cv2.FONT_HERSHEY_PLAIN, scale, 0, 1, cv2.LINE_8)
    new_h = max(4, round(patch.shape[0] * cap_px_y / cap_px_x))
    squashed = cv2.resize(patch, (patch.shape[1], new_h), interpolation=cv2.INTER_NEAREST)
    x0, y0 = round(8 * px_per_mm_x), round(1.5 * px_per_mm_y)
    h, w = binary.shape
    ph, pw = min(squashed.shape[0], h - y0), min(squashed.shape[1], w - x0)
    region = binary[y0:y0 + ph, x0:x0 + pw]
    np.minimum(region, squashed[:ph, :pw].astype(np.float32), out=region)
    return [float(x0), float(y0), float(x0 + pw), float(y0 + ph)]


# ============================================================================ profiles
def _profile_clean(rng: np.random.Generator, geo: dict[str, Any]) -> list[Distortion]:
    return []


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**31 - 1))


def _profile_scan(rng: np.random.Generator, geo: dict[str, Any]) -> list[Distortion]:
    out: list[Distortion] = []
    dpi = float(geo["dpi"])
    if not 100.0 <= dpi <= 300.0:
        target = float(rng.uniform(100, 300))
        out.append(Resample(target / dpi, target / dpi))
        dpi = target
    s = dpi / 25.4
    out.append(PaperTexture(strength=float(rng.uniform(0.005, 0.02)),
                            tint=(1.0, float(rng.uniform(0.985, 1.0)),
                                  float(rng.uniform(0.95, 1.0))), seed=_seed(rng)))
    if rng.random() < 0.15:
        out.append(Scribbles(count=int(rng.integers(1, 3)), seed=_seed(rng)))
    if rng.random() < 0.1:
        out.append(Stamps(count=1, seed=_seed(rng)))
    angle = float(np.clip(rng.normal(0, 2.0), -5, 5))
    lid = float(rng.choice([248.0, 235.0, 60.0]))
    out.append(Affine(angle_deg=angle, shift_x_px=float(rng.uniform(-3, 3) * s),
                      shift_y_px=float(rng.uniform(-3, 3) * s), fill_rgb=(lid, lid, lid)))
    out.append(UnevenLight(gradient=float(rng.uniform(0, 0.08)),
                           angle_deg=float(rng.uniform(0, 360)),
                           variation=float(rng.uniform(0, 0.03)), seed=_seed(rng)))
    out.append(Blur(sigma_px=float(rng.uniform(0.3, 1.0))))
    out.append(Noise(sigma=float(rng.uniform(1.0, 4.0)), chroma=0.2, seed=_seed(rng)))
    if rng.random() < 0.5:
        out.append(ColourCast(gains=(float(rng.uniform(0.97, 1.03)),
                                     float(rng.uniform(0.96, 1.02)),
                                     float(rng.uniform(0.9, 1.02)))))
    if rng.random() < 0.8:
        out.append(Jpeg(quality=int(rng.integers(65, 96))))
    return out


def _profile_fax(rng: np.random.Generator, geo: dict[str, Any]) -> list[Distortion]:
    out: list[Distortion] = []
    if rng.random() < 0.3:
        out.append(ThermalFade(fade=float(rng.uniform(0.1, 0.25)), unevenness=0.15,
                               seed=_seed(rng)))
    out.append(Affine(angle_deg=float(np.clip(rng.normal(0, 1.0), -2.5, 2.5)),
                      shift_x_px=float(rng.uniform(-10, 10)),
                      shift_y_px=float(rng.uniform(-10, 10)),
                      fill_rgb=(255.0, 255.0, 255.0)))
    # the fax machine scans the page at its own resolution: blur in page px scaled to ~200 dpi
    out.append(Blur(sigma_px=float(rng.uniform(0.2, 0.6)) * float(geo["dpi"]) / 200.0))
    fine = rng.random() < 0.6
    out.append(Fax(dpi_x=204.0, dpi_y=196.0 if fine else 98.0,
                   threshold=float(rng.uniform(170, 215)),
                   speckle=float(rng.uniform(0.0005, 0.004)), streaks=int(rng.integers(0, 4)),
                   seed=_seed(rng)))
    return out


def _photo_common(rng: np.random.Generator, hard: bool) -> list[Distortion]:
    out: list[Distortion] = []
    tilt = float(rng.uniform(20, 45) if hard else rng.uniform(10, 30))
    direction = float(rng.uniform(0, 2 * np.pi))
    roll = float(rng.uniform(-25, 25) if hard else rng.uniform(-8, 8))
    tight = bool(rng.random() < 0.4)  # the grid fills the frame, page edges cut off
    out.append(Perspective(pitch_deg=tilt * math.cos(direction), yaw_deg=tilt * math.sin(direction),
                           roll_deg=roll, focal_rel=float(rng.uniform(0.8, 1.4)),
                           out_scale=float(rng.uniform(0.9, 1.2)),
                           fill=float(rng.uniform(0.75, 0.95) if not tight
                                      else rng.uniform(0.9, 0.99)),
                           fit="grid" if tight else "page",
                           offset_x=float(rng.uniform(-0.03, 0.03)),
                           offset_y=float(rng.uniform(-0.03, 0.03)),
                           background=str(rng.choice(["wood", "dark_wood", "grey_desk",
                                                      "white_table", "dark_cloth", "green_mat"])),
                           seed=_seed(rng)))
    curl = rng.random() < (0.9 if hard else 0.6)
    n_creases = int(rng.integers(1, 4)) if hard and rng.random() < 0.8 else 0
    folds = (1 / 3, 1 / 2, 2 / 3)
    creases = tuple(
        (float(rng.choice(folds) + rng.normal(0, 0.01)), float(rng.choice(folds) +
                                                              rng.normal(0, 0.01)),
         float(rng.choice([0.0, np.pi / 2]) + rng.normal(0, 0.02)),
         float(rng.uniform(-0.015, 0.015)))
        for _ in range(n_creases))
    if curl or creases:
        out.append(Warp(curl_edge=str(rng.choice(["left", "right", "top", "bottom"])),
                        curl_extent=float(rng.uniform(0.15, 0.4)) if curl else 0.0,
                        curl_amount=float(rng.uniform(0.005, 0.03 if hard else 0.012))
                        if curl else 0.0,
                        bow=float(rng.uniform(-0.01, 0.01) if hard else rng.uniform(-0.004, 0.004)),
                        creases=creases, crease_shade=float(rng.uniform(0.05, 0.25))))
    out.append(UnevenLight(gradient=float(rng.uniform(0.1, 0.4 if hard else 0.3)),
                           angle_deg=float(rng.uniform(0, 360)),
                           variation=float(rng.uniform(0.02, 0.08)),
                           vignette=float(rng.uniform(0.05, 0.25)), seed=_seed(rng)))
    if rng.random() < (0.8 if hard else 0.5):
        out.append(Shadow(strength=float(rng.uniform(0.15, 0.5 if hard else 0.35)),
                          softness=float(rng.uniform(0.02, 0.08)), seed=_seed(rng)))
    if hard and rng.random() < 0.7:
        out.append(Glare(x_frac=float(rng.uniform(0.2, 0.8)), y_frac=float(rng.uniform(0.2, 0.8)),
                         radius_frac=float(rng.uniform(0.03, 0.09)),
                         strength=float(rng.uniform(0.3, 0.8)), aspect=float(rng.uniform(1, 2.5))))
    # exposure: paper photographed under room light is not white
    exposure = float(rng.uniform(0.72, 0.95))
    warm = float(rng.uniform(-0.08, 0.1))
    out.append(ColourCast(gains=(exposure * (1 + warm), exposure, exposure * (1 - 1.2 * warm))))
    out.append(Blur(sigma_px=float(rng.uniform(0.8, 2.5) if hard else rng.uniform(0.5, 1.5))))
    out.append(Noise(sigma=float(rng.uniform(3, 10) if hard else rng.uniform(2, 6)), chroma=0.5,
                     seed=_seed(rng)))
    out.append(Jpeg(quality=int(rng.integers(40, 81) if hard else rng.integers(60, 93))))
    return out


def _profile_photo(rng: np.random.Generator, geo: dict[str, Any]) -> list[Distortion]:
    out: list[Distortion] = [PaperTexture(strength=float(rng.uniform(0.004, 0.015)),
                                          seed=_seed(rng))]
    if rng.random() < 0.3:
        out.append(Scribbles(count=int(rng.integers(1, 3)), seed=_seed(rng)))
    return out + _photo_common(rng, hard=False)


def _profile_photo_hard(rng: np.random.Generator, geo: dict[str, Any]) -> list[Distortion]:
    out: list[Distortion] = [PaperTexture(strength=float(rng.uniform(0.01, 0.03)),
                                          tint=(1.0, float(rng.uniform(0.95, 1.0)),
                                                float(rng.uniform(0.85, 0.98))),
                                          seed=_seed(rng))]
    if rng.random() < 0.35:
        out.append(ThermalFade(fade=float(rng.uniform(0.2, 0.6)), seed=_seed(rng)))
    out.append(Stains(count=int(rng.integers(1, 4)), seed=_seed(rng)))
    out.append(Scribbles(count=int(rng.integers(1, 5)),
                         pen_rgb=((30.0, 45.0, 140.0), (25.0, 25.0, 30.0))[int(rng.integers(2))],
                         seed=_seed(rng)))
    out.append(Stamps(count=int(rng.integers(1, 3)), seed=_seed(rng)))
    return out + _photo_common(rng, hard=True)


PROFILES: dict[str, Callable[[np.random.Generator, dict[str, Any]], list[Distortion]]] = {
    "clean": _profile_clean,
    "scan": _profile_scan,
    "fax": _profile_fax,
    "photo": _profile_photo,
    "photo_hard": _profile_photo_hard,
}
"""Named profiles: ``profile(rng, geometry) -> [Distortion, ...]``."""
PROFILE_NAMES: tuple[str, ...] = tuple(PROFILES)


def get_profile(name: str) -> Callable[[np.random.Generator, dict[str, Any]], list[Distortion]]:
    """The profile called ``name``; raises :class:`ProfileError` listing the valid names."""
    key = str(name).lower().replace("-", "_")
    if key not in PROFILES:
        raise ProfileError(f"unknown profile {name!r}; valid profiles: {', '.join(PROFILE_NAMES)}")
    return PROFILES[key]


def draw_distortions(page: RenderedPage, profile: str, seed: int) -> list[Distortion]:
    """The distortions ``profile`` draws for ``page`` with ``seed`` (deterministic)."""
    rng = np.random.default_rng([int(seed), _name_code(profile)])
    return get_profile(profile)(rng, page.geometry)


def _name_code(name: str) -> int:
    return sum((k + 1) * ord(ch) for k, ch in enumerate(name))


def apply_distortions(page: RenderedPage, distortions: list[Distortion]) -> RenderedPage:
    """Apply ``distortions`` in order; return a new page with the geometry updated."""
    image = page.image.astype(np.float32)
    geo = copy.deepcopy(page.geometry)
    geo.setdefault("distortions", [])
    mask = None if page.trace_mask is None else page.trace_mask.astype(np.float32)
    for step in distortions:
        if mask is not None:  # geometric steps only; photometric ones leave it as is
            mask = step.warp_mask(mask, geo)
        image, geo = step.apply(image, geo)
        geo["distortions"].append(step.record())
    if not geo["distortions"]:
        geo.setdefault("rotation_deg", 0.0)
    out = np.clip(image + 0.5, 0, 255).astype(np.uint8)
    if out.shape[:2] != (geo["image_size"][1], geo["image_size"][0]):
        raise AssertionError("geometry image_size does not match the image")
    trace_mask = None if mask is None else np.clip(mask + 0.5, 0, 255).astype(np.uint8)
    return page.replace(image=out, geometry=geo, trace_mask=trace_mask)


def apply_profile(page: RenderedPage, profile: str, seed: int = 0) -> RenderedPage:
    """Distort ``page`` with a named profile; the profile and seed go into the geometry."""
    distortions = draw_distortions(page, profile, seed)
    out = apply_distortions(page, distortions)
    geo = dict(out.geometry)
    geo["profile"] = str(profile).lower().replace("-", "_")
    geo["seed"] = int(seed)
    return out.replace(geometry=geo)
