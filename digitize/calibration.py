"""Calibration: the 1-mV pulse at the start of each row, and the printed settings line.

A calibration pulse is a rectangle 1 mV tall (``gain`` mm) and 0.2 s wide (5 mm at 25 mm/s,
10 mm at 50 mm/s) whose bottom is the row's 0 mV line. Each row's pulse is found by matching
rectangle templates (every gain × speed × bottom line) against the ink darkness: all five
sides (lead-in, rising edge, top, falling edge, lead-out) must be inked, so a 10-mm pulse
is never read as 20 mm (its top is missing there) nor as 5 mm (no top line at 5 mm), even
where pulses of neighbouring rows overlap. The settings line (``25 mm/s 10 mm/mV``) read by
OCR confirms or contradicts the pulse; a disagreement is a warning and lowers confidence,
because silent ×2 errors are the classic failure of digitizers.

Some printers draw a narrower pulse (2–4 mm, no foot lines; four real phone photos of
ECG-Image-Kit): its height still gives the gain, but its width is no 0.2 s at either speed,
so it says nothing of the speed (``speed_mm_s`` None), which then comes from the settings line
or is assumed, with a warning. Such a pulse needs its three sides only and must beat every
standard-width match by :data:`NARROW_PULSE_PENALTY`. A standard-width pulse may have no foot
lines either (the trace starts beside it at its first sample's level): it is matched on its
three sides the same way, less :data:`FOOTLESS_PULSE_PENALTY`.
"""

from __future__ import annotations

import dataclasses
import logging
import re

import numpy as np

log = logging.getLogger(__name__)

GAINS_MM_MV: tuple[float, ...] = (5.0, 10.0, 20.0)
SPEEDS_MM_S: tuple[float, ...] = (25.0, 50.0)
DEFAULT_GAIN_MM_MV = 10.0
DEFAULT_SPEED_MM_S = 25.0
NARROW_PULSE_MM: tuple[float, float] = (2.0, 4.3)
"""Widths (mm) of a gain-only pulse: narrower than 0.2 s at 25 mm/s (5 mm, snapped within
15 %), wide enough not to be one stroke's own two sides."""
NARROW_PULSE_MIN_PX = 8
"""...and at least this many pixels wide, so that its inside can be seen to be empty (on the
2.3-px/mm real photo the label "III" under a row's start was taken for a 5-mm/mV pulse
2.4 mm wide, and the row's 0 mV line put 5 mm below its trace)."""
NARROW_PULSE_PENALTY = 0.15
"""Score a gain-only pulse gives up against standard-width matches (it has no foot lines to
check: the label "I" and a QRS upstroke beside a narrow pulse matched as a 5-mm/mV, 50-mm/s
pulse on a real phone photo, score 0.65, where the true narrow pulse's three sides score
~0.9)."""

TRACE_BEFORE_PULSE_MM = 10.0
"""Most inked columns (mm) near a row's centre line, in the searched strip left of a candidate
pulse (less 2 mm of lead-in), for it to be the row's pulse: a lead name before the pulse or a
scanner's dark edge strip is a few mm; more is the row's trace, and the candidate a QRS complex
further along it (ECG-Image-Kit layout variants without pulses, whose rows start at the page's
pulse column: a QRS 27 mm in was taken for a pulse and the time axis started there)."""
TRACE_LINE_MAX_SHARE = 0.5
"""...counting a column as trace only where ink covers less than this share of the band near
the row's centre line (a thin line, not a blotch): counting any ink there, the desk's dark
shading left of a wrinkled ECG-Image-Kit tune page hid its true pulses (14.47 → −4.94 dB) and a
refused photo without truth was read at a wrong scale; with it both read as before."""

FOOTLESS_PULSE_PENALTY = 0.1
"""Score a standard-width pulse matched on its three sides, with no foot line at its bottom,
gives up against one with its foot lines: it is checked like a narrow pulse (sides ending at
its bottom, hollow inside). ECG-Image-Kit's layout-variant pages start the trace at the first
sample's level beside the pulse, not at its bottom: no lead-out, and a QRS complex next to the
pulse's falling side matched as a footed 5-mm/mV, 50-mm/s pulse at 0.62-0.67, where the
footless pulses' three sides match at 0.87-0.89."""

