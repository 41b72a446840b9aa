"""Trace segmentation in the ink and trace stages (issue 22, step 3).

In the trace stage (on by default, :func:`trace_stage_ink`): faint pixels the network calls
trace count into the trace's ink runs. In the ink stage (an option): the network gates the
ink darkness, as follows.

The ink stage's darkness (:func:`digitize.ink.find_ink`) is a colour rule: on photos it keeps
shadows, desk, page edges and grid lines that are as dark as the trace. The trace-segmentation
network (:func:`digitize.segment.trace_probability`) marks trace ink only, but not the lead
names, and often not the calibration pulses, which the later stages (OCR, pulse search) need.
So the network's map *gates* the colour darkness instead of replacing it:

* ``gate``: a connected piece of ink (darkness above :data:`PIECE_LEVEL`) is kept whole where
  it comes within :data:`GATE_MM` of a pixel the network calls trace (p > :data:`PROB_LEVEL`),
  or where it is no larger than a letter (:data:`TEXT_MM`); other ink is dropped. A pulse
  touches its row's trace and stays whole; lead names and the settings line are letters and
  stay; a shadow, the desk, a page edge or a grid line away from every row goes.
* ``gate_max``: the gated darkness, raised to the network's probability where that is higher
  (a faint trace the colour rule put below the grid level).

Off by default (:data:`DEFAULT_VARIANT`); ``ECGLENS_TRACE_MODEL=1`` (see
:data:`TRACE_MODEL_ENV`) or ``find_ink(..., trace_model=True)`` switches it on; measured in
``docs/segment_model_card.md`` ("Trace segmentation in the ink stage").
"""

from __future__ import annotations

import logging
import math
import os

import cv2
import numpy as np

log = logging.getLogger(__name__)

TRACE_MODEL_ENV = "ECGLENS_TRACE_MODEL"
"""Environment variable for the network in the ink stage: unset or empty: the default
(:data:`DEFAULT_VARIANT`); ``0``: off; ``1`` or ``gate``: ``gate``; ``gate_max``."""
VARIANTS = ("gate", "gate_max")
"""The combinations of network probability and colour darkness that were measured."""
DEFAULT_VARIANT: str | None = None
"""The variant used when the caller and the environment say nothing: none (off). ``gate``
raised the families' means (model card, "Trace segmentation in the ink stage": 2024 SNR on the
ECG-Image-Kit tune part +0.37 dB (58 pages, but 14 refused against 12), Paper2Pulse photos
+1.56 dB (20), own renders 0.00 dB (30), fold-9 validation +0.28 dB (64)), but in the full test
suite it turned three reads of real images that the tests pin (pulse column, time axis) into
other reads, one of them refused as not an ECG; it stays an option until that is understood.
``gate_max`` cost the own renders 2.8 dB on its first 7 pages (its probability band widens the
pen line) and was dropped."""

PROB_LEVEL = 0.5
"""Probability above which a pixel is trace (the level the model card's Dice is measured at)."""
PIECE_LEVEL = 0.25
"""Darkness above which a pixel belongs to a piece of ink for the gate: half the mask level,
so that a pulse or a letter that fades in the middle stays one piece."""
GATE_MM = 4.0
"""Reach (mm) of the network's trace pixels: a piece of ink within it is kept. Lead names
sit 1-3 mm above or beside their trace; grid-line pieces and shadows on photos lie
farther away once they are not connected to a row."""
TEXT_MM = 8.0
"""Largest height and width (mm) of a piece of ink kept anywhere as a letter: a rendered lead
name is 3.4 mm tall, and without this rule the gate kept only 20 % of the label ink of the
test page (``tests/test_seg_ink.py``), whose names sit 7 mm above the baseline."""
FALLBACK_PX_PER_MM = 200.0 / 25.4
"""Scale assumed without a grid (as the pipeline does: a 200-dpi scan)."""


OFF_WORDS = ("0", "off", "false", "no")
ON_WORDS = ("1", "on", "true", "yes")
"""The words a switch variable (:data:`TRACE_MODEL_ENV`, :data:`TRACE_RUNS_ENV`) takes for off
and on."""


