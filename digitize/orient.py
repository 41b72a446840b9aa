"""Orientation stage: is the page upright, or turned by 90°, 180° or 270°?

One decision per page, made on the ink darkness of the page as given (grid, deskew and ink
stages of ``digitize.pipeline``) before its rows are read, from three kinds of evidence:

* **calibration pulses**: an upright page starts its rows with pulses drawn upward from the
  0 mV line at their left end; turned, they stand elsewhere and point another way. The
  pipeline's own pulse search (:func:`digitize.pulse_rows.row_pulse`) runs on the page turned
  back by each of the four rotations (rows found across the image for 0° and 180°, down it
  for 90° and 270°); only pulses that match the template well (:data:`MIN_PULSE_SCORE`) and
  stand in one column with one gain and speed count (pulse-like strokes in a trace scatter);
* **lead names**: the labels that read as no lead name when turned (``aVR``, ``aVL``,
  ``aVF``, ``V1``–``V6``; ``I``, ``II``, ``III`` read the same upside down) are read by OCR
  in all four ways in one batched call;
* **trace direction**: trace rows (:func:`digitize.layout_detect.find_rows`) run across the
  image on a page that is upright or upside down, down it on a page turned by 90° or 270°;
  along them, a small 1-D network (:mod:`digitize.trace_direction`) tells an ECG read the
  right way from one read reversed in time and inverted (what a turn by 180° does to it).

The upright page's pulses are looked for first; where they stand on enough rows
(:data:`UPRIGHT_PULSES`) the page is upright and nothing else is measured. Otherwise pulses
and lead names each vote (:func:`decide`). A page is turned only on such a vote, and refused
before reading only where the two votes disagree. Where neither votes, the trace direction
does, if it is clear (:data:`DIRECTION_SCORE`); where nothing says which way the page is
turned, it is read as it is with a warning, and if its traces run down the page a failed read
says it appears turned. Turning is lossless (:func:`turn_upright`,
``numpy.rot90``), so a turned page reads as its upright original.

Not used: tesseract's orientation detection (``image_to_osd``, osd traineddata installed)
took 1–2.5 s a page, found too few characters on pages whose only text is the lead names,
and named 90° for an upright real image; the share of the rows' deflections that
point up (QRS polarity) was negative on 65 of 252 upright ECG-Image-Kit pages.
"""

from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np

from ecglens.digitize.calibration import Pulse
from ecglens.digitize.layout_detect import Row, RowsResult, find_rows
from ecglens.digitize.pulse_rows import row_pulse, rows_start_px
from ecglens.digitize.trace_direction import page_direction

log = logging.getLogger(__name__)

ROTATIONS_DEG: tuple[int, ...] = (0, 90, 180, 270)
"""Rotations the stage tells apart: the counter-clockwise angle (as displayed) by which the
page as given is turned from upright."""

ASYMMETRIC_LEADS: frozenset[str] = frozenset(
    {"aVR", "aVL", "aVF", "-aVR", "V1", "V2", "V3", "V4", "V5", "V6"})
"""Lead names that read as no lead name turned by 180° (``I``, ``II``, ``III`` read the same)."""

PULSE_COLUMN_MM = 5.0
"""Pulses whose right edges lie within this of each other stand in one column (as
``digitize.pipeline.PULSE_COLUMN_MM``)."""

MIN_PULSE_SCORE = 0.9
"""Least template score (:attr:`digitize.calibration.Pulse.score`) of a pulse that counts as
orientation evidence. Pulse-like strokes at the rows' other end scored up to 0.87 on the
families (a last QRS with a printer's end mark on a photo; ST-elevation 'tombstones' on a real
image, 0.50–0.82); printed pulses score 1.0 on rendered pages."""

MIN_PULSE_VOTE = 2
"""Least pulses that vote for an orientation (at least twice any other orientation's). The
most pulses (score ≥ :data:`MIN_PULSE_SCORE`, one column, gain and speed) found at a wrong
orientation of an upright page: 2 on one ECG-Image-Kit page with 4 upright, 1 on 14
other pages of the four families (and 7 on one real image, whose dark major grid
squares match 5-mm pulses everywhere: upright by :data:`UPRIGHT_PULSES` first)."""