HALF_PULSE_SIDES = 0.7
"""A pulse read as the upper half of one twice as tall (gain 5 → 10, 10 → 20 mm/mV) where
both its sides are drawn on (darkness ≥ ``SIDE_BELOW_LEVEL``) over this share of its height
below its bottom and the tall pulse's sides and top are inked at least this much with nothing
below its rising side (on the EIK tune pages whose rows were read at half gain, the halves'
sides ran on at 1.0 and the tall pulses matched at 0.75-1.0; 0.5 is the least match of any
pulse). On ECG-Image-Kit pages (footless pulses, a major grid line through the
pulse's middle that passes the ink level, 100 px/inch JPEG) the half matched a 5-mm pulse
with a foot line as well as the whole matched a 10-mm one: rows were read at half their gain
and their 0 mV line 5 mm high (a 0 mV line > 6 px off on 26 of 119 EIK tune pages, 9
after). A pulse of the row below reaching up (20-mm pulses of a
12-row page) is no lower half: no gain of twice 20 mm/mV is tried."""

SIDE_BELOW_LEVEL = 0.6
"""Darkness from which a pulse's side is seen to run on below its bottom (see
``HALF_PULSE_SIDES``). A drawn side is ~1; on ECG-Image-Kit pages the pulse stands on a
major vertical grid line, which passes the ink level at 0.1-0.5 below it."""


@dataclasses.dataclass(frozen=True)
class Pulse:
    """One calibration pulse.

    Attributes
    ----------
    row
        Row index it belongs to.
    x_left_px, x_right_px
        Centres of the rising and falling edges (page px).
    baseline_px
        The pulse bottom: the row's 0 mV line (page px).
    height_mm, width_mm
        Measured size (edge centre to edge centre).
    gain_mm_mv, speed_mm_s
        Snapped values; ``speed_mm_s`` is None for a narrow pulse (its width is no 0.2 s at
        either speed, see :data:`NARROW_PULSE_MM`): it gives the gain only.
    score
        Template match in [0, 1]: the weakest of its sides (a narrow pulse: of its three
        sides, less the ink inside it or below its sides).
    """

    row: int
    x_left_px: float
    x_right_px: float
    baseline_px: float
    height_mm: float
    width_mm: float
    gain_mm_mv: float
    speed_mm_s: float | None
    score: float


@dataclasses.dataclass(frozen=True)
class SettingsText:
    """Gain and speed read from the printed settings line (None where not read)."""

    gain_mm_mv: float | None
    speed_mm_s: float | None
    text: str


@dataclasses.dataclass(frozen=True)
class CalibrationResult:
    """Gain, speed and 0-mV lines decided from pulses and text.

    Attributes
    ----------
    gain_mm_mv, speed_mm_s
        The page's gain and speed.
    row_gain_mm_mv
        Gain per row (a half-standard row may differ).
    source
        ``"pulse+text"``, ``"pulse"``, ``"text"`` or ``"default"``.
    confidence
        In [0, 1].
    pulses
        Pulses found (one per row at most).
    text
        What the settings line said.
    warnings
        Human-readable problems (disagreement, defaults assumed).
    """

    gain_mm_mv: float
    speed_mm_s: float
    row_gain_mm_mv: tuple[float, ...]
    source: str
    confidence: float
    pulses: tuple[Pulse, ...]
    text: SettingsText | None
    warnings: tuple[str, ...]


def _snap(value: float, choices: tuple[float, ...], tolerance: float = 0.18) -> float | None:
    if not (np.isfinite(value) and value > 0):
        return None
    best = min(choices, key=lambda c: abs(np.log(value / c)))
    return best if abs(np.log(value / best)) <= tolerance else None


def _stroke_columns(dark: np.ndarray, min_len_px: int) -> list[float]:
    """Centres of column groups that hold a vertical ink run of at least ``min_len_px``."""
    import cv2

    mask = (dark >= 0.4).astype(np.uint8)
    kernel = np.ones((max(min_len_px, 3), 1), np.uint8)
    opened = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
    strength = opened.sum(axis=0).astype(float)
    on = strength > 0
    centres = []
    x = 0
    n = len(on)
    while x < n:
        if on[x]:
            start = x
            while x < n and on[x]:
                x += 1
            w = strength[start:x]
            centres.append(float(np.dot(np.arange(start, x), w) / w.sum()))
        else:
            x += 1
    return centres


