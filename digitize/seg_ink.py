"""Trace segmentation in the ink and trace stages (issue 22, step 3).

In the trace stage (on by default): faint pixels the network calls trace count into the
trace's ink runs (:func:`trace_stage_ink`), and the path search runs on the network's map
(:func:`path_ink`). In the rows stage (on by default, the last read of a page whose rows were
not found): the rows are looked for in the ink the network calls trace
(:func:`trace_only_ink`). In the ink stage (an option): the network gates the ink darkness,
as follows.

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

from ecglens.digitize.grid import lightest_channel, normalised_u8

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


def _on_off(name: str, value: str | None, default: bool) -> bool:
    """The on/off switch variable ``name`` (``value``: its text, default read from the
    environment); ``default`` where it is unset or empty."""
    text = _switch_text(name, value)
    if not text:
        return default
    if text in OFF_WORDS:
        return False
    if text in ON_WORDS:
        return True
    raise ValueError(f"{name}={text!r}: expected 0 or 1")


def trace_runs_from_env(value: str | None = None) -> bool:
    """Whether the trace stage uses the network (``value``: the variable's text, default
    read from :data:`TRACE_RUNS_ENV`)."""
    return _on_off(TRACE_RUNS_ENV, value, TRACE_RUNS_DEFAULT)


PAPER_INK_LEVEL = 0.2
"""Darkness of a pixel's lightest colour channel above the paper (0: paper, 1: black) from
which it holds some ink for :func:`inked_pixels`, whatever the page's grid level. Paper
scores about 0.02 (median over the pixels the network puts below 0.05 on a dark-gridded
ECG-Image-Kit scan), the thin QRS strokes the network calls trace there 0.31 and up (5th
percentile over its pixels above 0.8). Chosen on the ECG-Image-Kit tune part (folds 1-8, 230
pages; 2024 SNR, before: darkness above the grid level only, 13.80 dB): 0.1 14.47 (clean
16.95 -> 16.67: anti-aliased edges beside well-inked lines widened the runs), 0.2 14.61
(clean 16.87, scan 12.55 -> 14.30), 0.3 14.52 (clean 16.95, scan 13.80)."""


PAPER_INK_SPECK_MM = 0.25
"""Pixels that hold ink only by :data:`PAPER_INK_LEVEL` (not above the grid level) count where they
form a group (8-connected) of at least ``(PAPER_INK_SPECK_MM * px_per_mm)²`` pixels: none is
left out at 4 px/mm or less, single pixels at 6 px/mm, groups of up to 3 px at 8 px/mm and up to
5 px at 10 px/mm. Beside a well-inked line at 6-12 px/mm such specks are bits of grid lines in
the network's band and the light gap between the up- and downstroke of a narrow spike; the path
took them for the trace (an own-renderer 6x2+1 page, 9.9 px/mm: one R spike read as two, V5 28.3
-> 11.4 dB). Eight own seed-0 pages that lost most to the paper-relative ink (18.29 dB before
it, 16.53 with it): 16.62 with a stricter line-pixel test alone, 17.94 with it and a fixed 4-px
least group (but ECG-Image-Kit tune 14.53 -> 14.18 dB: at 4 px/mm thin strokes break into such
groups), 17.91 with this scaled group."""


def inked_pixels(image_rgb: np.ndarray, darkness: np.ndarray,
                 faint_level: float = FAINT_TRACE_LEVEL,
                 px_per_mm: float | None = None) -> np.ndarray:
    """Pixels that hold some ink: darker than the paper in their lightest colour channel by
    :data:`PAPER_INK_LEVEL`, or above the page's grid level (``darkness`` >= ``faint_level``).

    On a page whose grid is dark, the grid level is above the darkness of a thin stroke
    (anti-aliased and JPEG-blurred at 100 dpi), which is then paper to ``darkness``: the runs
    and the path went along the baseline under the spike. Only a line's own pixels count
    (no lighter than both neighbours across it, along x or y): with the blurred edge beside a
    thick scanned line counted too, every run grew by a pixel each side, and an own-renderer
    scan pinned in the tests (a 12x1 page at 5 mm/mV, 118 dpi) fell from 10.45 to 3.62 dB
    (9.53 with the edge left out). (Along a straight line, ties let its blurred edge through
    as well: the test is about the lightness across the line and along it.) With
    ``px_per_mm``, specks of such pixels smaller than :data:`PAPER_INK_SPECK_MM` squared are
    left out.
    """
    if image_rgb.ndim != 3 or image_rgb.shape[:2] != darkness.shape:
        raise ValueError(f"image {image_rgb.shape} is not an RGB image of the darkness's "
                         f"shape {darkness.shape}")
    lightest = lightest_channel(normalised_u8(image_rgb))
    paper_level = round(255 * (1.0 - PAPER_INK_LEVEL))
    # a line's own pixels, not the blurred edge beside it: no lighter than both neighbours
    # across it, along x or along y
    ridge = ((lightest <= cv2.erode(lightest, np.ones((1, 3), np.uint8)))
             | (lightest <= cv2.erode(lightest, np.ones((3, 1), np.uint8))))
    above_grid = darkness >= faint_level
    paper_only = (lightest <= paper_level) & ridge & ~above_grid
    # a group smaller than the pen's cross-section is no stroke
    least_px = max(1, round((PAPER_INK_SPECK_MM * px_per_mm) ** 2)) if px_per_mm else 1
    if least_px > 1:
        _, labels, stats, _ = cv2.connectedComponentsWithStats(paper_only.astype(np.uint8),
                                                               connectivity=8)
        keep = stats[:, cv2.CC_STAT_AREA] >= least_px
        keep[0] = False
        paper_only = keep[labels]
    return paper_only | above_grid


def _holds_ink(darkness: np.ndarray, faint_level: float,
               inked: np.ndarray | None) -> np.ndarray:
    """``inked`` where given (see :func:`inked_pixels`), else darkness above the grid level."""
    return darkness >= faint_level if inked is None else inked


def raise_faint_trace(darkness: np.ndarray, prob: np.ndarray, run_level: float,
                      faint_level: float = FAINT_TRACE_LEVEL,
                      inked: np.ndarray | None = None) -> np.ndarray:
    """``darkness`` with every pixel that the network calls trace (``prob`` >
    :data:`PROB_LEVEL`) and that holds some ink (``inked``, default darkness >=
    ``faint_level``; see :func:`inked_pixels`) raised to ``run_level``, the level at which
    the trace stage counts a pixel into a run.

    Only the runs' extent changes: paper stays paper, so the network's wider band (its map
    is made at 5 px/mm) does not spread the line onto paper (its anti-aliased edge pixels,
    which hold ink, are raised), and ink the network does not call trace keeps its colour
    darkness.
    """
    if darkness.shape != prob.shape:
        raise ValueError(f"darkness {darkness.shape} and probability {prob.shape} differ")
    lift = (prob > PROB_LEVEL) & _holds_ink(darkness, faint_level, inked)
    return np.where(lift, np.maximum(darkness, np.float32(run_level)),
                    darkness).astype(np.float32, copy=False)


def page_trace_map(image_rgb: np.ndarray, px_per_mm: float) -> np.ndarray | None:
    """The network's trace probability for the (deskewed) page, or None where the network is
    switched off (:data:`TRACE_RUNS_ENV`) or its model cannot be run."""
    if not trace_runs_from_env():
        return None
    from ecglens.core.errors import ModelError
    from ecglens.digitize.segment import trace_probability

    ppmm = px_per_mm if math.isfinite(px_per_mm) and px_per_mm > 0 else FALLBACK_PX_PER_MM
    try:
        return trace_probability(image_rgb, ppmm)
    except ModelError as exc:
        log.warning("digitizing without the segmentation network: %s", exc)
        return None


def trace_stage_ink(image_rgb: np.ndarray, darkness: np.ndarray, px_per_mm: float,
                    run_level: float, prob: np.ndarray | None = None,
                    inked: np.ndarray | None = None) -> np.ndarray | None:
    """:func:`raise_faint_trace` on the network's map of the (deskewed) page (``prob``, or
    made here), or None where the network is switched off or its model cannot be run;
    ``inked``: the page's :func:`inked_pixels` (made here at ``px_per_mm`` if not given)."""
    if prob is None:
        prob = page_trace_map(image_rgb, px_per_mm)
    if prob is None:
        return None
    if inked is None:
        inked = inked_pixels(image_rgb, darkness, px_per_mm=px_per_mm)
    return raise_faint_trace(darkness, prob, run_level, inked=inked)