UPRIGHT_PULSES = 3
"""Upright pulses (on all rows of a page with fewer, but at least :data:`MIN_PULSE_VOTE`) that
make a page upright without further evidence."""

MAX_LABEL_WORDS = 30
"""Label-shaped words read per orientation (the largest first)."""

LABEL_WIDTH_MM = 12.0
"""Widest word read as a lead name."""

MIN_LEAD_NAMES = 2
"""Least asymmetric lead names that vote for an orientation (at least twice any other
orientation's). One name at a wrong orientation of an upright page was read on 27 pages of
the four families, three on one (an own-set page, nine upright), two on one (a photo, seven
upright)."""

CONFIRMED = 0.7
"""Least confidence of an orientation that pulses or lead names decided."""

DIRECTION_SCORE = 2.0
"""Least mean window score (:func:`digitize.trace_direction.page_direction`, either sign)
that votes for a direction. On the tune parts' upright pages as given
(``benchmarks/trace_direction_check.py``: own set every 4th page, 59 scored; ECG-Image-Kit
folds 1–8, 196 scored) the lowest score was −1.68 (one scan page) and every other was above
−0.7; 2.0 leaves a margin. At 2.0 the score votes upright on 52/59 own and 168/196
ECG-Image-Kit tune pages, and on the parts not tuned on 45/56 ECG-Image-Kit fold-9 pages,
41/48 real images and 4/19 real photos, with none the wrong way."""

MIN_DIRECTION_WINDOWS = 4
"""Least trace windows (2.5 s each) behind a trace-direction vote."""

MIN_ROWS_DOWN = 3
"""Least trace rows down the image (with none across it) for a page without a vote to be
suspected of being turned by 90° or 270°. Not enough to refuse it before reading: a dense
12-row page at 20 mm/mV with faint traces (``tests/test_digitize_pipeline.py``) has
no row across at the first ink level and its QRS complexes make rows down."""


@dataclasses.dataclass(frozen=True)
class Orientation:
    """The orientation stage's decision and its evidence.

    Attributes
    ----------
    rotation_deg
        Counter-clockwise angle (0, 90, 180, 270) by which the page as given is turned from
        upright; the page is turned back by it before it is read.
    refused
        Empty, or why the page is refused before it is read (its pulses and its lead names
        say it is turned, each another way).
    suspicion
        Empty, or that the page appears turned by 90° or 270° (its traces run down it) with
        nothing to say which way: it is read as it is, and where that read fails or is no
        ECG, the error begins with this.
    rows_across, rows_down
        Trace rows found across the image and down it (None: not measured).
    pulses
        Rows with upright calibration pulses at their left start (one column, gain and
        speed) on the page turned back by each of :data:`ROTATIONS_DEG` (None: not measured).
    lead_names
        Asymmetric lead names read on the page turned back by each of :data:`ROTATIONS_DEG`
        (None: not read).
    direction
        Mean trace-direction score (:func:`digitize.trace_direction.page_direction`) of the
        rows across the page (> 0: upright, < 0: turned by 180°) and of the rows down it
        (> 0: turned by 90°, < 0: by 270°), with their window counts (None: not measured).
    confidence
        1 where pulses and lead names agree or the upright pulses decide, 0.7 on one of them
        or on the trace direction alone, 0.5 where nothing says the page is turned, 0 where
        the evidence disagrees or the traces run down the page.
    reason
        One line: what decided it, and the evidence.
    """

    rotation_deg: int
    refused: str
    suspicion: str
    rows_across: int
    rows_down: int | None
    pulses: tuple[int | None, ...]
    lead_names: tuple[int, ...] | None
    direction: tuple[tuple[float, int] | None, tuple[float, int] | None]
    confidence: float
    reason: str

    @property
    def turned(self) -> bool:
        """Whether the page is turned back before it is read."""
        return self.rotation_deg != 0 and not self.refused

    @property
    def confirmed(self) -> bool:
        """Whether calibration pulses or lead names decided the orientation (else the page
        is read as it is, and upside down it would be read wrong)."""
        return self.confidence >= CONFIRMED

    def to_json(self) -> dict[str, object]:
        """JSON-ready dict (the page JSON's ``orientation``)."""
        return dataclasses.asdict(self)