def find_pulse(darkness: np.ndarray, row: int, row_centre_px: float, search_x: tuple[int, int],
               px_per_mm_x: float, px_per_mm_y: float, row_pitch_px: float) -> Pulse | None:
    """Find the calibration pulse of one row inside columns ``search_x``.

    Parameters
    ----------
    darkness
        Page ink darkness in [0, 1].
    row_centre_px
        Rough vertical position of the row's trace (the 0 mV line is searched ± half a pitch).
    search_x
        Columns to search (the row's leading ~35 mm).
    """
    h, w = darkness.shape
    x0, x1 = max(0, int(search_x[0])), min(w, int(search_x[1]))
    if x1 - x0 < 5 * px_per_mm_x:
        return None
    half_pitch = max(0.5 * row_pitch_px, 5 * px_per_mm_y)
    y_lo = int(max(0, row_centre_px - half_pitch - max(GAINS_MM_MV) * px_per_mm_y - 3))
    y_hi = int(min(h, row_centre_px + half_pitch + 3))
    region = darkness[y_lo:y_hi, x0:x1]
    if region.size == 0:
        return None
    # a thin anti-aliased line splits its ink over two pixels: add neighbour pairs, then
    # thicken by one pixel so 1-px misalignments still read as ink
    from scipy.ndimage import maximum_filter

    pair_x = np.clip(region + np.roll(region, 1, axis=1), 0, 1)
    pair_y = np.clip(region + np.roll(region, 1, axis=0), 0, 1)
    joined = np.maximum(pair_x, pair_y)
    thick = maximum_filter(joined, size=3)
    strokes = _stroke_columns(pair_x, round(3.5 * px_per_mm_y))
    if len(strokes) < 2:
        return None
    col_cum = np.vstack([np.zeros((1, thick.shape[1])), np.cumsum(thick, axis=0)])
    # a side running on below a pulse's bottom is seen on the darkness itself (a grid line
    # that passes the ink level, under the pulse's side, is lighter than a drawn side)
    strict = maximum_filter((region >= SIDE_BELOW_LEVEL).astype(np.float64), size=(1, 3))
    strict_cum = np.vstack([np.zeros((1, strict.shape[1])), np.cumsum(strict, axis=0)])
    row_cum = np.hstack([np.zeros((thick.shape[0], 1)), np.cumsum(thick, axis=1)])

    n_y, n_x = thick.shape
    # columns where the row's trace runs (a thin line of ink near its centre line, not a dark
    # blotch over most of it: a desk or shading beside the page): a pulse starts its row, so a
    # candidate with a stretch of trace before it is a complex (see TRACE_BEFORE_PULSE_MM)
    centre_band = max(0.25 * row_pitch_px, 3 * px_per_mm_y)
    c0 = round(row_centre_px - y_lo)
    near_centre = region[max(0, int(c0 - centre_band)):int(c0 + centre_band) + 1] >= 0.4
    # (a count, not a mean: the band can lie outside the region, with no rows)
    trace_cols = np.asarray(near_centre.any(axis=0)
                            & (near_centre.sum(axis=0)
                               < TRACE_LINE_MAX_SHARE * near_centre.shape[0]), dtype=float)
    trace_cum = np.concatenate([[0.0], np.cumsum(trace_cols)])
    max_before_px = TRACE_BEFORE_PULSE_MM * px_per_mm_x

    def hmean(ys: np.ndarray, xa: float, xb: float) -> np.ndarray:
        """Mean ink along rows ``ys`` (rounded) between columns ``xa`` and ``xb``."""
        yi = np.round(ys).astype(int)
        a, b = round(xa), round(xb)
        ok = (yi >= 0) & (yi < n_y)
        if b <= a or a < 0 or b > n_x:
            return np.zeros(len(ys))
        yc = np.clip(yi, 0, n_y - 1)
        return np.where(ok, (row_cum[yc, b] - row_cum[yc, a]) / (b - a), 0.0)

    def vmean(x: float, ya: np.ndarray, yb: np.ndarray, cum: np.ndarray = col_cum
              ) -> np.ndarray:
        """Mean ink down column ``x`` between rows ``ya`` and ``yb`` (rounded, clipped)."""
        xi = round(x)
        a = np.maximum(np.round(ya).astype(int), 0)
        b = np.minimum(np.round(yb).astype(int), n_y)
        if not 0 <= xi < n_x:
            return np.zeros(len(ya))
        ok = b > a
        a, b = np.clip(a, 0, n_y), np.clip(b, 0, n_y)
        return np.where(ok, (cum[b, xi] - cum[a, xi]) / np.maximum(b - a, 1), 0.0)

    best: tuple[float, float, float, int, float, float | None, float, float, bool] | None = None
    centre = row_centre_px - y_lo
    bottoms_all = np.arange(int(centre - half_pitch), int(centre + half_pitch) + 1)
    for i, xl in enumerate(strokes):
        for xr in strokes[i + 1:]:
            width_mm = (xr - xl) / px_per_mm_x
            speed = _snap(width_mm / 0.2, SPEEDS_MM_S, 0.15)
            narrow = (speed is None and NARROW_PULSE_MM[0] <= width_mm < NARROW_PULSE_MM[1]
                      and xr - xl >= NARROW_PULSE_MIN_PX)
            if speed is None and not narrow:
                continue
            if trace_cum[max(0, int(xl - 2 * px_per_mm_x))] > max_before_px:
                break   # every later candidate starts further right
            lead = max(1.2 * px_per_mm_x, 5.0)
            # a narrow pulse's top is checked across its whole width (the middle stroke of a
            # label "III" tops the central third of its outer strokes: a real image)
            inset = 2.0 if narrow else 0.35 * (xr - xl)
            for gain in GAINS_MM_MV:
                height = gain * px_per_mm_y
                # every candidate bottom line b at once (the pulse's top is b - height)
                bottoms = bottoms_all[(bottoms_all - height >= 0) & (bottoms_all < n_y)]
                if len(bottoms) == 0:
                    continue
                tops = bottoms - height
                lead_in = hmean(bottoms, xl - lead, xl - 2)
                sides = [vmean(xl, tops + 2, bottoms - 2),
                         hmean(tops, xl + inset, xr - inset),
                         vmean(xr, tops + 2, bottoms - 2)]
                # with no foot lines to end it (a narrow pulse; a footless one), its sides
                # must end at its bottom (the upper half of a 10-mm pulse is no 5-mm one), and
                # it is hollow (ink inside is text or a complex); a footless pulse's sides
                # must not both run on (a lead name may stand under one of them)
                below_each = (vmean(xl, bottoms + 3, bottoms + 0.5 * height),
                              vmean(xr, bottoms + 3, bottoms + 0.5 * height))
                below = (np.maximum if narrow else np.minimum)(*below_each)
                inside = np.array([hmean(tops + k, xl + 3, xr - 3)
                                   for k in (0.25 * height, 0.5 * height, 0.75 * height)]
                                  ).max(axis=0)
                sides_only = np.minimum.reduce(sides) - np.maximum(below, inside)
                penalty = NARROW_PULSE_PENALTY if narrow else FOOTLESS_PULSE_PENALTY
                footed = (np.full(len(bottoms), -np.inf) if narrow else
                          np.minimum.reduce([*sides, hmean(bottoms, xr + 2, xr + lead)]))
                # candidates are ranked with the three-sided match's penalty; a pulse's score
                # is its match (the lead-in is optional: some printers start the row with the
                # pulse)
                ranks = np.maximum(footed, sides_only - penalty) + 0.01 * lead_in
                # the first of near-equal maxima (the topmost line of a thick pulse base)
                k = int(np.flatnonzero(ranks >= ranks.max() - 1e-6)[0])
                footless = not narrow and sides_only[k] - penalty > footed[k]
                if best is None or ranks[k] > best[0] + 1e-6:
                    score = (sides_only[k] if narrow or footless else footed[k]) + 0.01 * lead_in[k]
                    best = (float(ranks[k]), xl, xr, int(bottoms[k]), gain, speed, width_mm,
                            float(score), footless)
    if best is None or best[0] < 0.5:
        return None
    _, xl, xr, b, gain, speed, width_mm, score, footless = best
    bare_pulse = footless
    if speed is not None and not footless and 2 * gain in GAINS_MM_MV:
        # the upper half of a footless pulse twice as tall: both sides run on, drawn, for
        # the whole height again below the bottom (a major grid line through the pulse's
        # middle passes the ink level and gave the half a foot line)
        height = gain * px_per_mm_y
        rest = [vmean(x, np.array([b + 3.0]), np.array([b + height - 2.0]), strict_cum)[0]
                for x in (xl, xr)]
        b2 = np.array([b + height])
        tall = min(float(vmean(xl, b2 - 2 * height + 2, b2 - 2)[0]),
                   float(hmean(b2 - 2 * height, xl + 0.35 * (xr - xl),
                               xr - 0.35 * (xr - xl))[0]),
                   float(vmean(xr, b2 - 2 * height + 2, b2 - 2)[0])) - float(
            vmean(xl, b2 + 3, b2 + height, strict_cum)[0])
        # (the tall pulse's bottom, too, must lie where the 0 mV line is searched)
        if (min(rest) >= HALF_PULSE_SIDES and tall >= HALF_PULSE_SIDES
                and b2[0] <= bottoms_all[-1]):
            b, gain, score, bare_pulse = int(b2[0]), 2 * gain, tall, True
    # refine the bottom line to sub-pixel with the darkness centroid of the lead-in
    yb = int(b)
    xa, xb = int(max(0, xl - 1.2 * px_per_mm_x)), int(max(1, xl - 2))
    prof = region[max(yb - 3, 0):yb + 4, xa:xb].sum(axis=1)
    if prof.sum() > 0:
        b_sub = max(yb - 3, 0) + float(np.dot(np.arange(len(prof)), prof) / prof.sum())
    else:
        b_sub = float(yb)
    yt = round(b - gain * px_per_mm_y)
    prof = region[max(yt - 3, 0):yt + 4, int(xl + 0.3 * (xr - xl)):int(xr - 0.3 * (xr - xl))].sum(
        axis=1)
    t_sub = max(yt - 3, 0) + float(np.dot(np.arange(len(prof)), prof) / prof.sum()) if \
        prof.sum() > 0 else float(yt)
    height_mm = (b_sub - t_sub) / px_per_mm_y
    if bare_pulse:
        # a footless pulse's height (see HALF_PULSE_SIDES): from where its sides end
        height_mm = (b - t_sub) / px_per_mm_y
    if speed is None or bare_pulse:
        # a narrow (or footless) pulse has no lead-in to refine its bottom on, and its sides
        # end in the pen's round caps: its 0 mV line is its top line's centre less 1 mV
        # (1-2 px closer than its sides' ends on a 150-dpi render)
        b_sub = t_sub + gain * px_per_mm_y
    return Pulse(row=row, x_left_px=xl + x0, x_right_px=xr + x0, baseline_px=b_sub + y_lo,
                 height_mm=round(height_mm, 3), width_mm=round(width_mm, 3),
                 gain_mm_mv=gain, speed_mm_s=speed, score=round(score, 3))