ROWS_ENV = "ECGLENS_ROWS_NETWORK"
"""Environment variable for the ink the trace rows are found in: unset:
:data:`ROWS_DEFAULT`; ``0``: the colour darkness only; ``1``: the network's trace ink
(:func:`trace_only_ink`) on every read; ``fallback``: the network's on the last of the reads
a page whose rows were not found gets (``digitize.pipeline.RETRY_READS``)."""
ROWS_DEFAULT = "fallback"
"""The rows' ink unless told otherwise. Measured on the tune subsets (as :data:`PATH_DEFAULT`,
with the path on the map): ECG-Image-Kit 10.61 -> 11.29 dB (layout 5.59 -> 7.46, scan 10.69
-> 11.10; clean and wrinkles unchanged), own renders unchanged (19.55). The network's rows on
every read (``1``) gave 8.32 against 9.60 dB on the colour ink (both without the map path):
layout +1.6 and scan +0.7 dB, but clean -3.6 and wrinkles -5.2 dB. On the two losing pages
looked at, the rows' extents started after the calibration pulse (the network leaves it out;
a row's extent includes its pulse), and a page whose colour rows send it to a retry read was
read on the first read's ink instead. So each page's reads keep the colour rows, and the
network's rows are the last read tried."""


def rows_from_env(value: str | None = None) -> str:
    """``colour``, ``network`` or ``fallback`` (see :data:`ROWS_ENV`; ``value``: the variable's
    text, default read from the environment)."""
    text = _switch_text(ROWS_ENV, value)
    if not text:
        return ROWS_DEFAULT
    if text in OFF_WORDS:
        return "colour"
    if text in ON_WORDS:
        return "network"
    if text == "fallback":
        return text
    raise ValueError(f"{ROWS_ENV}={text!r}: expected 0, 1 or fallback")