def given_upright() -> Orientation:
    """The decision where the caller states that the page is upright as given (the stage is
    not run; ``--upright`` on the command line)."""
    return Orientation(rotation_deg=0, refused="", suspicion="", rows_across=0, rows_down=None,
                       pulses=(None, None, None, None), lead_names=None,
                       direction=(None, None), confidence=1.0,
                       reason="given as upright by the caller")


def turn_upright(image: np.ndarray, rotation_deg: int) -> np.ndarray:
    """The page turned back by ``rotation_deg`` (a multiple of 90°, counter-clockwise as the
    page is turned), as a contiguous array; lossless."""
    k = (-int(rotation_deg) // 90) % 4
    return np.ascontiguousarray(np.rot90(image, k)) if k else image


def _turned_back(darkness: np.ndarray, rotation_deg: int) -> np.ndarray:
    """A view of ``darkness`` turned back by ``rotation_deg``."""
    return np.rot90(darkness, (-int(rotation_deg) // 90) % 4)


def _mirror_rows(rows: RowsResult, height: int, width: int) -> RowsResult:
    """``rows`` of a ``(height, width)`` map as they lie on that map turned by 180°."""
    mirrored = [Row(k, height - 1 - r.centre_px, r.coverage, width - 1 - r.x_last_px,
                    width - 1 - r.x_first_px) for k, r in enumerate(reversed(rows.rows))]
    return RowsResult(rows=tuple(mirrored), pitch_px=rows.pitch_px)


def _pulse_group(pulses: list[Pulse], px_per_mm_x: float) -> int:
    """Most pulses of one gain and speed whose right edges lie within
    :data:`PULSE_COLUMN_MM` of one of theirs."""
    best = 0
    for key in {(p.gain_mm_mv, p.speed_mm_s) for p in pulses}:
        rights = np.array([p.x_right_px for p in pulses
                           if (p.gain_mm_mv, p.speed_mm_s) == key])
        near = np.abs(rights[:, None] - rights[None, :]) <= PULSE_COLUMN_MM * px_per_mm_x
        best = max(best, int(near.sum(axis=1).max()))
    return best


def pulse_count(darkness: np.ndarray, rows: RowsResult, px_per_mm_x: float,
                px_per_mm_y: float, enough: int | None = None) -> int:
    """Rows with a calibration pulse at their left start, drawn upward (the pipeline's
    search), of score ≥ :data:`MIN_PULSE_SCORE`, one gain and speed and in one column; the
    search stops once ``enough`` are found."""
    if not rows.rows:
        return 0
    pitch = rows.pitch_px if math.isfinite(rows.pitch_px) else 40.0 * px_per_mm_y
    start = rows_start_px(rows)
    pulses: list[Pulse] = []
    for row in rows.rows:
        pulse = row_pulse(darkness, row, px_per_mm_x, px_per_mm_y, pitch, start)
        if pulse is not None and pulse.score >= MIN_PULSE_SCORE:
            pulses.append(pulse)
            if enough is not None and _pulse_group(pulses, px_per_mm_x) >= enough:
                break
    return _pulse_group(pulses, px_per_mm_x) if pulses else 0


def _turn_box(box: tuple[int, int, int, int], shape: tuple[int, ...], k: int
              ) -> tuple[int, int, int, int]:
    """A box ``(x0, y0, x1, y1)`` (ends exclusive) of a map of ``shape``, on
    ``np.rot90(map, k)`` (one step takes pixel ``(x, y)`` to ``(y, W - 1 - x)``)."""
    x0, y0, x1, y1 = box
    h, w = shape[:2]
    for _ in range(k % 4):
        x0, y0, x1, y1 = y0, w - x1, y1, w - x0
        h, w = w, h
    return x0, y0, x1, y1


def _word_crops(lab: np.ndarray, boxes: list[tuple[int, int, int, int]], comps: np.ndarray,
                rotation_deg: int, px_per_mm: float) -> list[np.ndarray]:
    """Label-shaped words of the page turned back by ``rotation_deg``: each word's own
    component pixels (True), at most :data:`MAX_LABEL_WORDS`, the largest first."""
    from ecglens.digitize.labels import _group_words

    k = (-rotation_deg // 90) % 4
    view = np.rot90(lab, k)
    turned = [_turn_box(boxes[i], lab.shape, k) for i in comps]
    # a lead name is one to three letters: wider than tall, up to 4x (a word of a header
    # line is wider; the letters of a word turned by 90 deg stand one above the other)
    words = [wd for wd in _group_words(turned, 1.5 * px_per_mm)
             if wd[3] - wd[1] <= wd[2] - wd[0] <= min(4 * (wd[3] - wd[1]),
                                                      LABEL_WIDTH_MM * px_per_mm)]
    words.sort(key=lambda wd: -(wd[3] - wd[1]) * (wd[2] - wd[0]))
    return [np.isin(view[y0:y1, x0:x1], [int(comps[m]) for m in members])
            for x0, y0, x1, y1, members in words[:MAX_LABEL_WORDS]]


def _read_crops(crops: list[np.ndarray]) -> list[str]:
    """OCR of word crops (True = ink) stacked into one image (one call): a text per crop."""
    import cv2

    from ecglens.digitize.ocr import image_to_data

    target_cap, pad = 34.0, 24
    pieces = []
    for patch in crops:
        scale = min(target_cap / max(patch.shape[0], 1), 6.0)
        size = (max(1, round(patch.shape[1] * scale)), max(1, round(patch.shape[0] * scale)))
        pieces.append(255 - cv2.resize(patch.astype(np.uint8) * 255, size,
                                       interpolation=cv2.INTER_AREA))
    width = max(p.shape[1] for p in pieces) + 2 * pad
    canvas = np.full((sum(p.shape[0] + 2 * pad for p in pieces), width), 255, np.uint8)
    ends = []
    y = 0
    for p in pieces:
        canvas[y + pad:y + pad + p.shape[0], pad:pad + p.shape[1]] = p
        y += p.shape[0] + 2 * pad
        ends.append(y)
    data = image_to_data(canvas, psm=6, variables={"tessedit_do_invert": "0"})
    words: list[list[tuple[int, str]]] = [[] for _ in crops]
    for text, top, height, left in zip(data["text"], data["top"], data["height"], data["left"],
                                       strict=True):
        if text and text.strip():
            k = int(np.searchsorted(ends, top + height / 2, side="right"))
            if k < len(words):
                words[k].append((left, text.strip()))
    return [" ".join(t for _, t in sorted(ws)) for ws in words]


def lead_name_counts(darkness: np.ndarray, px_per_mm: float) -> dict[int, int]:
    """Asymmetric lead names (:data:`ASYMMETRIC_LEADS`) read on the page turned back by each
    of :data:`ROTATIONS_DEG`: every label-shaped word, read in all four ways in one OCR call.
    OCR that cannot run reads none (logged)."""
    from ecglens.digitize.labels import normalize_label, text_components

    lab, boxes, keep = text_components(darkness, px_per_mm)
    comps = np.flatnonzero(keep)
    crops = {r: _word_crops(lab, boxes, comps, r, px_per_mm) for r in ROTATIONS_DEG}
    flat = [c for r in ROTATIONS_DEG for c in crops[r]]
    if not flat:
        return dict.fromkeys(ROTATIONS_DEG, 0)
    try:
        texts = iter(_read_crops(flat))
    except Exception as exc:  # tesseract missing or failing: no lead names, with a reason
        log.warning("OCR failed (%s); lead names not read for the orientation", exc)
        return dict.fromkeys(ROTATIONS_DEG, 0)
    return {r: sum(normalize_label(next(texts)) in ASYMMETRIC_LEADS for _ in crops[r])
            for r in ROTATIONS_DEG}


def find_orientation(darkness: np.ndarray, px_per_mm_x: float, px_per_mm_y: float,
                     use_ocr: bool = True, gather_all: bool = False) -> Orientation:
    """Decide how the page is turned (see the module docstring) from its ink darkness.

    ``use_ocr``: read the lead names (tesseract). ``gather_all``: measure every kind of
    evidence even where the upright pulses decide (for a benchmark; same decision).
    """
    across = find_rows(darkness, px_per_mm_y)
    enough = _enough_pulses(len(across.rows))
    pulses = {0: pulse_count(darkness, across, px_per_mm_x, px_per_mm_y,
                             None if gather_all else enough)}
    if pulses[0] >= enough and not gather_all:
        return decide(len(across.rows), None, pulses, None)
    down_dark = _turned_back(darkness, 90)
    down = find_rows(down_dark, px_per_mm_x)
    pulses[180] = pulse_count(np.rot90(darkness, 2), _mirror_rows(across, *darkness.shape),
                              px_per_mm_x, px_per_mm_y)
    pulses[90] = pulse_count(down_dark, down, px_per_mm_y, px_per_mm_x)
    pulses[270] = pulse_count(np.rot90(down_dark, 2), _mirror_rows(down, *down_dark.shape),
                              px_per_mm_y, px_per_mm_x)
    names = lead_name_counts(darkness, min(px_per_mm_x, px_per_mm_y)) if use_ocr else None
    direction = (_direction(darkness, across, px_per_mm_x, px_per_mm_y),
                 _direction(down_dark, down, px_per_mm_y, px_per_mm_x))
    return decide(len(across.rows), len(down.rows), pulses, names, direction)


def _direction(darkness: np.ndarray, rows: RowsResult, px_per_mm_x: float,
               px_per_mm_y: float) -> tuple[float, int] | None:
    """Trace-direction score and window count of ``rows`` (None: no rows or no windows)."""
    if not rows.rows:
        return None
    pitch = rows.pitch_px if math.isfinite(rows.pitch_px) else 40.0 * px_per_mm_y
    score, n = page_direction(darkness, [(r.centre_px, r.x_first_px, r.x_last_px)
                                         for r in rows.rows], pitch, px_per_mm_x)
    return (round(score, 4), n) if n else None


def direction_vote(direction: tuple[tuple[float, int] | None, tuple[float, int] | None]
                   ) -> int | None:
    """The rotation the trace direction votes for (None: no clear vote), along the rows that
    gave more windows: across the page (0 or 180) or down it (90 or 270). Windows, not rows:
    the QRS complexes of a page with few long rows can line up into more, short "rows" down
    it; on the real images turned by 90° and 180°, choosing by rows gave 2 wrong decisions and
    choosing by windows none (``benchmarks/trace_direction_check.py --decide``)."""
    across, down = direction
    use_down = down is not None and (across is None or down[1] > across[1])
    evidence, ahead, behind = (down, 90, 270) if use_down else (across, 0, 180)
    if evidence is None or evidence[1] < MIN_DIRECTION_WINDOWS:
        return None
    if evidence[0] >= DIRECTION_SCORE:
        return ahead
    if evidence[0] <= -DIRECTION_SCORE:
        return behind
    return None


def _enough_pulses(n_rows: int | None) -> int:
    """Upright pulses that make a page of ``n_rows`` rows upright (:data:`UPRIGHT_PULSES`)."""
    return max(MIN_PULSE_VOTE, min(UPRIGHT_PULSES, n_rows or 0))


def _vote(counts: dict[int, int], least: int) -> int | None:
    """The rotation whose count is at least ``least`` and at least twice every other's."""
    best = max(counts, key=lambda r: counts[r])
    others = max((v for r, v in counts.items() if r != best), default=0)
    return best if counts[best] >= least and counts[best] >= 2 * others else None


def decide(rows_across: int, rows_down: int | None, pulses: dict[int, int],
           lead_names: dict[int, int] | None,
           direction: tuple[tuple[float, int] | None, tuple[float, int] | None] = (None, None)
           ) -> Orientation:
    """The decision from the evidence (see :class:`Orientation`; None: not measured).

    * upright pulses on :data:`UPRIGHT_PULSES` rows (all rows of a page with fewer): upright;
    * else the pulses vote for the rotation with :data:`MIN_PULSE_VOTE` of them and the lead
      names for the one with :data:`MIN_LEAD_NAMES` (each at least twice any other
      rotation's); one vote, or two that agree, decide; two that disagree refuse the page,
      unless one of them is upright (the page is then read as it is, with no confidence);
    * neither votes: the trace direction (:func:`direction_vote`) decides where it is clear;
    * no vote at all: the page is read as it is; where its traces run down it
      (:data:`MIN_ROWS_DOWN` rows down, none across) that is :attr:`Orientation.suspicion`.
    """
    def show(counts: dict[int, int] | None) -> str:
        return "/".join(str(counts.get(r, "-")) for r in ROTATIONS_DEG) if counts else "-"

    def show_direction(d: tuple[float, int] | None) -> str:
        return "-" if d is None else f"{d[0]:+.2f} ({d[1]} windows)"

    evidence = (f"rows across {rows_across}, down {'-' if rows_down is None else rows_down}; "
                f"pulses {show(pulses)}, lead names {show(lead_names)} at "
                f"{'/'.join(map(str, ROTATIONS_DEG))} deg; trace direction across "
                f"{show_direction(direction[0])}, down {show_direction(direction[1])}")
    by_direction = direction_vote(direction)
    refused = suspicion = ""
    if pulses[0] >= _enough_pulses(rows_across):
        rotation, confidence, why = 0, 1.0, "upright pulses"
    else:
        by_pulses = _vote(pulses, MIN_PULSE_VOTE)
        by_names = _vote(lead_names, MIN_LEAD_NAMES) if lead_names else None
        votes = {v for v in (by_pulses, by_names) if v is not None}
        if len(votes) == 1:
            rotation = votes.pop()
            agree = by_pulses == by_names
            confidence = 1.0 if agree else CONFIRMED
            why = ("pulses and lead names" if agree
                   else "pulses" if by_pulses is not None else "lead names")
        elif votes:
            rotation, confidence, why = 0, 0.0, "pulses and lead names disagree"
            if 0 not in votes:
                refused = (f"page appears rotated by {by_pulses} deg (its calibration pulses) "
                           f"or {by_names} deg (its lead names); turn it upright and read it "
                           "again")
        elif by_direction is not None:
            rotation, confidence, why = by_direction, CONFIRMED, "trace direction"
        elif (rows_down or 0) >= MIN_ROWS_DOWN and rows_across == 0:
            rotation, confidence, why = 0, 0.0, "traces run down the page"
            suspicion = ("page appears rotated by 90 or 270 deg (its traces run down the "
                         "image; no calibration pulse or lead name says which way): turn it "
                         "upright and read it again")
        else:
            rotation, confidence, why = 0, 0.5, "no evidence that the page is turned"
    log.debug("orientation %d deg (%s): %s", rotation, why, evidence)
    return Orientation(rotation_deg=rotation, refused=refused, suspicion=suspicion,
                       rows_across=rows_across,
                       rows_down=rows_down, pulses=tuple(pulses.get(r) for r in ROTATIONS_DEG),
                       lead_names=(tuple(lead_names[r] for r in ROTATIONS_DEG)
                                   if lead_names else None),
                       direction=direction, confidence=confidence, reason=f"{why}: {evidence}")