STANDARD_PULSE_ASPECT: dict[float, float] = {25.0: 0.5, 50.0: 1.0}
"""Width over height of the standard 1-mV, 0.2-s pulse at 10 mm/mV, per paper speed (mm/s)."""
PULSE_ASPECT_TOL = 0.2
"""Largest log-distance of a pulse's width/height from a standard aspect for its height to set
the page's scale. On the ECG-Image-Kit pages printed without a grid (folds 1-9: 25 mm/s,
10 mm/mV) the pulses read at the 200-dpi fallback measured 0.44-0.51."""
PULSE_SCALE_AGREE = 0.1
"""Pulses whose heights (px) lie within this share of their median set the scale together."""
MIN_SCALE_PULSES = 2
"""Pulses that must agree before their height sets the scale of a page without a grid: one
stroke can be a lead name or a QRS complex that fits the pulse template."""


@dataclasses.dataclass(frozen=True)
class PulseScale:
    """The page's scale from its calibration pulses, on a page whose grid gave none.

    Attributes
    ----------
    px_per_mm
        Scale (px/mm, both axes): the agreeing pulses' median height over 10 mm.
    speed_mm_s
        The paper speed their width says (:data:`STANDARD_PULSE_ASPECT`).
    pulses
        Every pulse re-measured at that scale; pulses that no longer snap to a gain are dropped.
    n_agree
        How many pulses set the scale.
    """

    px_per_mm: float
    speed_mm_s: float
    pulses: tuple[Pulse, ...]
    n_agree: int


