"""Text on the page: lead labels and the settings line, read by ONE batched OCR call.

Text-like connected components of the ink mask (1.2–7 mm tall, narrower than 25 mm) are
grouped into words. Words between the trace rows are lead-label candidates; words below the
last row form the settings line. Each candidate is redrawn from its own component pixels
(black on white, grid-free, scaled to a ~32-px cap height) and all are stacked into one image
that tesseract reads once (``digitize.ocr``: the engine stays loaded in a worker process);
each word found is mapped back to its candidate by position. The same components give the text
mask that the trace stage ignores.
"""

from __future__ import annotations

import dataclasses
import logging
import re

import numpy as np

log = logging.getLogger(__name__)

LEAD_NAMES = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")


@dataclasses.dataclass(frozen=True)
class Label:
    """One lead label read on the page."""

    text: str
    lead: str | None
    box: tuple[float, float, float, float]
    confidence: float


@dataclasses.dataclass(frozen=True)
class TextResult:
    """Text components, labels and settings text.

    Attributes
    ----------
    text_mask
        ``(H, W)`` bool: pixels of text-like components (ignored by the trace stage).
    labels
        Lead labels recognised (``lead`` is None for a word that is no lead name).
    settings_text
        OCR of the line(s) below the last row ('' if none).
    ocr_ok
        False when tesseract could not run (labels then empty).
    word_boxes
        Candidate word boxes (x0, y0, x1, y1) that were sent to OCR.
    """

    text_mask: np.ndarray
    labels: tuple[Label, ...]
    settings_text: str
    ocr_ok: bool
    word_boxes: tuple[tuple[int, int, int, int], ...]


def normalize_label(text: str) -> str | None:
    """Map OCR output to a lead name (``aVR``, ``V1``, ``-aVR`` ...) or None."""
    t = re.sub(r"[^A-Za-z0-9\-|]", "", text)
    neg = t.startswith("-")
    t = t.lstrip("-").upper().replace("|", "I")
    if not t:
        return None
    if t.startswith("AV") and len(t) == 3:
        name = {"AVR": "aVR", "AVL": "aVL", "AVF": "aVF"}.get(t)
        return None if name is None else ("-" + name if neg else name)
    if t.startswith("V") and len(t) == 2:
        digit = {"I": "1", "L": "1", "Z": "2", "S": "5"}.get(t[1], t[1])
        return f"V{digit}" if digit in "123456" else None
    t = t.replace("L", "I").replace("1", "I")
    return t if t in ("I", "II", "III") else None


def text_components(darkness: np.ndarray, px_per_mm: float, trace_mask: np.ndarray | None = None
                    ) -> tuple[np.ndarray, list[tuple[int, int, int, int]], np.ndarray]:
    """Text-like connected components: returns (label image, boxes, keep flags).

    A component is text-like when it is 1.2–7 mm tall, at most 25 mm wide, not a thin
    horizontal sliver, and does not touch ``trace_mask`` (the pixels of the read traces).
    """
    import cv2

    mask = np.greater_equal(darkness, 0.3).view(np.uint8)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    x, y, w, h, area = (stats[:, i] for i in range(5))
    keep = ((h >= 1.2 * px_per_mm) & (h <= 7.0 * px_per_mm) & (w <= 25 * px_per_mm)
            & (w >= 1) & (area >= 0.6 * px_per_mm ** 2 * 0.2))
    keep[0] = False
    # a component that is much wider than tall and thin is a trace fragment, not text
    thin = (w > 4 * h) & (area < 0.5 * w * px_per_mm)
    keep &= ~thin
    if trace_mask is not None:
        touching = np.zeros(n, dtype=bool)
        touching[lab[trace_mask]] = True     # (the background, label 0, is never kept)
        keep &= ~touching
    boxes = [(int(x[i]), int(y[i]), int(x[i] + w[i]), int(y[i] + h[i])) for i in range(n)]
    return lab, boxes, keep


def _component_mask(lab: np.ndarray, boxes: list[tuple[int, int, int, int]],
                    components: np.ndarray) -> np.ndarray:
    """Bool mask of the pixels of the given components, drawn box by box (text components
    are small: much cheaper than a look-up over the whole label image)."""
    mask = np.zeros(lab.shape, dtype=bool)
    for i in components:
        x0, y0, x1, y1 = boxes[i]
        mask[y0:y1, x0:x1] |= lab[y0:y1, x0:x1] == i
    return mask


def trace_pixels(shape: tuple[int, int], traces: tuple, width_px: float) -> np.ndarray:
    """Bool mask of the pixels under the read traces (polylines drawn ``width_px`` wide)."""
    import cv2

    out = np.zeros(shape, dtype=np.uint8)
    thickness = max(1, round(width_px))
    for trace in traces:
        ok = np.isfinite(trace.y_px)
        edges = np.flatnonzero(np.diff(np.concatenate([[0], ok.astype(np.int8), [0]])))
        for a, b in zip(edges[::2], edges[1::2], strict=True):
            pts = np.stack([trace.x_px[a:b], trace.y_px[a:b]], axis=1)
            pts = np.round(pts * 4).astype(np.int32).reshape(-1, 1, 2)
            cv2.polylines(out, [pts], False, 1, thickness, cv2.LINE_8, 2)
    return out.astype(bool)


