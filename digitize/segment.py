"""Trace segmentation: per-pixel probability of ECG trace ink (not grid, text or paper).

A small U-Net (``digitize/segment_train.py``, model card ``docs/segment_model_card.md``) run
through ONNX Runtime on the page resized to the model's scale (:data:`MODEL_PX_PER_MM`, read
from the ONNX metadata); the probability map is resized back to the input's pixels.

>>> prob = trace_probability(image_rgb, px_per_mm=11.8)   # (H, W) float32 in [0, 1]
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ecglens.core.errors import InputError, ModelError

WEIGHTS_PATH = Path(__file__).resolve().parent / "weights" / "trace_seg.onnx"
"""The committed model."""
MODEL_PX_PER_MM = 5.0
"""Scale the model was trained at (fallback if the ONNX file does not state it)."""
TILE_PX = 1600
"""Largest side run in one piece at the model scale: an A4 or letter page at 5 px/mm (1485 x
1050, 1397 x 1080) runs whole (~0.4 GB peak); larger images (photos) run as tiles."""
TILE_OVERLAP_PX = 64
"""Overlap of neighbouring tiles; each keeps its inner part, so every kept pixel has at least
32 px (6 mm) of context on each side and seams do not show."""
_MULTIPLE = 32
"""Input sides must be multiples of 2 (space-to-depth) x 2^(levels - 1)."""


@lru_cache(maxsize=4)
def _session(path: str, threads: int) -> tuple[Any, float]:
    """ONNX Runtime session and the model's px/mm (cached per file and thread count)."""
    try:
        import onnxruntime as ort
    except ImportError as exc:  # pragma: no cover - onnxruntime is a dependency
        raise ModelError("trace segmentation needs onnxruntime") from exc
    if not Path(path).is_file():
        raise ModelError(f"trace segmentation model not found: {path}")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    return sess, float(meta.get("px_per_mm", MODEL_PX_PER_MM))


def _run(sess: Any, x: np.ndarray) -> np.ndarray:
    """Probability for an (h, w, 3) float32 [0, 1] array, padded to a multiple of 8."""
    h, w = x.shape[:2]
    ph, pw = -h % _MULTIPLE, -w % _MULTIPLE
    if ph or pw:
        x = cv2.copyMakeBorder(x, 0, ph, 0, pw, cv2.BORDER_REPLICATE)
    out = sess.run(None, {"image": np.ascontiguousarray(x.transpose(2, 0, 1)[None])})[0]
    return np.asarray(out[0, 0, :h, :w], dtype=np.float32)


def _tile_starts(n: int, tile: int, overlap: int) -> list[int]:
    if n <= tile:
        return [0]
    count = math.ceil((n - overlap) / (tile - overlap))
    step = (n - tile) / (count - 1)
    return [round(k * step) for k in range(count)]


def probability_at_model_scale(image: np.ndarray, threads: int = 1,
                               model_path: str | Path | None = None,
                               tile_px: int = TILE_PX) -> np.ndarray:
    """Trace probability of an RGB uint8 image already at the model's scale (tiled)."""
    sess, _ = _session(str(model_path or WEIGHTS_PATH), threads)
    x = image.astype(np.float32) * np.float32(1.0 / 255.0)
    h, w = x.shape[:2]
    if h <= tile_px and w <= tile_px:
        return _run(sess, x)
    out = np.zeros((h, w), dtype=np.float32)
    half = TILE_OVERLAP_PX // 2
    ys, xs = _tile_starts(h, tile_px, TILE_OVERLAP_PX), _tile_starts(w, tile_px, TILE_OVERLAP_PX)
    for y0 in ys:
        for x0 in xs:
            y1, x1 = min(h, y0 + tile_px), min(w, x0 + tile_px)
            p = _run(sess, x[y0:y1, x0:x1])
            # keep each tile's centre part: drop half the overlap on inner edges
            a = 0 if y0 == 0 else half
            b = 0 if x0 == 0 else half
            out[y0 + a:y1, x0 + b:x1] = p[a:, b:]
    return out


def model_px_per_mm(model_path: str | Path | None = None) -> float:
    """The scale (px/mm) the model expects its input at."""
    return _session(str(model_path or WEIGHTS_PATH), 1)[1]


def trace_probability(image_rgb: np.ndarray, px_per_mm: float, threads: int = 1,
                      model_path: str | Path | None = None) -> np.ndarray:
    """Per-pixel probability of trace ink, float32 in [0, 1], same ``(H, W)`` as the input.

    Parameters
    ----------
    image_rgb
        ``(H, W, 3)`` uint8 RGB page (or ``(H, W)`` grey).
    px_per_mm
        The page's scale (pixels per mm of paper); the page is resized to the model's scale.
    threads
        ONNX Runtime intra-op threads (1: one core).
    model_path
        Another ONNX file (default: the committed :data:`WEIGHTS_PATH`).
    """
    image = np.asarray(image_rgb)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InputError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} "
                         f"{image.dtype}")
    if not (math.isfinite(px_per_mm) and px_per_mm > 0):
        raise InputError(f"px_per_mm must be positive, got {px_per_mm}")
    h, w = image.shape[:2]
    scale = model_px_per_mm(model_path) / float(px_per_mm)
    nw, nh = max(_MULTIPLE, round(w * scale)), max(_MULTIPLE, round(h * scale))
    if (nw, nh) != (w, h):
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        small = cv2.resize(image, (nw, nh), interpolation=interp)
    else:
        small = image
    prob = probability_at_model_scale(small, threads, model_path)
    if prob.shape != (h, w):
        prob = cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip(prob, 0.0, 1.0, out=prob)