def scale_from_pulses(pulses: list[Pulse], px_per_mm_x: float, px_per_mm_y: float
                      ) -> PulseScale | None:
    """The scale of a page without a grid from its pulses, read at an assumed scale
    (``px_per_mm_x``, ``px_per_mm_y``), taking them as the standard 1 mV at 10 mm/mV: at least
    :data:`MIN_SCALE_PULSES` of similar height whose width/height is a standard pulse's at
    25 or 50 mm/s. None where they are too few, disagree or have no standard shape."""
    if len(pulses) < MIN_SCALE_PULSES:
        return None
    heights = np.array([p.height_mm * px_per_mm_y for p in pulses])
    widths = np.array([p.width_mm * px_per_mm_x for p in pulses])
    median = float(np.median(heights))
    agree = np.abs(heights / median - 1.0) <= PULSE_SCALE_AGREE
    if int(agree.sum()) < MIN_SCALE_PULSES or median <= 0:
        return None
    aspect = float(np.median(widths[agree] / heights[agree]))
    speed = min(STANDARD_PULSE_ASPECT, key=lambda s: abs(np.log(aspect / STANDARD_PULSE_ASPECT[s])))
    if abs(np.log(aspect / STANDARD_PULSE_ASPECT[speed])) > PULSE_ASPECT_TOL:
        return None
    px_per_mm = float(np.median(heights[agree])) / DEFAULT_GAIN_MM_MV
    rescaled = []
    for p, height_px, width_px in zip(pulses, heights, widths, strict=True):
        gain = _snap(height_px / px_per_mm, GAINS_MM_MV)
        if gain is None:
            continue
        width_mm = width_px / px_per_mm
        rescaled.append(dataclasses.replace(
            p, height_mm=round(height_px / px_per_mm, 3), width_mm=round(width_mm, 3),
            gain_mm_mv=gain, speed_mm_s=_snap(width_mm / 0.2, SPEEDS_MM_S)))
    return PulseScale(px_per_mm=px_per_mm, speed_mm_s=speed, pulses=tuple(rescaled),
                      n_agree=int(agree.sum()))