def trace_only_ink(darkness: np.ndarray, prob: np.ndarray, run_level: float) -> np.ndarray:
    """The ink the network calls trace (``prob`` > :data:`PROB_LEVEL`), at least at
    ``run_level``, and paper everywhere else: lead names, the settings line and grid lines as
    dark as the trace stay out, and trace the colour stage put under the grid level (a dark
    grid) comes in."""
    if darkness.shape != prob.shape:
        raise ValueError(f"darkness {darkness.shape} and probability {prob.shape} differ")
    return np.where(prob > PROB_LEVEL, np.maximum(darkness, np.float32(run_level)),
                    np.float32(0.0)).astype(np.float32, copy=False)


PATH_ENV = "ECGLENS_TRACE_PATH"
"""Environment variable for the path search on the network's trace pixels
(:func:`path_ink`): unset: :data:`PATH_DEFAULT`; ``0``: off; ``1``: on."""
PATH_DEFAULT = True
"""Whether the trace stage's path search runs on the network's map (:func:`path_ink`) unless
told otherwise. Measured on the tune subsets (every 4th ECG-Image-Kit tune page, 58; every 8th
own seed-0 page, 30; each read off and on from its own copy of the same code, rows from the
colour ink): 2024 SNR ECG-Image-Kit 9.60 -> 10.61 dB (clean 14.62 -> 15.38, scan 8.81 ->
10.69, wrinkles 11.95 -> 13.37, layout 5.51 -> 5.59), own renders 19.81 -> 19.55 dB (clean
20.55 -> 20.08, scan 18.53 -> 18.63). What the own renders lose is mostly where two rows'
strokes meet at 20 mm/mV: on the colour darkness both paths entered the merged blob and it
was left unread (NaN); on the map one path can keep to a thin line beside it."""


