"""Overlay picture of what was read: the deskewed page with traces, 0 mV lines, lead boxes,
calibration pulses and the time axis drawn over it, downscaled to about 1600 px wide."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ecglens.digitize.pipeline import DigitizeResult

TRACE_RGB = (0, 90, 255)
BASELINE_RGB = (0, 170, 60)
BOX_RGB = (150, 0, 200)
PULSE_RGB = (255, 140, 0)
LOST_RGB = (255, 0, 0)


def draw_overlay(result: DigitizeResult, width_px: int = 1600) -> np.ndarray:
    """RGB overlay image (``uint8``) of ``result`` at about ``width_px`` wide."""
    import cv2

    page = np.asarray(result.deskew.image)
    h, w = page.shape[:2]
    scale = min(1.0, width_px / w)
    small = cv2.resize(page, (round(w * scale), round(h * scale)),
                       interpolation=cv2.INTER_AREA) if scale < 1 else page.copy()
    # fade the page so the drawing stands out
    img = (0.55 * small.astype(np.float32) + 0.45 * 255).astype(np.uint8)
    thick = max(1, round(1.5 * scale * w / 1600))
    axis = result.time_axis
    for trace, base in zip(result.traces.rows, result.baselines_px, strict=True):
        y = base * scale
        cv2.line(img, (int(axis.x0_px * scale), round(y)),
                 (int(axis.x1_px * scale), round(y)), BASELINE_RGB, 1, cv2.LINE_AA)
        # the trace the record is built from: the sub-column one where it was computed
        if trace.fine_x_px is not None and trace.fine_y_px is not None:
            line_x, line_y = trace.fine_x_px, trace.fine_y_px
        else:
            line_x, line_y = trace.x_px, trace.y_px
        drawn = np.isfinite(line_y)
        edges = np.flatnonzero(np.diff(np.concatenate([[0], drawn.astype(np.int8), [0]])))
        for a, b in zip(edges[::2], edges[1::2], strict=True):
            pts = np.stack([line_x[a:b] * scale, line_y[a:b] * scale], axis=1)
            pts = np.round(pts * 16).astype(np.int32).reshape(-1, 1, 2)
            cv2.polylines(img, [pts], False, TRACE_RGB, thick, cv2.LINE_AA, 4)
        ok = np.isfinite(trace.y_px)
        xs = trace.x_px * scale
        lost = np.flatnonzero(~ok)
        if len(lost):
            yy = round(y)
            for x in lost[:: max(1, len(lost) // 200)]:
                cv2.circle(img, (int(xs[x]), yy), 1, LOST_RGB, -1)
    layout = result.layout.layout
    if layout is not None:
        span = axis.x1_px - axis.x0_px
        for cell in layout.cells:
            if cell.row >= len(result.baselines_px):
                continue
            trace = result.traces.rows[cell.row]
            finite = trace.y_px[np.isfinite(trace.y_px)]
            pitch = result.rows.pitch_px if np.isfinite(result.rows.pitch_px) else 200
            top = (result.baselines_px[cell.row] - 0.45 * pitch) * scale
            bottom = (result.baselines_px[cell.row] + 0.4 * pitch) * scale
            if len(finite):
                top = min(top, finite.min() * scale)
            x0 = (axis.x0_px + cell.t0 * span) * scale
            x1 = (axis.x0_px + cell.t1 * span) * scale
            cv2.rectangle(img, (int(x0) + 1, int(top)), (int(x1) - 1, int(bottom)), BOX_RGB, 1)
            cv2.putText(img, cell.lead, (int(x0) + 4, int(top) + 14), cv2.FONT_HERSHEY_SIMPLEX,
                        0.45, BOX_RGB, 1, cv2.LINE_AA)
    for p in result.calibration.pulses:
        top = p.baseline_px - p.gain_mm_mv * float(result.grid.px_per_mm_y)
        corners = (p.x_left_px, top, p.x_right_px, p.baseline_px)
        if not all(np.isfinite(v) for v in corners):
            continue  # a pulse found without a measured height or edge: nothing to draw
        cv2.rectangle(img, (int(p.x_left_px * scale), int(top * scale)),
                      (int(p.x_right_px * scale), int(p.baseline_px * scale)), PULSE_RGB,
                      max(1, thick))
    cal = result.calibration
    caption = (f"{result.layout.name}  {cal.speed_mm_s:g} mm/s  {cal.gain_mm_mv:g} mm/mV "
               f"({cal.source})  rot {float(result.deskew.rotation_deg):.2f} deg  "
               f"warnings: {len(result.warnings)}")
    cv2.putText(img, caption, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, caption, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1,
                cv2.LINE_AA)
    return img


def save_overlay(image: np.ndarray, path: str | Path) -> Path:
    """Write the overlay PNG (quantised to a 64-colour palette: small files, same look)."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).quantize(colors=64, method=Image.Quantize.MEDIANCUT).save(
        path, optimize=False, compress_level=6)
    return path