_SPEED_RE = re.compile(r"(\d{2}(?:[.,]\d+)?)\s*mm\s*/?\s*s(?:ec)?\b", re.IGNORECASE)
_GAIN_RE = re.compile(r"(\d{1,2}(?:[.,]\d+)?)\s*mm\s*/?\s*m\s*V", re.IGNORECASE)


_OCR_DIGIT = {"@": "0", "O": "0", "o": "0", "D": "0", "S": "5", "s": "5", "l": "1", "I": "1",
              "|": "1", "Z": "2", "z": "2"}
"""Letters OCR reads for digits in a number before ``mm`` (``5@mm/s Smm/mV`` on an
own-renderer page is ``50 mm/s 5 mm/mV``)."""
_NUMBER_BEFORE_MM = re.compile(r"([0-9@OoDSslI|Zz][0-9@OoDSslI|Zz.,]{0,3})(?=\s*mm)")


def _digits_before_mm(text: str) -> str:
    """``text`` with OCR's letter-for-digit confusions undone in the numbers before ``mm``
    (a token becomes a number only if it then is one, with at least one real digit or
    standing alone before ``mm``)."""
    def fix(match: re.Match[str]) -> str:
        token = match.group(1)
        fixed = "".join(_OCR_DIGIT.get(c, c) for c in token)
        return fixed if re.fullmatch(r"\d+(?:[.,]\d+)?", fixed) else token

    return _NUMBER_BEFORE_MM.sub(fix, text)


def _setting_value(number: str, choices: tuple[float, ...]) -> float | None:
    """The printed setting ``number`` is, or None. No gain or speed has an 8 in it, so an 8
    in a number that is none is OCR's reading of a 0 (``58mm/s`` for ``50mm/s`` at 150 dpi)."""
    for candidate in dict.fromkeys((number, number.replace("8", "0"))):
        value = _snap(float(candidate.replace(",", ".")), choices, 0.05)
        if value is not None:
            return value
    return None


def parse_settings_text(text: str) -> SettingsText:
    """Gain and speed from OCR text such as ``25 mm/s 10 mm/mV`` (None where absent)."""
    gain = speed = None
    raw = text
    text = _digits_before_mm(text)
    for match in _GAIN_RE.finditer(text):
        value = _setting_value(match.group(1), (*GAINS_MM_MV, 2.5, 40.0))
        if value is not None:
            gain = value
            break
    cleaned = _GAIN_RE.sub(" ", text)
    for match in _SPEED_RE.finditer(cleaned):
        value = _setting_value(match.group(1), (*SPEEDS_MM_S, 12.5, 100.0))
        if value is not None:
            speed = value
            break
    return SettingsText(gain_mm_mv=gain, speed_mm_s=speed, text=raw.strip()[:200])