def path_from_env(value: str | None = None) -> bool:
    """Whether the path search uses the network (``value``: the variable's text, default
    read from :data:`PATH_ENV`)."""
    return _on_off(PATH_ENV, value, PATH_DEFAULT)


PATH_COLOUR_SHARE = 0.5
"""Share of its colour darkness that ink the network does not call trace keeps for the path
search (:func:`path_ink`): only near-black ink of it is free to follow, so that a row with no
trace along it (a grid line taken for a row) keeps to its own line. With 0 (the network's
probability alone) such a row's path followed the neighbouring rows' strokes: a dark-gridded
real image of the family without truth (six single-column rows, seven colour rows mostly on
grid lines), refused before, passed the final ECG check with copied leads (also with 0.4;
refused with 0.5), and a pinned own-renderer page at 20 mm/mV was refused as not an ECG.
Cost on the tune subsets (as :data:`PATH_DEFAULT`, rows as :data:`ROWS_DEFAULT`):
ECG-Image-Kit 11.29 -> 10.90 dB (scan 11.10 -> 9.95: dark random-colour grids are followed
again on some pages; clean 15.38 -> 15.11), own renders 19.55 -> 19.65 dB."""


def path_ink(darkness: np.ndarray, prob: np.ndarray,
             faint_level: float = FAINT_TRACE_LEVEL,
             inked: np.ndarray | None = None) -> np.ndarray:
    """The darkness the trace stage's path search runs on: on every pixel that holds some ink
    (``inked``, default darkness >= ``faint_level``; see :func:`inked_pixels`) the network's
    trace probability, or
    :data:`PATH_COLOUR_SHARE` of the colour darkness where that is higher; 0 on paper.

    The path search follows ink: climbing a stroke costs the paper crossed, and a column's
    ink costs nothing. On the colour darkness, what is left of a grid line next to a trace
    (JPEG colour bleeding) is ink too, and a thin QRS stroke printed lighter than the
    baseline (anti-aliased at 100 dpi) was dearer to climb than that residue along the
    baseline under the spike: the path stayed there and the spike was read from a broken run
    or not at all. The network puts grid residue near 0 and the stroke near 1; paper stays
    paper, so its wider band does not widen the line. The runs are still read from the
    colour darkness (:func:`raise_faint_trace`).
    """
    if darkness.shape != prob.shape:
        raise ValueError(f"darkness {darkness.shape} and probability {prob.shape} differ")
    return np.where(_holds_ink(darkness, faint_level, inked),
                    np.maximum(prob, np.float32(PATH_COLOUR_SHARE) * darkness),
                    np.float32(0.0)).astype(np.float32, copy=False)


def row_trace_coverage(prob: np.ndarray, centres_px: list[float],
                       x_ranges_px: list[tuple[int, int]], px_per_mm: float,
                       reach_mm: float = 2.5) -> list[float]:
    """Per row, the share of its columns (``x_ranges_px``) where the network calls a pixel
    within ``reach_mm`` of the row's centre trace (``prob`` > :data:`PROB_LEVEL`)."""
    height = prob.shape[0]
    reach = max(1, round(reach_mm * px_per_mm))
    out = []
    for centre, (x0, x1) in zip(centres_px, x_ranges_px, strict=True):
        y = round(centre)
        band = prob[max(0, y - reach):min(height, y + reach + 1), max(0, x0):max(x0, x1)]
        out.append(float((band > PROB_LEVEL).any(axis=0).mean()) if band.size else 0.0)
    return out