def _group_words(boxes: list[tuple[int, int, int, int]], gap_px: float
                 ) -> list[tuple[int, int, int, int, list[int]]]:
    order = sorted(range(len(boxes)), key=lambda i: (boxes[i][0]))
    words: list[list] = []
    for i in order:
        x0, y0, x1, y1 = boxes[i]
        for word in words:
            wx0, wy0, wx1, wy1, members = word
            overlap = min(y1, wy1) - max(y0, wy0)
            if overlap > 0.4 * min(y1 - y0, wy1 - wy0) and x0 - wx1 <= gap_px:
                word[0], word[1] = min(wx0, x0), min(wy0, y0)
                word[2], word[3] = max(wx1, x1), max(wy1, y1)
                members.append(i)
                break
        else:
            words.append([x0, y0, x1, y1, [i]])
    return [tuple(w) for w in words]  # type: ignore[misc]


def read_text(darkness: np.ndarray, px_per_mm: float, rows_top_px: float, rows_bottom_px: float,
              use_ocr: bool = True, trace_mask: np.ndarray | None = None,
              max_labels: int = 40) -> TextResult:
    """Find text components, OCR label candidates and the settings line in one call.

    ``trace_mask`` (pixels of the read traces) keeps trace pieces out of the text; at most
    ``max_labels`` label candidates (the most text-like: tallest ink density) are read.
    """
    lab, boxes, keep = text_components(darkness, px_per_mm, trace_mask)
    idx = np.flatnonzero(keep)
    text_mask = _component_mask(lab, boxes, idx)
    kept_boxes = [boxes[i] for i in idx]
    words = _group_words(kept_boxes, 1.5 * px_per_mm)
    label_words = []
    settings_words = []
    for wx0, wy0, wx1, wy1, members in words:
        comps = [int(idx[m]) for m in members]
        cy = 0.5 * (wy0 + wy1)
        if rows_top_px - 8 * px_per_mm <= cy <= rows_bottom_px and wx1 - wx0 <= 14 * px_per_mm:
            label_words.append(((wx0, wy0, wx1, wy1), comps))
        elif cy > rows_bottom_px:
            settings_words.append(((wx0, wy0, wx1, wy1), comps))
    if len(label_words) > max_labels:
        label_words.sort(key=lambda item: -(item[0][3] - item[0][1]) * (item[0][2] - item[0][0]))
        label_words = label_words[:max_labels]
    settings_crop = None
    if settings_words:
        # the settings line: the first text line below the rows
        first_y = min(b[1] for b, _ in settings_words)
        line = [(b, c) for b, c in settings_words if b[1] <= first_y + 4 * px_per_mm]
        x0 = min(b[0] for b, _ in line)
        y0 = min(b[1] for b, _ in line)
        x1 = max(b[2] for b, _ in line)
        y1 = max(b[3] for b, _ in line)
        settings_crop = ((x0, y0, x1, y1), [c for _, cs in line for c in cs])
    labels: list[Label] = []
    settings_text = ""
    ocr_ok = False
    crops = label_words + ([settings_crop] if settings_crop else [])
    if use_ocr and crops:
        try:
            texts = _ocr_batch(lab, crops, px_per_mm)
            ocr_ok = True
        except Exception as exc:  # tesseract missing or failing: no labels, with a reason
            log.warning("OCR failed (%s); lead labels and settings line not read", exc)
            texts = [("", 0.0)] * len(crops)
        for (box, _), (text, conf) in zip(label_words, texts[:len(label_words)], strict=True):
            if text:
                left, top, right, bottom = (float(v) for v in box)
                labels.append(Label(text=text, lead=normalize_label(text),
                                    box=(left, top, right, bottom), confidence=conf))
        if settings_crop:
            settings_text = texts[-1][0]
    return TextResult(text_mask=text_mask, labels=tuple(labels), settings_text=settings_text,
                      ocr_ok=ocr_ok, word_boxes=tuple(b for b, _ in crops))


def _ocr_batch(lab: np.ndarray, crops: list, px_per_mm: float) -> list[tuple[str, float]]:
    """Stack every crop (its own component pixels only) into one image; OCR once."""
    import cv2

    from ecglens.digitize.ocr import image_to_data

    target_cap = 34.0
    pieces = []
    for (x0, y0, x1, y1), comps in crops:
        patch = np.isin(lab[y0:y1, x0:x1], comps)
        scale = target_cap / max(y1 - y0, 1)
        scale = min(scale, 6.0)
        nh, nw = max(1, round((y1 - y0) * scale)), max(1, round((x1 - x0) * scale))
        img = cv2.resize(patch.astype(np.uint8) * 255, (nw, nh), interpolation=cv2.INTER_AREA)
        pieces.append(255 - img)
    pad = 24
    width = max(p.shape[1] for p in pieces) + 2 * pad
    spans = []
    canvas_rows = []
    y = 0
    for p in pieces:
        row = np.full((p.shape[0] + 2 * pad, width), 255, np.uint8)
        row[pad:pad + p.shape[0], pad:pad + p.shape[1]] = p
        canvas_rows.append(row)
        spans.append((y, y + row.shape[0]))
        y += row.shape[0]
    canvas = np.vstack(canvas_rows)
    # the crops are drawn dark on white, so tesseract's second, inverted pass is skipped
    data = image_to_data(canvas, psm=6, variables={"tessedit_do_invert": "0"})
    out: list[list[tuple[int, str, float]]] = [[] for _ in crops]
    for text, top, height, left, conf in zip(data["text"], data["top"], data["height"],
                                             data["left"], data["conf"], strict=True):
        if not text or not text.strip():
            continue
        cy = top + height / 2
        for k, (a, b) in enumerate(spans):
            if a <= cy < b:
                out[k].append((left, text.strip(), float(conf)))
                break
    result = []
    for words in out:
        words.sort()
        text = " ".join(w for _, w, _ in words)
        conf = float(np.mean([c for *_, c in words])) / 100.0 if words else 0.0
        result.append((text, conf))
    return result