PULSE_HEIGHT_TOL = 0.08
"""Largest relative difference between a pulse's measured height and its nominal gain for the
pulse to vote when other pulses measure true."""
STANDARD_GAIN_SUPPORT = 2
"""A gain other than the standard 10 mm/mV is read from the pulses only where they are found on
at least half the rows and the rows with a pulse of that gain outnumber those with a 10-mm pulse
more than this many times (or the settings line says that gain); otherwise 10 mm/mV, with a
warning. Set on the stored pulses of the family run at ``450f0c1`` (every pulse each read found,
re-voted offline): a QRS complex, a lead name or half of a footless pulse taken for a 5- or 20-mm
pulse on one or two rows outvoted a 10-mm pulse on ECG-Image-Kit pages (fold 1-9: gain right
261 → 268 of 272 reads) and on two phone photos (14 → 16 of 16); on 240 own renders (seed 0,
a third at 5 or 20 mm/mV, every gain right before) no gain changes, the closest being a 12x1
page at 20 mm/mV whose one exact 20-mm pulse is joined by eleven overlapping 5.8-mm tops and no
10-mm pulse. Factor 1 would leave a footless ECG-Image-Kit pulse read as two 5-mm halves on two
rows against one whole (a 3x4+1 page) at 5 mm/mV."""
STANDARD_SPEED_ROWS = 0.5
"""Least share of the rows with a pulse as wide as a speed other than 25 mm/s for that speed to be
read (where the settings line does not say it): the same offline re-vote moved one
ECG-Image-Kit page to 25 mm/s (266 → 267 of 272) and no own render (240 of 240 before and after);
footless ECG-Image-Kit pulses whose lead-out is the trace measured 10 mm wide on every row and
kept reading 50 mm/s (until they were matched footless, :data:`FOOTLESS_PULSE_PENALTY`). Where
the pulses' own gain is overruled, only the pulses of the page's gain count here: re-voted on
the stored pulses of every family's reads after that match (ECG-Image-Kit 285, own every 4th 59,
photos 34, real images 42), one ECG-Image-Kit page read at 50 mm/s from one 10-mm/mV "pulse"
among QRS complexes of 5 and 20 mm/mV goes to 25 mm/s (right), no other read changes."""


ROW_GAIN_MIN_ROWS = 2
"""Least number of rows whose pulses say a gain other than the page's for those rows to be read
at it (a 12x1 page printing its six chest leads at half gain has six). In every family's reads
at ``01de7e8`` (ECG-Image-Kit 278, own renders 59, photos 33, real images 41) 21 reads had a
row at a gain other than the page's and none was printed so (the ECG-Image-Kit truth, the own
renderer and the photos' PTB-XL prints use one gain per page; no real image was read with two):
a lead name under a pulse's leg or another row's QRS beside it made a 10-mm pulse measure 20 or
5 mm, and the row was read at half or twice its amplitude. 20 of the 21 had that row alone at
its gain (one of them, a page whose gain was misread as 5 mm/mV, had its one right row)."""