def _switch_text(name: str, value: str | None) -> str:
    """``value``, or the environment variable ``name`` where it is None, trimmed and lower."""
    return (os.environ.get(name, "") if value is None else value).strip().lower()


def variant_from_env(value: str | None = None) -> str | None:
    """The variant the environment asks for (``value``: the variable's text, default read
    from :data:`TRACE_MODEL_ENV`); None: off."""
    text = _switch_text(TRACE_MODEL_ENV, value)
    if not text:
        return DEFAULT_VARIANT
    if text in OFF_WORDS:
        return None
    if text in ON_WORDS:
        return VARIANTS[0]
    if text not in VARIANTS:
        raise ValueError(f"{TRACE_MODEL_ENV}={text!r}: expected 0, 1 or one of {VARIANTS}")
    return text


def resolve(trace_model: bool | str | None) -> str | None:
    """The variant for ``find_ink``'s ``trace_model`` argument: None → the environment,
    False → off, True → ``gate``, a name → that variant."""
    if trace_model is None:
        return variant_from_env()
    if trace_model is False:
        return None
    if trace_model is True:
        return VARIANTS[0]
    if trace_model not in VARIANTS:
        raise ValueError(f"trace_model={trace_model!r}: expected a bool or one of {VARIANTS}")
    return str(trace_model)