def decide_calibration(pulses: list[Pulse], n_rows: int, text: SettingsText | None
                       ) -> CalibrationResult:
    """Combine the row pulses and the settings text into one gain and speed (see module doc)."""
    warnings: list[str] = []
    pulse_gain = pulse_speed = None
    # a pulse whose measured height is off its nominal gain by more than 8 % is another row's
    # ink read as a pulse (the top of a 20-mm pulse from the row below looks like a 5-mm
    # one); where some pulses measure true, only those vote
    exact = [p for p in pulses if abs(p.height_mm / p.gain_mm_mv - 1.0) <= PULSE_HEIGHT_TOL]
    voters = exact or pulses
    text_gain = text.gain_mm_mv if text else None
    text_speed = text.speed_mm_s if text else None
    overruled: set[float] = set()
    if pulses:
        gains = [p.gain_mm_mv for p in voters]
        pulse_gain = max(set(gains), key=gains.count)
        if len(set(gains)) > 1:
            warnings.append(f"calibration pulses disagree on gain: {sorted(set(gains))} mm/mV")
        if pulse_gain != DEFAULT_GAIN_MM_MV and text_gain != pulse_gain:
            rows_with_pulse = {p.row for p in pulses}
            rows_of_gain = {p.row for p in pulses if p.gain_mm_mv == pulse_gain}
            rows_standard = {p.row for p in pulses if p.gain_mm_mv == DEFAULT_GAIN_MM_MV}
            if (len(rows_of_gain) <= STANDARD_GAIN_SUPPORT * len(rows_standard)
                    or 2 * len(rows_with_pulse) < n_rows):
                warnings.append(
                    f"pulses of {pulse_gain:g} mm/mV on {len(rows_of_gain)} of {n_rows} rows "
                    f"({len(rows_standard)} of 10 mm/mV) are too few to depart from the "
                    "standard: read at 10 mm/mV")
                overruled.add(pulse_gain)
                pulse_gain = DEFAULT_GAIN_MM_MV
        # the width of a pulse read at another gain is another row's ink too: the speed is
        # voted by the pulses of the page's gain (an own 12x1 render at 20 mm/mV and 25 mm/s,
        # 100 dpi: 5-mm "pulses" 10 mm wide from overlapping rows tied the speed vote)
        same_gain = [p for p in (voters if not overruled else pulses)
                     if p.gain_mm_mv == pulse_gain and p.speed_mm_s is not None]
        speeds = [p.speed_mm_s for p in same_gain if p.speed_mm_s is not None]
        # narrow pulses give the gain only (module doc)
        pulse_speed = max(sorted(set(speeds)), key=speeds.count) if speeds else None
        if (pulse_speed is not None and pulse_speed != DEFAULT_SPEED_MM_S
                and text_speed != pulse_speed):
            # (where the pulses' own gain was overruled, most of them are no pulses: only
            # those of the page's gain show the speed)
            rows_of_speed = {p.row for p in (same_gain if overruled else pulses)
                             if p.speed_mm_s == pulse_speed}
            if (len(rows_of_speed) < STANDARD_SPEED_ROWS * n_rows
                    or any(p.speed_mm_s == DEFAULT_SPEED_MM_S for p in same_gain)):
                warnings.append(f"pulses {pulse_speed:g} mm/s wide on {len(rows_of_speed)} of "
                                f"{n_rows} rows: read at 25 mm/s")
                pulse_speed = DEFAULT_SPEED_MM_S
    confidence = 1.0
    if pulse_gain is not None:
        gain, source = pulse_gain, "pulse"
        if text_gain is not None:
            if text_gain == pulse_gain:
                source = "pulse+text"
            else:
                warnings.append(f"pulse says {pulse_gain:g} mm/mV but the settings line says "
                                f"{text_gain:g} mm/mV; using the pulse")
                confidence -= 0.4
    elif text_gain is not None:
        gain, source = text_gain, "text"
        confidence -= 0.2
        warnings.append("no calibration pulse found; gain from the settings line")
    else:
        gain, source = DEFAULT_GAIN_MM_MV, "default"
        confidence -= 0.6
        warnings.append("no calibration pulse and no settings line: assumed 10 mm/mV")
    if pulse_speed is not None:
        speed = pulse_speed
        if text_speed is not None and text_speed != pulse_speed:
            warnings.append(f"pulse width says {pulse_speed:g} mm/s but the settings line says "
                            f"{text_speed:g} mm/s; using the pulse")
            confidence -= 0.4
    elif text_speed is not None:
        speed = text_speed
    else:
        speed = DEFAULT_SPEED_MM_S
        confidence -= 0.3
        warnings.append("paper speed not printed or not read: assumed 25 mm/s")
    if pulses and pulse_speed is None:
        widths = sorted(p.width_mm for p in pulses)
        warnings.append(f"calibration pulses {widths[len(widths) // 2]:.1f} mm wide: no 0.2 s at "
                        "25 or 50 mm/s, so they give the gain only")
    row_gain = [gain] * n_rows
    own_gain: dict[int, float] = {}
    for p in pulses:
        # a row keeps its own gain only from a pulse of the page's width: every pulse on a
        # page is printed at one paper speed, so one of another width is a row's complex
        # taken for a pulse (an own 12x1 render: three 5-mm "pulses" 11 mm wide among 5-mm
        # wide 20-mm ones put those rows at 4x their amplitude)
        # (narrow pulses only where the page has no standard-width one)
        same_width = p.speed_mm_s == speed if pulse_speed is not None else p.speed_mm_s is None
        if (0 <= p.row < n_rows and (p in voters or p.gain_mm_mv == gain) and same_width
                and p.gain_mm_mv not in overruled):
            own_gain[p.row] = p.gain_mm_mv
    for row, row_gain_mm_mv in own_gain.items():
        rows_alike = sum(1 for g in own_gain.values() if g == row_gain_mm_mv)
        if row_gain_mm_mv == gain or rows_alike >= ROW_GAIN_MIN_ROWS:
            row_gain[row] = row_gain_mm_mv
        else:
            warnings.append(f"row {row}'s pulse says {row_gain_mm_mv:g} mm/mV, no other row's "
                            f"does: read at the page's {gain:g} mm/mV")
    if pulses and len(pulses) < n_rows:
        warnings.append(f"calibration pulse found on {len(pulses)} of {n_rows} rows")
        confidence -= 0.1
    return CalibrationResult(gain_mm_mv=gain, speed_mm_s=speed, row_gain_mm_mv=tuple(row_gain),
                             source=source, confidence=round(max(confidence, 0.05), 3),
                             pulses=tuple(pulses), text=text, warnings=tuple(warnings))