def combine(darkness: np.ndarray, prob: np.ndarray, px_per_mm: float,
            variant: str = "gate") -> np.ndarray:
    """The colour ``darkness`` gated by the network's ``prob`` (both ``(H, W)`` float32 in
    [0, 1]) as ``variant`` says (see the module text)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}")
    trace = (prob > PROB_LEVEL).astype(np.uint8)
    if not trace.any():   # the network sees no trace: leave the colour rule alone
        return darkness
    radius = max(1, round(GATE_MM * px_per_mm))
    near = cv2.dilate(trace, cv2.getStructuringElement(cv2.MORPH_ELLIPSE,
                                                       (2 * radius + 1, 2 * radius + 1)))
    ink = (darkness > PIECE_LEVEL).astype(np.uint8)
    _, labels, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    letter = TEXT_MM * px_per_mm
    keep = (stats[:, cv2.CC_STAT_WIDTH] <= letter) & (stats[:, cv2.CC_STAT_HEIGHT] <= letter)
    keep[np.unique(labels[(near > 0) & (ink > 0)])] = True
    keep[0] = False
    kept = keep[labels]
    # faint ink below the piece level (anti-aliased edges) stays where a trace is near
    gated = np.where(kept | ((ink == 0) & (near > 0)), darkness, np.float32(0.0))
    if variant == "gate_max":
        gated = np.maximum(gated, prob)
    return gated.astype(np.float32, copy=False)


def gate_darkness(image_rgb: np.ndarray, darkness: np.ndarray, px_per_mm_x: float,
                  px_per_mm_y: float, variant: str) -> np.ndarray:
    """Run the network on the (deskewed) page and :func:`combine` its map with ``darkness``."""
    from ecglens.digitize.segment import trace_probability

    scale = [v for v in (px_per_mm_x, px_per_mm_y) if math.isfinite(v) and v > 0]
    ppmm = float(np.mean(scale)) if scale else FALLBACK_PX_PER_MM
    prob = trace_probability(image_rgb, ppmm)
    out = combine(darkness, prob, ppmm, variant)
    log.debug("trace model (%s): ink %.2f%% -> %.2f%%", variant,
              100.0 * float((darkness > 0.5).mean()), 100.0 * float((out > 0.5).mean()))
    return out


TRACE_RUNS_ENV = "ECGLENS_TRACE_RUNS"
"""Environment variable for the network in the trace stage (:func:`raise_faint_trace`):
unset or ``1``: on (:data:`TRACE_RUNS_DEFAULT`); ``0``: off."""
TRACE_RUNS_DEFAULT = True
"""The trace stage reads its runs with the network's help unless told otherwise. Measured
on the tune subsets (every 4th ECG-Image-Kit tune page, 58; every 8th own seed-0 page, 30),
read off and on from the same code: 2024 SNR ECG-Image-Kit 8.95 -> 9.61 dB (scan 6.95 ->
8.77, wrinkles 11.68 -> 12.03, layout 5.17 -> 5.51, clean 14.68 -> 14.60), own renders
19.95 -> 19.83 dB (clean 20.65 -> 20.57, scan 18.75 -> 18.53). Every family
(``benchmarks/families.py``): ECG-Image-Kit fold 9 (never tuned on) 9.37 -> 9.94 dB, tune
9.06 -> 9.81, photos with truth 2.07 -> 2.32, own renders 18.97 -> 18.88 (within the
ink-stage gate's rule of <= 0.1 dB cost there); ``docs/segment_model_card.md``, "Trace
segmentation in the trace stage"."""
FAINT_TRACE_LEVEL = 0.02
"""Darkness (0: the page's grid level) above which a pixel the network calls trace counts as
the trace's ink in the trace stage: any ink darker than the grid. A thin QRS stroke on a
noisy or resampled 100-dpi scan is as light as the grid lines around it; the colour level
(:func:`digitize.trace.extract_traces`' ``threshold``) cut it into pieces, and the path went
along the baseline under the spike. A raise at 0.10 instead of 0.02 was not measured. Paper
(darkness 0) is never raised, but the anti-aliased edge of a line is: runs grow by up to a
pixel each side, which costs the own renders a little (18.97 -> 18.88 dB)."""


def trace_runs_from_env(value: str | None = None) -> bool:
    """Whether the trace stage uses the network (``value``: the variable's text, default
    read from :data:`TRACE_RUNS_ENV`)."""
    text = _switch_text(TRACE_RUNS_ENV, value)
    if not text:
        return TRACE_RUNS_DEFAULT
    if text in OFF_WORDS:
        return False
    if text in ON_WORDS:
        return True
    raise ValueError(f"{TRACE_RUNS_ENV}={text!r}: expected 0 or 1")


def raise_faint_trace(darkness: np.ndarray, prob: np.ndarray, run_level: float,
                      faint_level: float = FAINT_TRACE_LEVEL) -> np.ndarray:
    """``darkness`` with every pixel that the network calls trace (``prob`` >
    :data:`PROB_LEVEL`) and that holds some ink (darkness >= ``faint_level``) raised to
    ``run_level``, the level at which the trace stage counts a pixel into a run.

    Only the runs' extent changes: paper stays paper, so the network's wider band (its map
    is made at 5 px/mm) does not spread the line onto paper (its anti-aliased edge pixels,
    which hold ink, are raised), and ink the network does not call trace keeps its colour
    darkness.
    """
    if darkness.shape != prob.shape:
        raise ValueError(f"darkness {darkness.shape} and probability {prob.shape} differ")
    lift = (prob > PROB_LEVEL) & (darkness >= faint_level)
    return np.where(lift, np.maximum(darkness, np.float32(run_level)),
                    darkness).astype(np.float32, copy=False)


def trace_stage_ink(image_rgb: np.ndarray, darkness: np.ndarray, px_per_mm: float,
                    run_level: float) -> np.ndarray | None:
    """:func:`raise_faint_trace` on the network's map of the (deskewed) page, or None where
    the network is switched off (:data:`TRACE_RUNS_ENV`) or its model cannot be run."""
    if not trace_runs_from_env():
        return None
    from ecglens.core.errors import ModelError
    from ecglens.digitize.segment import trace_probability

    ppmm = px_per_mm if math.isfinite(px_per_mm) and px_per_mm > 0 else FALLBACK_PX_PER_MM
    try:
        prob = trace_probability(image_rgb, ppmm)
    except ModelError as exc:
        log.warning("trace stage without the segmentation network: %s", exc)
        return None
    return raise_faint_trace(darkness, prob, run_level)
