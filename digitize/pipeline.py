"""The digitizer, end to end: a file (or an image array) → calibrated 12-lead records.

Stages, each a function with a frozen-dataclass result that can be called, swapped or
inspected on its own:

1. ``load``     :func:`digitize.load.load_pages`      → ``PageImage``
2. ``grid``     :func:`digitize.grid.find_grid`       → ``GridResult`` (px/mm per axis, rotation)
3. ``deskew``   :func:`digitize.deskew.deskew`        → ``DeskewResult``
4. ``ink``      :func:`digitize.ink.find_ink`         → ``InkResult`` (darkness without grid)
5. ``rows``     :func:`digitize.layout_detect.find_rows`
6. ``text``     :func:`digitize.labels.read_text`     (labels + settings line, one OCR call)
7. ``calibration`` :func:`digitize.calibration.find_pulse` / ``decide_calibration``
8. ``trace``    :func:`digitize.trace.extract_traces`
9. ``separators`` :func:`digitize.separators.fit_separators` → ``SeparatorFit`` (the time
   axis read from the rows' ends, or fitted to the printed lead changes)
10. ``layout``  :func:`digitize.layout_detect.choose_layout` (ticks, labels, Einthoven)
11. ``convert`` :func:`digitize.convert.build_record`
12. ``check``   :func:`digitize.ecg_check.check_reading` → ``ReadingCheck`` (is it an ECG?)

Between ``ink`` and ``rows`` the first read runs the orientation stage
(:func:`digitize.orient.find_orientation` → ``Orientation``) on the page as given; a page
turned by 90°, 180° or 270° is turned back and read from ``grid`` again.

Where the geometry helper's modules (grid, deskew, ink) are not importable, small local
fallbacks with the same signatures are used (px/mm from the DPI, no rotation, darkness from
the darkest channel) and the result says so.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ecglens.core.errors import DigitizeError, RowsError
from ecglens.core.layouts import LAYOUTS, get_layout
from ecglens.core.record import ECGRecord
from ecglens.digitize.calibration import (
    CalibrationResult,
    Pulse,
    decide_calibration,
    parse_settings_text,
    scale_from_pulses,
)
from ecglens.digitize.convert import FS_HZ, ConvertResult, build_record, einthoven_residual
from ecglens.digitize.ecg_check import ReadingCheck, check_reading
from ecglens.digitize.grid import lightest_channel, normalised_u8
from ecglens.digitize.labels import TextResult, read_text, trace_pixels
from ecglens.digitize.layout_detect import (
    AXIS_MAX_GAP_MM,
    STANDARD_AXIS_MM,
    LayoutResult,
    RowsResult,
    TimeAxis,
    choose_layout,
    complete_rows,
    find_rows,
    find_time_axis,
    scale_from_row_span,
    strip_distances,
    strip_matcher,
    tick_evidence,
)
from ecglens.digitize.orient import Orientation, find_orientation, given_upright, turn_upright
from ecglens.digitize.pulse_rows import (
    FAINT_PULSE_GAIN,
    PULSE_SEARCH_MM,
    extend_rows_by_pulses,
    faint_pulses,
    pulse_lattice,
    pulse_scan_rows,
    row_pulse,
    rows_start_px,
)
from ecglens.digitize.seg_ink import (
    inked_pixels,
    page_trace_map,
    path_from_env,
    path_ink,
    row_trace_coverage,
    rows_from_env,
    trace_only_ink,
    trace_stage_ink,
)
from ecglens.digitize.separators import SeparatorFit, fit_separators, separator_profile
from ecglens.digitize.trace import (
    MAX_EXCURSION_MV,
    RowTrace,
    TraceResult,
    common_contrast_ends,
    extract_traces,
)
from ecglens.digitize.trace import RUN_LEVEL as TRACE_RUN_LEVEL

log = logging.getLogger(__name__)

VERSION = "0.1.0"
RETRY_PULSE_SEARCH_MM = 30.0
"""Width of each row's pulse search strip on the second reads (40 mm on the first,
:data:`digitize.pulse_rows.PULSE_SEARCH_MM`)."""
PULSE_CLEAR_MM = 0.4
"""Columns after the calibration pulses' right side (mm) left unread: the pulse's falling
leg. On the first 80 ECG-Image-Kit tune pages and every 8th own seed-0 page, 0.4 mm against
1.0 mm: 2024 SNR ECG-Image-Kit 12.89 -> 12.92 dB (Kaggle 13.70 -> 13.80; their first column
lost ~22 samples), own renders 20.28 -> 20.28 (Kaggle 17.08 -> 17.07)."""
BOUNDARY_GUARD_PENS = 1.0
"""Half width (pen widths, + 1 px) of the columns left unread at each inner cell boundary of
a row: the separator bar and the jump from one lead to the next. Half a pen width (with the
0.4-mm pulse clearance) read more samples but worse ones: 2024 SNR ECG-Image-Kit 12.65 ->
12.53 dB (Kaggle 13.11 -> 13.29), own 19.75 -> 19.75 (Kaggle 17.07 -> 17.55); not kept."""
MAP_RESCALE = 0.1
"""Relative change of the page's scale (px/mm) after the trace map was made (a page without
a grid, scaled by its pulses) beyond which the map is made again at the new scale."""
FAINT_PULSES_NOTE = "calibration pulses found only at"
"""Start of the warning for pulses found only by :func:`digitize.pulse_rows.faint_pulses`."""


def _stage_functions() -> tuple[Callable, Callable, Callable, Callable]:
    """The geometry stages ``(load_pages, find_grid, deskew, find_ink)``, imported lazily."""
    from ecglens.digitize.deskew import deskew
    from ecglens.digitize.grid import find_grid
    from ecglens.digitize.ink import find_ink
    from ecglens.digitize.load import load_pages

    return load_pages, find_grid, deskew, find_ink


def _trace_end_px(trace: RowTrace, px_per_mm_x: float, gap_mm: float = 5.0,
                  stray_mm: float = 20.0) -> float:
    """Last column of a row's own trace. A piece of ink after a blank gap of ``gap_mm`` that
    is shorter than ``stray_mm``, or read in fewer than a quarter of that many columns, is not
    the trace (the edge of a scanner's dark background, a stamp, a margin note, a chain of
    grid dots 5 mm apart) and does not extend the time axis; nor does a tail read in fewer
    than half the columns of its last millimetre (a path that runs on over grid dots)."""
    ok = np.flatnonzero(np.isfinite(trace.y_px))
    if not len(ok):
        return float(trace.x_px[-1])
    breaks = np.flatnonzero(np.diff(ok) > gap_mm * px_per_mm_x)
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [len(ok) - 1]])
    k = len(starts) - 1
    stray_px = stray_mm * px_per_mm_x
    while k > 0 and ((ok[ends[k]] - ok[starts[k]]) < stray_px
                     or ends[k] - starts[k] + 1 < 0.25 * stray_px):
        k -= 1
    # the trace ends where it is still read in most columns: a path that runs on over grid
    # dots after the trace (a few columns per mm) does not extend it
    cols = ok[starts[k]:ends[k] + 1]
    window = max(2.0, px_per_mm_x)
    dense = np.arange(len(cols)) - np.searchsorted(cols, cols - window, side="right") + 1
    last = np.flatnonzero(dense >= 0.5 * window)
    return float(trace.x_px[cols[last[-1]] if len(last) else cols[-1]])


def _read_as_is(image_rgb: np.ndarray, grid: Any, reason: str) -> Any:
    """A deskew result that leaves the page untouched (identity matrix)."""
    from ecglens.digitize.deskew import DeskewResult

    return DeskewResult(image_rgb, np.eye(3), 0.0, False, grid, reason=reason)


# ---------------------------------------------------------------------------- result
@dataclasses.dataclass(frozen=True)
class DigitizeResult:
    """Everything read from one page.

    Attributes
    ----------
    source, page_index, n_pages
        Where the page came from.
    grid, deskew, ink
        Geometry stages (``GridResult``, ``DeskewResult``, ``InkResult``).
    rows
        Trace rows found.
    text
        Text components, lead labels and settings line.
    calibration
        Gain, speed, pulses and 0 mV lines.
    time_axis
        Printed time axis.
    traces
        Per-row traces in page pixels.
    layout
        Chosen layout and its evidence.
    convert
        The record and per-lead details.
    baselines_px
        Each row's 0 mV line (page px, deskewed).
    warnings
        Everything that lowered confidence.
    timings_s
        Seconds per stage.
    orientation
        The orientation stage's decision (:class:`digitize.orient.Orientation`).
    ecg_check
        The final check of the record (:class:`digitize.ecg_check.ReadingCheck`).
    network_row_count
        How many rows the ink the segmentation network calls trace shows, where the rows were
        found in the colour ink (None otherwise, or without the network).
    separators
        The time axis fitted to the printed lead separators
        (:class:`digitize.separators.SeparatorFit`; ``accepted`` says whether it replaced the
        axis read from the rows' ends); None where the page has no cell rows.
    """

    source: str
    page_index: int
    n_pages: int
    grid: Any
    deskew: Any
    ink: Any
    rows: RowsResult
    text: TextResult
    calibration: CalibrationResult
    time_axis: TimeAxis
    traces: TraceResult
    layout: LayoutResult
    convert: ConvertResult
    baselines_px: tuple[float, ...]
    warnings: tuple[str, ...]
    timings_s: dict[str, float]
    orientation: Orientation | None = None
    ecg_check: ReadingCheck | None = None
    network_row_count: int | None = None
    separators: SeparatorFit | None = None

    @property
    def record(self) -> ECGRecord:
        """The 12-lead, 500-Hz record in mV (NaN where not printed or not read)."""
        return self.convert.record

    @property
    def stem(self) -> str:
        """Output name: the file stem, plus ``_p<N>`` (1-based) for multi-page files."""
        base = Path(self.source).stem
        return f"{base}_p{self.page_index + 1}" if self.n_pages > 1 else base

    def summary(self) -> dict[str, Any]:
        """A short JSON-ready summary (for ``--json``)."""
        conf = self.record.lead_confidence
        return {
            "source": self.source, "page": self.page_index + 1, "stem": self.stem,
            "layout": self.layout.name, "gain_mm_mv": self.calibration.gain_mm_mv,
            "speed_mm_s": self.calibration.speed_mm_s,
            "px_per_mm": [round(_f(self.grid.px_per_mm_x), 4), round(_f(self.grid.px_per_mm_y), 4)],
            "rotation_deg": round(_f(self.deskew.rotation_deg), 3),
            "mean_confidence": round(float(np.mean([c for c in conf if c > 0] or [0.0])), 3),
            "leads_read": int(sum(c > 0 for c in conf)), "warnings": len(self.warnings),
            "seconds": round(sum(self.timings_s.values()), 3),
        }

    def overlay_image(self) -> np.ndarray:
        """The page with what was read drawn on it (see :mod:`ecglens.digitize.overlay`)."""
        from ecglens.digitize.overlay import draw_overlay

        return draw_overlay(self)

    def to_json(self) -> dict[str, Any]:
        """The full JSON description of the page (written as ``<stem>.json``)."""
        import cv2

        cal = self.calibration
        return _clean({
            "source": self.source, "page": self.page_index + 1, "n_pages": self.n_pages,
            "layout": self.layout.name,
            "layout_detail": {"confidence": self.layout.confidence, "scores": self.layout.scores,
                              "evidence": self.layout.evidence},
            "gain_mm_mv": cal.gain_mm_mv, "speed_mm_s": cal.speed_mm_s,
            "calibration": {
                "source": cal.source, "confidence": cal.confidence,
                "row_gain_mm_mv": list(cal.row_gain_mm_mv),
                "pulses": [dataclasses.asdict(p) for p in cal.pulses],
                "settings_text": dataclasses.asdict(cal.text) if cal.text else None,
            },
            "px_per_mm_x": _f(self.grid.px_per_mm_x), "px_per_mm_y": _f(self.grid.px_per_mm_y),
            "grid": {"found": bool(self.grid.found), "colour": self.grid.grid_colour,
                     "source": self.grid.source, "confidence": _f(self.grid.confidence),
                     "reason": self.grid.reason},
            "rotation_deg": _f(self.deskew.rotation_deg),
            "perspective_corrected": bool(self.deskew.perspective_corrected),
            "flatten": (None if getattr(self.deskew, "flatten", None) is None
                        else self.deskew.flatten.to_dict()),
            "rows": [{"row": r.index, "baseline_px": round(self.baselines_px[r.index], 3),
                      "centre_px": r.centre_px, "coverage": r.coverage,
                      "trace_confidence": self.traces.rows[r.index].confidence}
                     for r in self.rows.rows],
            "line_width_px": _f(self.traces.line_width_px),
            "trace_network_runs": bool(self.traces.network_runs),
            "row_trace_coverage": (None if self.traces.row_trace_coverage is None else
                                   [round(c, 3) for c in self.traces.row_trace_coverage]),
            "network_row_count": self.network_row_count,
            "time_axis": dataclasses.asdict(self.time_axis),
            "separators": (None if self.separators is None
                           else dataclasses.asdict(self.separators)),
            "labels": [{"text": lab.text, "lead": lab.lead, "box": list(lab.box)}
                       for lab in self.text.labels],
            "leads": {lead.lead: {"confidence": lead.confidence, "rows": list(lead.rows),
                                  "t_start_s": lead.t_start_s, "t_end_s": lead.t_end_s,
                                  "finite_fraction": lead.finite_fraction,
                                  "reasons": list(lead.reasons)} for lead in self.convert.leads},
            "einthoven": self.convert.einthoven,
            "orientation": self.orientation.to_json() if self.orientation else None,
            "ecg_check": self.ecg_check.to_json() if self.ecg_check else None,
            "warnings": list(self.warnings),
            "timings_s": {k: round(v, 4) for k, v in self.timings_s.items()},
            "versions": {"ecglens": VERSION, "numpy": np.__version__, "opencv": cv2.__version__,
                         "tesseract": _tesseract_version()},
        })


def _tesseract_version() -> str:
    from ecglens.digitize.ocr import engine_name

    try:
        return engine_name()
    except Exception:  # not installed
        return "unavailable"


def _f(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _clean(obj: Any) -> Any:
    """NaN/inf → None, numpy → Python, recursively (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float):
        return None if not math.isfinite(obj) else obj
    return obj


# ---------------------------------------------------------------------------- the pipeline
def _check_is_ecg(darkness: np.ndarray, rows: RowsResult, source: str) -> None:
    ink_fraction = float(np.mean(darkness >= 0.5))
    if ink_fraction < 1e-4:
        raise DigitizeError("no ink found: a blank page, or an image with no dark lines on it "
                            "(not a paper ECG)", source)
    if ink_fraction > 0.25:
        raise DigitizeError(f"not a paper ECG: {100 * ink_fraction:.0f} % of the page is dark "
                            "(a photo or a dark image, not traces on paper)", source)
    if not rows.rows:
        raise RowsError("no ECG trace rows found (no line of ink runs across the page; "
                        "a page of text or not an ECG)", source)


def digitize_image(image: np.ndarray, source: str = "<array>", page_index: int = 0,
                   n_pages: int = 1, dpi_prior: float | None = None, use_ocr: bool = True,
                   layout_hint: str | None = None, check: bool = True,
                   upright: bool = False) -> DigitizeResult:
    """Read one page image (``(H, W, 3)`` uint8 RGB) into a :class:`DigitizeResult`.

    Parameters
    ----------
    image
        The page.
    source
        Name used in messages and outputs.
    dpi_prior
        Raster resolution if known (px/mm prior for the grid stage).
    use_ocr
        Read lead labels and the settings line with tesseract.
    layout_hint
        Force a layout name instead of deciding it (the result says so).
    check
        Refuse a read that fails the final ECG check (:mod:`digitize.ecg_check`); False: the
        check is measured and recorded (with a warning) but the record is returned.
    upright
        The caller states that the page is upright as given: the orientation stage is not
        run (:func:`digitize.orient.given_upright`).

    The orientation stage (:func:`digitize.orient.find_orientation`) decides first, on the
    page as given, whether it is turned by 90°, 180° or 270°; a turned page is turned back
    and read upright (a warning says so; so does one where no calibration pulse, lead name or
    clear trace direction confirmed the orientation, and the page was read as it is). The read
    record is then checked (:func:`digitize.ecg_check.check_reading`). Both decisions are in
    the result (``orientation``, ``ecg_check``) and its JSON; the record's provenance keeps
    ``orientation`` (rotation, confirmed, by what), which the measurability gate reads.

    Raises
    ------
    DigitizeError
        The page's calibration pulses and lead names say it is turned, each another way
        ("page appears rotated by ..."), or what was read is not an ECG
        (:mod:`digitize.ecg_check`); see :func:`_read_upright` for the others. Where the
        orientation stage found the traces running down the page with nothing to say which
        way it is turned (:attr:`digitize.orient.Orientation.suspicion`), the page is read as
        it is and any error begins "page appears rotated by 90 or 270 deg".
    """
    clock = time.perf_counter()
    given = page_ink(image, dpi_prior)
    orientation = given_upright() if upright else find_orientation(
        given.darkness, given.px_per_mm_x, given.px_per_mm_y, use_ocr=use_ocr)
    geometry: PageInk | None = given
    if orientation.refused:
        raise DigitizeError(orientation.refused, source)
    notes: tuple[str, ...] = ()
    if orientation.turned:
        image = turn_upright(image, orientation.rotation_deg)
        geometry = None   # made on the page as given: the turned page is measured again
        notes = (f"page turned by {orientation.rotation_deg} deg before reading "
                 f"({orientation.reason})",)
        log.info("%s: %s", source, notes[0])
    elif not orientation.confirmed:
        notes = (f"orientation not confirmed: read as it is ({orientation.reason})",)
    orient_s = time.perf_counter() - clock - (
        sum(geometry.timings_s.values()) if geometry is not None else 0.0)
    try:
        result = _read_upright(image, source, page_index, n_pages, dpi_prior, use_ocr,
                               layout_hint, geometry)
    except DigitizeError as exc:
        if not orientation.suspicion:
            raise
        raise type(exc)(f"{orientation.suspicion}; {exc.reason}", source) from None
    clock = time.perf_counter()
    verdict = check_reading(result.convert)
    if verdict.refused:
        reason = "; ".join(r for r in (orientation.suspicion, verdict.reason) if r)
        if check:
            raise DigitizeError(reason, source)
        notes = (*notes, reason)
    timings = {"orient": orient_s, **result.timings_s, "check": time.perf_counter() - clock}
    # the record carries the orientation decision (and into its WFDB header), so that the
    # measurability gate can refuse a clinical statement on a page that may be upside down
    record = result.convert.record
    record = record.replace(provenance={**record.provenance, "orientation": {
        "rotation_deg": orientation.rotation_deg, "confirmed": orientation.confirmed,
        "by": orientation.reason.split(":")[0]}})
    return dataclasses.replace(result, convert=dataclasses.replace(result.convert, record=record),
                               orientation=orientation, ecg_check=verdict,
                               timings_s=timings, warnings=(*result.warnings, *notes))


def _read_upright(image: np.ndarray, source: str, page_index: int, n_pages: int,
                  dpi_prior: float | None, use_ocr: bool, layout_hint: str | None,
                  geometry: PageInk | None) -> DigitizeResult:
    """Read one upright page (see :func:`digitize_image`); ``geometry``: the first read's
    grid, deskew and ink where the orientation stage already made them.

    Raises
    ------
    DigitizeError
        The page is blank, mostly dark, or holds no trace rows (:class:`RowsError`, also when
        their number fits no template). Before a ``RowsError`` is raised the page is read
        again in the ways :data:`RETRY_READS` lists, in order: with the ink measured above a
        model of the grid's lines (``find_ink(..., subtract_grid=True)``), with the ink
        threshold at the grid lines' level (``cap_at_grid_lines=True``), and with that
        threshold and pixel pairs as row ink (``find_rows(..., pair_rows=True)``), with
        the rows taken from the calibration pulses' lattice (``rows_from_pulses=True``), and
        with the rows found in the ink the segmentation network calls trace
        (``rows_from_network=True``). The
        first read its calibration pulses confirm (:func:`_retry_confirmed`) is returned, with
        a warning that says how it was read. A first read that finds rows but no pulse on
        any of them is read again above the grid model, and that read kept where every row
        has a pulse of one gain and speed. Last, a read with a row along which the network
        sees no trace, or fewer rows than the network's ink shows, is read on the network's
        rows, kept where those are more (or two or more rows were untraced) and all traced
        (:data:`NETWORK_ROWS_MIN_COVERAGE`).
    """
    retry_note: tuple[str, ...] = ()
    read_options: dict[str, bool] = {}
    try:
        result = (_read_page(image, source, page_index, n_pages, dpi_prior, use_ocr,
                             layout_hint) if geometry is None
                  else _read_geometry(geometry, source, page_index, n_pages, use_ocr,
                                      layout_hint))
    except RowsError as first:
        retried: DigitizeResult | None = None
        for name in RETRY_READS:
            if name == "trace_rows" and rows_from_env() == "colour":
                continue   # the network's rows switched off: the first read again
            options, note = _RETRY_OPTIONS[name]
            try:
                trial = _read_page(image, source, page_index, n_pages, dpi_prior, use_ocr,
                                   layout_hint, **options)
            except RowsError:
                continue
            if _retry_confirmed(name, trial):
                retried, read_options = trial, options
                retry_note = (f"first read failed ({first.reason}); read again {note}",)
                break
        if retried is None:
            raise first from None
        result = dataclasses.replace(retried, warnings=(*retried.warnings, *retry_note))
    else:
        second = _second_read(result)
        if second is not None:
            options, accept, describe = second
            second_trial: DigitizeResult | None
            try:
                second_trial = _read_page(image, source, page_index, n_pages, dpi_prior,
                                          use_ocr, layout_hint, **options)
            except RowsError:
                second_trial = None
            if second_trial is not None and accept(second_trial):
                read_options = options
                retry_note = (describe(second_trial),)
                result = dataclasses.replace(second_trial,
                                             warnings=(*second_trial.warnings, *retry_note))
    if not read_options.get("rows_from_network") and (_row_without_trace(result)
                                                      or _network_shows_more_rows(result)):
        n_first = len(result.rows.rows)
        untraced = sum(c < ROW_WITHOUT_TRACE_COVERAGE for c in _coverage(result))
        try:
            on_network_rows: DigitizeResult | None = _read_page(
                image, source, page_index, n_pages, dpi_prior, use_ocr, layout_hint,
                rows_from_network=True)
        except RowsError:
            on_network_rows = None
        if (on_network_rows is not None
                and (len(on_network_rows.rows.rows) > n_first or untraced >= 2)
                and len(on_network_rows.rows.rows) in TEMPLATE_ROWS
                and min(_coverage(on_network_rows), default=0.0) >= NETWORK_ROWS_MIN_COVERAGE):
            read_options = {"rows_from_network": True}
            seen = (f"the segmentation network sees no trace along {untraced} of the "
                    f"{n_first} rows read" if untraced else
                    f"the ink the segmentation network calls trace shows more rows than the "
                    f"{n_first} read")
            note = (f"{seen}; read on the {len(on_network_rows.rows.rows)} rows found in the ink "
                    "it calls trace")
            retry_note = (*retry_note, note)
            result = dataclasses.replace(on_network_rows,
                                         warnings=(*on_network_rows.warnings, *retry_note))
    grid = result.grid
    if getattr(grid, "found", False) or getattr(grid, "homography", None) is not None:
        return result
    residual = residual_rotation_deg(result)
    if residual is None or abs(residual) < 0.05:
        return result
    # no grid: the rotation came from the text and trace rows, approximately; the rows' common
    # right end (every row stops at the same time) measures it again, and the page is read once
    # more with the sum
    applied = _f(getattr(result.deskew, "rotation_deg", 0.0))
    applied = applied if math.isfinite(applied) else 0.0
    refined = dataclasses.replace(result.grid, rotation_deg=applied + residual)
    if str(getattr(refined, "source", "")).startswith("pulses"):
        # the scale the pulses gave is found again on the turned page, the same way
        refined = dataclasses.replace(refined, px_per_mm_x=math.nan, px_per_mm_y=math.nan,
                                      source="none")
    again = _read_page(image, source, page_index, n_pages, dpi_prior, use_ocr, layout_hint,
                       grid_override=refined, **read_options)
    timings = dict(again.timings_s)
    timings["first_pass"] = round(float(sum(result.timings_s.values())), 4)
    note = (f"no grid: rotation refined by {residual:+.2f} deg from the pulses' left strokes "
            "or the rows' common end (page read twice)")
    return dataclasses.replace(again, timings_s=timings,
                               warnings=(*again.warnings, *retry_note, note))


TEMPLATE_ROWS: tuple[int, ...] = tuple(sorted({lay.n_rows for lay in LAYOUTS.values()}))
"""The row counts of the layout templates, ascending."""
STRIP_ROW_COUNTS: frozenset[int] = frozenset({7, 13})
"""Row counts of the 6x2+1 and 12x1+1 templates: 6x2's and 12x1's rows and a rhythm strip
below them. The calibration pulses may make such a count only by a row below the rows the
ink projection saw (:func:`strip_below`): a pulse-like stroke in the header above a 6x2
page's first row made 7 rows on the own-renderer check (every 8th seed-0 page), and the
page was refused."""


def strip_below(seen: RowsResult, lattice: RowsResult | None) -> bool:
    """Whether a pulse ``lattice`` of a :data:`STRIP_ROW_COUNTS` count keeps the rows the
    projection ``seen`` on top, its extra row below them (other counts: always True)."""
    if lattice is None or len(lattice.rows) not in STRIP_ROW_COUNTS:
        return True
    if not seen.rows or len(lattice.rows) <= len(seen.rows):
        return bool(seen.rows) and len(lattice.rows) <= len(seen.rows)
    pitch = lattice.pitch_px if math.isfinite(lattice.pitch_px) else float("inf")
    return abs(lattice.rows[0].centre_px - seen.rows[0].centre_px) < 0.5 * pitch


STRIP_COPY_MIN = 0.5
"""Least correlation of a bottom row, read as the rhythm strip of a 6x2+1 or 12x1+1 page,
with a cell of the lead it could copy (:func:`_strip_copies`): a rhythm strip prints a lead
that is printed above it too, so its trace copies one cell. Measured on the first 30 6x2+1 /
12x1+1 ECG-Image-Kit pages of ``pages.csv`` (folds 1-9, fold 9 included: 13 read with 7 or
13 rows): 12 strips copied a cell at 0.86-1.00, one at 0.29; on the own renders (every 4th
seed-0 page) the one page read with a 13th row that is no strip (a 12-row Cabrera scan) 0.12."""


def _strip_copies(traces: TraceResult, axis: TimeAxis) -> float | None:
    """Best correlation of the bottom row with a cell of the strip template of its row count
    (None: not a strip row count, or nothing to compare)."""
    n_rows = len(traces.rows)
    name = {7: "6x2+1", 13: "12x1+1"}.get(n_rows)
    if name is None or name not in LAYOUTS:
        return None
    layout = get_layout(name)
    match = strip_matcher(traces.rows, axis)
    scores = [match(layout, n_rows - 1, lead) for lead in {c.stored_lead for c in layout.cells}]
    found = [r for r in scores if r is not None and math.isfinite(r)]
    return max(found) if found else None


NO_STRIP_COUNTS: tuple[int, ...] = tuple(n for n in TEMPLATE_ROWS if n not in STRIP_ROW_COUNTS)
"""The template row counts without :data:`STRIP_ROW_COUNTS`."""


RETRY_READS: tuple[str, ...] = ("grid_model", "grid_lines", "pixel_pairs", "pulse_rows",
                                "trace_rows")
"""The reads tried, in order, on a page whose first read found no trace rows (see
:func:`digitize_image`); the first one confirmed by its calibration pulses is kept (the
network's rows, last, need no pulses: :func:`_retry_confirmed`)."""

EDGE_MARGIN_MM = 2.0
"""A read on the network's rows without pulses is kept only where its time axis stays this far
inside the image's left and right edges (:func:`_retry_confirmed`)."""

_RETRY_OPTIONS: dict[str, tuple[dict[str, bool], str]] = {
    "grid_model": ({"subtract_grid": True},
                   "with the ink measured above a model of the grid's lines"),
    "grid_lines": ({"ink_at_grid_lines": True},
                   "with the ink threshold at the grid lines' level"),
    "pixel_pairs": ({"ink_at_grid_lines": True, "pair_rows": True},
                    "with the ink threshold at the grid lines' level and thin lines split "
                    "over two pixel rows"),
    "pulse_rows": ({"rows_from_pulses": True},
                   "with its rows taken from the calibration pulses down the left margin"),
    "trace_rows": ({"rows_from_network": True},
                   "with its rows found in the ink the segmentation network calls trace"),
}


ROWS_FROM_PULSES_COVERAGE = 0.3
"""Least row coverage (see :func:`find_rows`) of the rows that only place the pulse search
of :func:`_rows_from_pulses_only` (where the rows start and end); the rows themselves come
from the pulses."""


def _rows_from_pulses_only(darkness: np.ndarray, ppmm_x: float, ppmm_y: float
                           ) -> RowsResult | None:
    """Rows from the calibration pulses alone, for a page whose ink projection finds none at
    its usual coverage: large wandering complexes (20 mm/mV at 50 mm/s) keep every row's ink
    off its own line for much of the page (an own render: no row at coverage 0.6, two at
    0.3, three plain pulses). The rows found at ``ROWS_FROM_PULSES_COVERAGE`` say where the rows
    start; :func:`pulse_scan_rows` then finds the pulses and their lattice. None where that
    finds no lattice."""
    loose = find_rows(darkness, ppmm_y, min_coverage=ROWS_FROM_PULSES_COVERAGE)
    if not loose.rows:
        return None
    return pulse_scan_rows(loose, darkness, ppmm_x, ppmm_y, NO_STRIP_COUNTS)


SecondRead = tuple[dict[str, bool], Callable[[DigitizeResult], bool],
                   Callable[[DigitizeResult], str]]
"""A second read's ink options, the test it must pass to be kept, and its warning."""


def _second_read(result: DigitizeResult) -> SecondRead | None:
    """The second read a first read that found rows calls for, if any: its ink options, the
    test a second read must pass to be kept, and the warning that says why it was read.

    * a grey or black-and-white grid page whose rows at the page's ink level are a smaller
      template's count than at the grid lines' level (an own render: 3 of a 6x2 page's
      rows found, read as 3x4): read at the grid lines' level, kept with a pulse on every row and
      more pulses than the first read;
    * no pulse on any row: faint strokes on a low-resolution scan can drop half the rows and
      every pulse below the page's ink level (an own 111-dpi 12x1 render read as 6x2 at an
      assumed gain and speed): read above the grid model, kept where it finds a pulse of
      one gain and speed on every row (and passes the grid-model read's Einthoven guard).
    """
    first_pulses = len(result.calibration.pulses)
    if _rows_missed_at_page_level(result):
        return ({"ink_at_grid_lines": True},
                lambda trial: (_pulse_on_every_row(trial)
                               and len(trial.calibration.pulses) > first_pulses),
                lambda trial: (f"{len(result.rows.rows)} rows found at the page's ink level, "
                               f"{len(trial.rows.rows)} with the ink threshold at the grid "
                               "lines' level, each with a pulse: read at that level"))
    if not first_pulses and not getattr(result.ink, "grid_subtracted", True):
        return ({"subtract_grid": True},
                lambda trial: (_pulse_on_every_row(trial)
                               and _retry_confirmed("grid_model", trial)),
                lambda trial: ("no calibration pulse found at the page's ink level; read "
                               "again with the ink measured above a model of the grid's "
                               f"lines, where every one of its {len(trial.rows.rows)} rows "
                               "has a pulse"))
    return None


ROW_WITHOUT_TRACE_COVERAGE = 0.2
"""A row along whose 0 mV line (±2.5 mm) the segmentation network sees trace in fewer than this
share of the columns is not a trace row (a grid line or the header taken for one, while a faint
row was missed); the page is read again on the network's rows (:func:`_read_upright`, after
the first read and any retry or second read)."""
NETWORK_ROWS_MIN_COVERAGE = 0.5
"""...and that read is kept only where it has a template's count of rows, every one of them at
least this coverage, and more rows than the first read or two or more of the first read's rows
without trace. Set on the pages of every family whose read at ``8a9a4d1`` had a row below 0.2
(44 pages; the network's rows read on each offline). "More rows" changes 4 ECG-Image-Kit pages,
all better (+26.5 dB in sum: fold-9 pages 2.2 → 6.7, 5.5 → 4.4, -2.0 → 11.9, a tune page -4.9 →
4.2); taking any network read with rows at 0.5 would change 23 of them for +5.8 dB (one 15.8 →
-4.3) and two photos for -2.0. The "two rows" case was added when the zero-level rule let a
retry's wrong 6-row read of a fold-9 scan (3 rows untraced) pass where it had failed; offline
it changes two more pages, both better (0.8 → 5.2, -3.5 → -1.6 dB). Two of the failures that
suggested the rule, and that scan, are fold-9 pages."""


def _coverage(result: DigitizeResult) -> tuple[float, ...]:
    cov = result.traces.row_trace_coverage
    return tuple(cov) if cov is not None else ()


def _row_without_trace(result: DigitizeResult) -> bool:
    """Whether the network sees no trace along one of the first read's rows (see
    :data:`ROW_WITHOUT_TRACE_COVERAGE`); only where the network's rows are the fallback
    (the default), not where they are switched off or read on every page."""
    if rows_from_env() != "fallback":
        return False
    return min(_coverage(result), default=1.0) < ROW_WITHOUT_TRACE_COVERAGE


def _network_shows_more_rows(result: DigitizeResult) -> bool:
    """Whether the ink the network calls trace shows more rows than were read (a faint rhythm
    strip or a row under a dark grid missed by the colour ink, the rows read still a template's
    count: a 3x4+1 page read as 3x4). Measured on every family's reads of 3, 6 or 12 rows with
    every row traced (80 pages at ``619b3d7``, each read on the network's rows offline): the
    re-read is kept (:func:`_read_upright`) on 8 ECG-Image-Kit pages, +89.7 dB in sum (one
    fold-9 page, 0.3 → 5.9), and four photos (one with truth, 9.5 → 9.5 with its strip now
    read), and on none of the 47 own renders or 13 real images."""
    count = result.network_row_count
    return count is not None and count > len(result.rows.rows)


def _rows_missed_at_page_level(result: DigitizeResult) -> bool:
    """Whether a first read of a grey or black-and-white grid page found a template's count of
    rows where the ink threshold at the grid lines' level finds a larger template count: faint
    traces on a neutral grid can drop every other row out of the projection and leave a
    count that fits a smaller layout (an own 6x2 render read as 3x4). Only the rows are
    counted here (about 0.1 s); the caller reads the page again to confirm."""
    _, _, _, find_ink = _stage_functions()
    grid = result.grid
    template_rows = set(TEMPLATE_ROWS)
    if (getattr(grid, "grid_colour", "") not in ("grey", "bw") or not getattr(grid, "found", False)
            or getattr(result.ink, "capped_at_grid_lines", True)
            or len(result.rows.rows) not in template_rows):
        return False
    ink = find_ink(result.deskew.image, grid, cap_at_grid_lines=True)
    try:
        alternative = find_rows(np.asarray(ink.darkness, dtype=np.float32), grid.px_per_mm_y)
    except DigitizeError:
        return False
    return (len(alternative.rows) > len(result.rows.rows)
            and len(alternative.rows) in template_rows)


PULSE_BASE_MAX_MV = 0.5
"""Farthest (mV at the row's gain) a row's median trace level may lie from its calibration
pulse's bottom for that bottom to be the row's 0 mV line; farther, the pulse was misread (the
upper half of a footless pulse, another row's pulse) and the row's most common level is 0 mV,
as on a row without a pulse; a row whose pulse gave it a gain other than the page's is then
read at the page's gain. Set on the ECG-Image-Kit tune pages (folds 1-8), reads at
``450f0c1``, leads whose median read level is beyond the threshold, re-levelled offline: at
0.3 / 0.5 / 0.8 mV, 100 / 63 / 31 leads, the truth's level error improved on 83 / 60 / 31 and
worsened on 17 / 3 / 0. At 0.5 no lead of the 60 own renders (every 4th seed-0 page) is
affected and 3 of the phone photos' 192 leads (one better, one worse); fold 9 (never tuned on):
26 leads, all better, mean level error 0.92 → 0.08 mV."""
RETRY_EINTHOVEN_MAX = 2.0
"""Largest Einthoven residual (of the signal rms) a grid-model retry read may have: two real
photos, read along their grid lines, had 3.95 and 6.40; the ten seed 0-5 benchmark pages it
read right (nine of them refused before), at most 1.10 (six of ~1200 first reads of benchmark
pages exceed 2)."""


def _pulse_on_every_row(result: DigitizeResult) -> bool:
    """Every row has a calibration pulse, all of one gain and speed, found at the page's own
    darkness (not only at the boosted one of the faint-pulse search)."""
    pulses = result.calibration.pulses
    return (len({p.row for p in pulses}) >= len(result.rows.rows)
            and len({(p.gain_mm_mv, p.speed_mm_s) for p in pulses}) == 1
            and not any(w.startswith(FAINT_PULSES_NOTE) for w in result.warnings))


def _retry_confirmed(name: str, result: DigitizeResult) -> bool:
    """Whether a retry read's calibration pulses confirm it.

    The lower ink levels of the retries can turn a dark grid into 'trace' (a real photo was
    read along its grid lines), so a retry counts only where pulses are found on at least
    half its rows (the grid-model read also within ``RETRY_EINTHOVEN_MAX``); the pixel-pair
    read (an own-renderer page, a thin line on a rotated low-resolution scan split over two
    pixel rows) only where :func:`_pulse_on_every_row` (that real photo, pulses of two gains,
    was read with its cells shifted; an own render, every other row and two faint pulses, as
    3x4).
    """
    pulses = result.calibration.pulses
    if name == "trace_rows":
        # the network's rows are trace, not grid lines read at a lower ink level; without
        # pulses on half the rows, the time axis comes from the rows' ink, and where that
        # runs to the image's edge the page's start or end is cut off (a real image of the
        # family without truth, its pulses cut off at the left, was read with its cells
        # shifted)
        if 2 * len(pulses) >= len(result.rows.rows):
            return True
        margin_px = EDGE_MARGIN_MM * _f(getattr(result.grid, "px_per_mm_x", math.nan))
        width_px = result.deskew.image.shape[1]
        axis = result.time_axis
        return (math.isfinite(margin_px) and axis.x0_px >= margin_px
                and axis.x1_px <= width_px - 1 - margin_px)
    if name == "grid_model":
        # where the grid model misses the grid (two real photos: uneven light, a grid that is
        # not one lattice) grid lines are read as traces, and the limb leads then break
        # Einthoven's law far beyond any read of a benchmark page
        residual = max((v for v in result.convert.einthoven.values() if math.isfinite(v)),
                       default=0.0)
        return 2 * len(pulses) >= len(result.rows.rows) and residual <= RETRY_EINTHOVEN_MAX
    if name not in ("pixel_pairs", "pulse_rows"):
        return 2 * len(pulses) >= len(result.rows.rows)
    return _pulse_on_every_row(result)


def residual_rotation_deg(result: DigitizeResult) -> float | None:
    """Rotation left on a deskewed page, from the rows' right ends (deg, same convention as
    ``GridResult.rotation_deg``): every row's trace stops at the same time, so the ends lie on
    a vertical line; their slope against the rows' heights is the residual tilt. Without
    3 (or two thirds of the) rows within 1 mm of the robust (Theil-Sen) line, or when those
    scatter by more than 0.1 mm (on the seed-0 benchmark right estimates scatter by
    <= 0.07 mm, wrong ones by >= 0.18 mm), the calibration pulses' left strokes are used
    instead, where three or more over more than 20 mm of height lie within 0.2 mm of one
    line (an own render: 3 rows, one trace read short); ``None`` when neither measures it.
    The rows' ends come first: on an own render with twelve 5-mm pulses they measured the
    rotation left to 0.02 deg, the pulses' strokes missed it by 0.07 deg.
    """
    from scipy.stats import theilslopes

    ppmm_x = _f(getattr(result.grid, "px_per_mm_x", float("nan")))
    ppmm_y = _f(getattr(result.grid, "px_per_mm_y", float("nan")))
    if not (math.isfinite(ppmm_x) and ppmm_x > 0 and math.isfinite(ppmm_y) and ppmm_y > 0):
        return None
    ends = np.array([_trace_end_px(t, ppmm_x) for t in result.traces.rows], dtype=float)
    heights = np.array([r.centre_px for r in result.rows.rows], dtype=float)
    if len(ends) == len(heights):
        # a trace that runs to the image's edge may go on beyond it: its end says nothing
        inside = ends < result.deskew.image.shape[1] - 1 - 2.0 * ppmm_x
        ends, heights = ends[inside], heights[inside]
        if len(ends) >= 3:
            slope, offset, _, _ = theilslopes(ends, heights)  # robust to a row cut short
            misfit = ends - (offset + slope * heights)
            agree = np.abs(misfit) <= 1.0 * ppmm_x
            if (agree.sum() >= max(3, int(np.ceil(2 * len(ends) / 3)))
                    and float(np.std(misfit[agree])) <= 0.1 * ppmm_x):
                return float(np.degrees(np.arctan(slope * ppmm_y / ppmm_x)))
    pulses = list(getattr(result.calibration, "pulses", ()))
    if len(pulses) >= 3:
        lefts = np.array([p.x_left_px for p in pulses], dtype=float)
        levels = np.array([p.baseline_px for p in pulses], dtype=float)
        if np.ptp(levels) > 20 * ppmm_y:
            slope, offset, _, _ = theilslopes(lefts, levels)
            misfit = lefts - (offset + slope * levels)
            if np.all(np.abs(misfit) <= 0.2 * ppmm_x):
                return float(np.degrees(np.arctan(slope * ppmm_y / ppmm_x)))
    return None


AXIS_SCALE_TOL = 0.08
"""Largest relative difference between the rows' span after the pulse and 250 mm at the pulses'
scale for the span to set the scale of a page without a grid (see the module's measurement
note in ``docs/digitize.md``)."""
ASSUMED_SCALE_NOTE = "no grid and no dpi: scale assumed 200 dpi"
"""Start of the warning of a page read at the fallback scale."""
ROW_SPAN_NOTE = "no grid and no dpi: scale from the rows' span"
"""Start of the warning of a page whose scale came from its rows' span."""
ROW_SPAN_SOURCE = "row span"
"""Grid source of a page whose scale came from its rows' span
(:func:`digitize.layout_detect.scale_from_row_span`) before its pulses were looked for. On
the ECG-Image-Kit tune part's gridless layout-variant pages the 200-dpi guess read them at
about twice their scale (pulses, where printed, not found; the time axis half as long):
refused or near 0 dB. Whether the span or the guess comes first was measured on the 53 tune
layout-variant pages: span first 9.90 dB, span only where the pulses give no scale 8.41,
guess alone 7.66 (see ``docs/digitize.md``)."""


@dataclasses.dataclass(frozen=True)
class PageInk:
    """The geometry stages of one read: grid, deskew and ink, and the darkness the rows are
    looked for in (dark borders removed), with their warnings and timings."""

    grid: Any
    page_grid: Any
    deskew: Any
    ink: Any
    darkness: np.ndarray = dataclasses.field(repr=False)
    px_per_mm_x: float
    px_per_mm_y: float
    warnings: tuple[str, ...]
    timings_s: dict[str, float]
    paper_width_px: float | None = None


PAPER_INK_OUTSIDE = 0.5
"""Largest share of the page's ink (darkness ≥ 0.5) outside the paper region for the region
to be taken as the paper (:func:`paper_region`). On wrinkled ECG-Image-Kit pages (every
3rd of the tune part's scan and wrinkle pages where a region was found, 11) the shading split
the page and 0.57-0.87 of the ink lay outside; on phone photos the desk holds 0.00-0.47 of
it on 33 of 38 (the other five, 0.56-1.0, mostly refused either way)."""


def paper_region(image: np.ndarray, desk: Any, darkness: np.ndarray) -> np.ndarray | None:
    """Where the paper is on the deskewed page (``(H', W')`` bool), for a photo that shows
    the desk around it (:func:`digitize.grid.page_mask` on the page as given, carried
    through the deskew by :meth:`DeskewResult.warp`); None where the paper fills the image
    (scans), or where the region leaves more than :data:`PAPER_INK_OUTSIDE` of the page's
    ink (``darkness``) outside it (shading split a wrinkled page)."""
    from ecglens.digitize.grid import page_mask

    paper = page_mask(image)
    if paper is None:
        return None
    warped = desk.warp(paper.astype(np.float32), 0.0)
    on_paper = warped > 0.5
    if not on_paper.any():
        return None
    ink = darkness >= 0.5
    outside = float(ink[~on_paper].sum()) / max(1.0, float(ink.sum()))
    return on_paper if outside <= PAPER_INK_OUTSIDE else None


def page_ink(image: np.ndarray, dpi_prior: float | None, grid_override: Any = None,
             ink_at_grid_lines: bool = False, subtract_grid: bool = False) -> PageInk:
    """Grid, deskew and ink of a page image (``(H, W, 3)`` or ``(H, W)`` uint8): the stages
    before the rows, with the grid stage's result given (``grid_override``) and the ink
    stage's ``cap_at_grid_lines`` / ``subtract_grid`` chosen."""
    _, find_grid, deskew, find_ink = _stage_functions()
    timings: dict[str, float] = {}
    warnings: list[str] = []
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = timings.get(name, 0.0) + now - clock
        clock = now

    image = np.ascontiguousarray(image[..., :3]) if image.ndim == 3 else np.repeat(
        image[..., None], 3, axis=2)
    grid = grid_override if grid_override is not None else find_grid(image, dpi_prior)
    lap("grid")
    rotation = _f(getattr(grid, "rotation_deg", 0.0))
    if (abs(rotation) < 0.03 or not math.isfinite(rotation)) and getattr(
            grid, "homography", None) is None:
        # not worth resampling the page (it would only blur thin traces)
        desk = _read_as_is(image, grid, "rotation below 0.03 deg: page read as is")
    elif not getattr(grid, "found", False) and abs(rotation) > 6.0:
        warnings.append(f"rotation {rotation:.1f} deg estimated without a grid is not trusted; "
                        "page read as is")
        desk = _read_as_is(image, grid, "rotation estimated without a grid not trusted")
    else:
        desk = deskew(image, grid)
    grid2 = getattr(desk, "grid", None) or grid
    if not getattr(grid2, "found", False) and getattr(grid, "found", False):
        grid2 = grid
    lap("deskew")
    ppmm_x, ppmm_y = float(grid2.px_per_mm_x), float(grid2.px_per_mm_y)
    if not (math.isfinite(ppmm_x) and math.isfinite(ppmm_y) and ppmm_x > 0 and ppmm_y > 0):
        # no grid and no dpi: assume a 200-dpi scan and say so
        ppmm_x = ppmm_y = 200.0 / 25.4
        warnings.append(f"{ASSUMED_SCALE_NOTE} (low confidence)")
    page = desk.image
    ink = (find_ink(page, grid2, subtract_grid=True) if subtract_grid
           else find_ink(page, grid2, cap_at_grid_lines=ink_at_grid_lines))
    darkness = np.asarray(ink.darkness, dtype=np.float32)
    # dark borders (scanner lid, rotation fill) are not ink: no trace fills a column or row
    solid = darkness >= 0.5
    # (a flat lead is a line of ink across the page too, but thinner than 1 mm)
    dark_cols = _bands(solid.mean(axis=0) > 0.85, ppmm_x)
    dark_rows = _bands(solid.mean(axis=1) > 0.85, ppmm_y)
    if dark_cols.any() or dark_rows.any():
        darkness = darkness.copy()
        darkness[:, dark_cols] = 0.0
        darkness[dark_rows, :] = 0.0
    border = _solid_border(darkness, min(ppmm_x, ppmm_y))
    if border.any():
        darkness = np.where(border, np.float32(0.0), darkness)
    paper_width_px = None
    on_paper = paper_region(image, desk, darkness)
    if on_paper is not None:
        # a row runs across the paper, not across the whole picture
        columns = np.flatnonzero(on_paper.any(axis=0))
        darkness = np.where(on_paper, darkness, np.float32(0.0))
        paper_width_px = float(columns[-1] - columns[0] + 1)
    if getattr(grid2, "source", "") == "none":
        # no grid and no dpi: the rows' span, the standard 250 mm, gives the scale the 200-dpi
        # guess does not (the rows are found at that guess; the calibration pulses, looked for
        # at the span's scale, may still set it)
        span = scale_from_row_span(darkness, find_rows(darkness, ppmm_y,
                                                       page_width_px=paper_width_px))
        if span is not None:
            ppmm_x = ppmm_y = span.px_per_mm
            grid2 = dataclasses.replace(grid2, px_per_mm_x=ppmm_x, px_per_mm_y=ppmm_y,
                                        source=ROW_SPAN_SOURCE)
            warnings = [w for w in warnings if not w.startswith(ASSUMED_SCALE_NOTE)]
            warnings.append(f"{ROW_SPAN_NOTE}: {ppmm_x:.2f} px/mm, {span.n_agree} of "
                            f"{span.n_rows} rows spanning {span.span_px:.0f} px taken as the "
                            "standard 250 mm (10 s at 25 mm/s); low confidence")
    if not getattr(grid2, "found", False):
        warnings.append(f"grid not found ({getattr(grid2, 'reason', '')}); px/mm from "
                        f"{getattr(grid2, 'source', 'dpi')}")
    lap("ink")
    return PageInk(grid, grid2, desk, ink, darkness, ppmm_x, ppmm_y, tuple(warnings), timings,
                   paper_width_px)


def _read_page(image: np.ndarray, source: str, page_index: int, n_pages: int,
               dpi_prior: float | None, use_ocr: bool, layout_hint: str | None,
               grid_override: Any = None, ink_at_grid_lines: bool = False,
               pair_rows: bool = False, subtract_grid: bool = False,
               rows_from_pulses: bool = False, rows_from_network: bool = False
               ) -> DigitizeResult:
    """:func:`digitize_image` with the grid stage's result given (``grid_override``) and the
    ink stage's ``cap_at_grid_lines`` / ``subtract_grid`` chosen; ``rows_from_pulses``: where
    the ink projection finds no row, rows from the calibration pulses down the left margin
    (:func:`_rows_from_pulses_only`); ``rows_from_network``: the rows found in the ink the
    segmentation network calls trace (:func:`digitize.seg_ink.trace_only_ink`)."""
    geometry = page_ink(image, dpi_prior, grid_override, ink_at_grid_lines, subtract_grid)
    return _read_geometry(geometry, source, page_index, n_pages, use_ocr, layout_hint,
                          retry_read=ink_at_grid_lines or subtract_grid, pair_rows=pair_rows,
                          rows_from_pulses=rows_from_pulses,
                          rows_from_network=rows_from_network)


def _read_geometry(geometry: PageInk, source: str, page_index: int, n_pages: int,
                   use_ocr: bool, layout_hint: str | None, retry_read: bool = False,
                   pair_rows: bool = False, rows_from_pulses: bool = False,
                   rows_from_network: bool = False) -> DigitizeResult:
    """The stages after the ink (rows to convert) on a page's grid, deskew and ink
    (``geometry``); ``retry_read``: that ink is a second read's, at a lower level."""
    timings = dict(geometry.timings_s)
    warnings = list(geometry.warnings)
    grid2, desk, ink, darkness = geometry.page_grid, geometry.deskew, geometry.ink, \
        geometry.darkness
    ppmm_x, ppmm_y = geometry.px_per_mm_x, geometry.px_per_mm_y
    page = desk.image
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = timings.get(name, 0.0) + now - clock
        clock = now

    # the segmentation network's trace map, made once: the trace stage reads its runs and its
    # path with it, and the rows are looked for in the ink it calls trace where asked (the
    # last of the retry reads, or always by ECGLENS_ROWS_NETWORK=1)
    map_px_per_mm = 0.5 * (ppmm_x + ppmm_y)
    prob = page_trace_map(page, map_px_per_mm)
    rows_ink = darkness
    network_row_count = None
    if prob is not None:
        rows_mode = rows_from_env()
        if rows_mode == "network" or (rows_from_network and rows_mode == "fallback"):
            rows_ink = trace_only_ink(darkness, prob, TRACE_RUN_LEVEL)
        elif rows_mode == "fallback":
            # counted only, to see whether the colour rows missed one (:func:`_read_upright`)
            network_row_count = len(find_rows(trace_only_ink(darkness, prob, TRACE_RUN_LEVEL),
                                              ppmm_y, page_width_px=geometry.paper_width_px,
                                              bridge_single_gaps=True).rows)
    lap("trace model")
    # the third read (a page whose rows were not found twice) also takes thin lines split over
    # two pixel rows for rows
    rows = find_rows(rows_ink, ppmm_y, pair_rows=pair_rows,
                     page_width_px=geometry.paper_width_px,
                     bridge_single_gaps=rows_ink is not darkness)
    log.debug("rows: %d found in the %s ink", len(rows.rows),
              "colour" if rows_ink is darkness else "network's trace")
    if rows_from_pulses and not rows.rows:
        rows = _rows_from_pulses_only(darkness, ppmm_x, ppmm_y) or rows
        if rows.rows:
            warnings.append(f"no row found in the ink projection; {len(rows.rows)} rows read "
                            "on the lattice of the calibration pulses down the left margin")
    _check_is_ecg(darkness, rows, source)
    template_rows = TEMPLATE_ROWS
    completed = complete_rows(rows, rows_ink, ppmm_y, template_rows)
    by_pulses = None
    if (len(completed.rows) != len(rows.rows) or len(rows.rows) not in template_rows
            or retry_read):
        # the projection missed rows (or the first read found none): the calibration
        # pulses down the left margin, where every row has one, are the better evidence
        by_pulses = pulse_scan_rows(rows, darkness, ppmm_x, ppmm_y, template_rows)
        if not strip_below(rows, by_pulses):
            by_pulses = pulse_scan_rows(rows, darkness, ppmm_x, ppmm_y, NO_STRIP_COUNTS)
    # the pulses win over the projection's lattice completion at equal counts too (an own
    # render: completion added a row at the scanner's shadow and missed the top row)
    completion_used = len(completed.rows) != len(rows.rows)
    # ...and at fewer rows where a pulse sits on every one of them and the projection saw at
    # most one row more (an own 6x2 render at 20 mm/mV: V1-V4's tall complexes made a
    # seventh row, which completion turned into 12 rows at half the pulses' pitch)
    every_row_pulsed = (by_pulses is not None and by_pulses.pulsed_rows == len(by_pulses.rows)
                        and len(by_pulses.rows) in template_rows
                        and len(rows.rows) <= len(by_pulses.rows) + 1)
    if by_pulses is not None and (len(by_pulses.rows) > len(completed.rows)
                                  or len(completed.rows) not in template_rows
                                  or (completion_used
                                      and (len(by_pulses.rows) == len(completed.rows)
                                           or every_row_pulsed))):
        warnings.append(f"{len(rows.rows)} rows found in the ink projection; read as "
                        f"{len(by_pulses.rows)} rows on the lattice of the calibration pulses "
                        "down the left margin")
        rows = by_pulses
    elif len(completed.rows) != len(rows.rows):
        warnings.append(f"{len(completed.rows) - len(rows.rows)} trace row(s) not seen in "
                        "the ink projection were added on the row lattice")
        rows = completed
    elif len(rows.rows) not in template_rows:
        confirmed = pulse_lattice(rows, darkness, ppmm_x, ppmm_y, template_rows)
        if not strip_below(rows, confirmed):
            confirmed = pulse_lattice(rows, darkness, ppmm_x, ppmm_y, NO_STRIP_COUNTS)
        if confirmed is not None:
            warnings.append(f"{len(rows.rows)} rows found in the ink projection fit no "
                            f"template; read as {len(confirmed.rows)} rows on the lattice "
                            "their calibration pulses confirm")
            rows = confirmed
    lap("rows")
    pitch = rows.pitch_px if math.isfinite(rows.pitch_px) else 40 * ppmm_y
    rows_top = rows.rows[0].centre_px - 0.6 * pitch
    rows_bottom = rows.rows[-1].centre_px + 0.5 * pitch
    clean = darkness
    pulses: list[Pulse] = []
    pulse_start = rows_start_px(rows)
    # on the second reads, whose lower ink level can make grid lines ink, the search
    # keeps to 30 mm (a real photo: grid lines 30 mm into its rows passed as pulses of two
    # gains at 40 mm, and the page was read with its cells shifted)
    search_mm = RETRY_PULSE_SEARCH_MM if retry_read else PULSE_SEARCH_MM
    for row in rows.rows:
        pulse = row_pulse(clean, row, ppmm_x, ppmm_y, pitch, pulse_start, search_mm)
        if pulse is not None:
            pulses.append(pulse)
    if not pulses:
        pulses = faint_pulses(clean, rows, ppmm_x, ppmm_y, pitch)
        if pulses:
            warnings.append(f"{FAINT_PULSES_NOTE} {FAINT_PULSE_GAIN:g}x the ink "
                            "darkness (faint vertical strokes)")
    extended = extend_rows_by_pulses(rows, pulses, clean, ppmm_x, ppmm_y, template_rows)
    if extended is not None and not strip_below(rows, extended[0]):
        extended = extend_rows_by_pulses(rows, pulses, clean, ppmm_x, ppmm_y, NO_STRIP_COUNTS)
    if extended is not None:
        warnings.append(f"{len(extended[0].rows) - len(rows.rows)} row(s) beyond the rows found "
                        "in the ink projection added where their calibration pulses are")
        rows, pulses = extended
        pitch = rows.pitch_px
        rows_top = rows.rows[0].centre_px - 0.6 * pitch
        rows_bottom = rows.rows[-1].centre_px + 0.5 * pitch
    column = pulse_column(pulses, ppmm_x)
    if len(column) < len(pulses):
        kept = {id(p) for p in column}
        stray = sorted(p.row for p in pulses if id(p) not in kept)
        warnings.append(f"pulse-like strokes on row(s) {', '.join(map(str, stray))} lie off the "
                        "page's column of calibration pulses: not used as pulses")
        pulses = column
    if getattr(grid2, "source", "") in ("none", ROW_SPAN_SOURCE):
        # no grid and no dpi: the 200-dpi guess or the rows' span gives way to the pulses'
        # own height
        pulse_scale = scale_from_pulses(pulses, ppmm_x, ppmm_y)
        if pulse_scale is not None:
            ppmm_x = ppmm_y = pulse_scale.px_per_mm
            pulses = list(pulse_scale.pulses)
            grid2 = dataclasses.replace(grid2, px_per_mm_x=ppmm_x, px_per_mm_y=ppmm_y,
                                        source="pulses")
            warnings = [w for w in warnings if not w.startswith((ASSUMED_SCALE_NOTE,
                                                                    ROW_SPAN_NOTE))]
            warnings.append(
                f"no grid: scale {ppmm_x:.2f} px/mm from {pulse_scale.n_agree} calibration "
                "pulses taken as the standard 1 mV at 10 mm/mV (their shape says "
                f"{pulse_scale.speed_mm_s:g} mm/s); gain and scale are not confirmed apart")
    pulse_right = max((p.x_right_px for p in pulses), default=None)
    lap("calibration")
    pulse_of = {p.row: p for p in pulses}
    x_ranges = []
    for row in rows.rows:
        # read from just right of the pulse (or the row's first ink) to its last ink
        start = (pulse_right + PULSE_CLEAR_MM * ppmm_x if pulse_right is not None
                 else row.x_first_px)
        x_ranges.append((max(int(start), 0), min(int(row.x_last_px) + 2, page.shape[1])))
    baselines0 = [pulse_of[r.index].baseline_px if r.index in pulse_of else r.centre_px
                  for r in rows.rows]
    # the band reaches as far as a trace can deflect at the largest gain the pulses show
    reach = (MAX_EXCURSION_MV * max(p.gain_mm_mv for p in pulses) * ppmm_y if pulses
             else None)
    # faint strokes the network calls trace count into the runs (seg_ink.trace_stage_ink)
    trace_px_per_mm = 0.5 * (ppmm_x + ppmm_y)
    if prob is not None and abs(trace_px_per_mm / map_px_per_mm - 1.0) > MAP_RESCALE:
        # the scale came from the pulses after the map was made (no grid): made again
        prob = page_trace_map(page, trace_px_per_mm)
    inked = inked_pixels(page, clean, px_per_mm=trace_px_per_mm) if prob is not None else None
    raised = (trace_stage_ink(page, clean, trace_px_per_mm, TRACE_RUN_LEVEL, prob, inked)
              if prob is not None else None)
    trace_ink = clean if raised is None else raised
    lap("trace model")
    coverage = (tuple(row_trace_coverage(prob, baselines0, x_ranges, ppmm_y))
                if prob is not None else None)
    path_dark = (path_ink(clean, prob, inked=inked) if prob is not None and path_from_env()
                 else None)
    traces = extract_traces(trace_ink, baselines0, x_ranges, ppmm_y, threshold=TRACE_RUN_LEVEL,
                            max_excursion_px=reach, path_darkness=path_dark)
    traces = dataclasses.replace(traces, network_runs=raised is not None,
                                 row_trace_coverage=coverage)
    lap("trace")
    claimed = trace_pixels(darkness.shape, traces.rows, traces.line_width_px + 0.8 * ppmm_y)
    for p in pulses:   # pulse strokes are not text either
        top = int(p.baseline_px - p.gain_mm_mv * ppmm_y - 2 * ppmm_y)
        claimed[max(top, 0):int(p.baseline_px + 2 * ppmm_y),
                max(int(p.x_left_px - 3 * ppmm_x), 0):int(p.x_right_px + 3 * ppmm_x)] = True
    text = read_text(darkness, ppmm_y, rows_top, rows_bottom, use_ocr=use_ocr,
                     trace_mask=claimed)
    if use_ocr and not text.ocr_ok and text.word_boxes:
        warnings.append("OCR unavailable: lead labels and settings line not read")
    lap("text")
    settings = parse_settings_text(text.settings_text) if text.settings_text else None
    cal = decide_calibration(pulses, len(rows.rows), settings)
    warnings.extend(cal.warnings)
    # a path that runs on along a grid line or a shading after the trace does not extend it
    last_ink = common_contrast_ends(traces.rows, clean, ppmm_x,
                                    [_trace_end_px(trace, ppmm_x) for trace in traces.rows])
    # a scale from the pulses alone is refined on the rows' span below: their right end is
    # then trusted, not checked against the pulses
    scale_from_pulses_only = getattr(grid2, "source", "") == "pulses"
    axis = find_time_axis(rows, pulse_right, ppmm_x, cal.speed_mm_s,
                          line_width_px=traces.line_width_px, last_ink_px=last_ink,
                          max_gap_mm=None if scale_from_pulses_only else AXIS_MAX_GAP_MM,
                          image_width_px=page.shape[1])
    if scale_from_pulses_only and pulse_right is not None:
        # a pulse's height is known to a few per cent (pen caps); the rows' span from the
        # pulse to their common end, where it is the standard 250 mm, is known to a pixel
        span_px = axis.x1_px - pulse_right
        ratio = span_px / (STANDARD_AXIS_MM * ppmm_x)
        if abs(ratio - 1.0) <= AXIS_SCALE_TOL:
            ppmm_x = ppmm_y = span_px / STANDARD_AXIS_MM
            grid2 = dataclasses.replace(grid2, px_per_mm_x=ppmm_x, px_per_mm_y=ppmm_y,
                                        source="pulses+axis")
            axis = find_time_axis(rows, pulse_right - 1.0 * ppmm_x, ppmm_x, cal.speed_mm_s,
                                  line_width_px=traces.line_width_px, last_ink_px=last_ink)
            warnings.append(f"no grid: scale refined to {ppmm_x:.3f} px/mm (x{1 / ratio:.3f}) "
                            "taking the rows' span after the pulse as the standard 250 mm")
        else:
            warnings.append(f"no grid: the rows' span after the pulse is {ratio:.2f} of 250 mm "
                            "at the pulses' scale; scale kept")
    lap("calibration")
    baselines = []
    row_gains = list(cal.row_gain_mm_mv)
    for row, trace in zip(rows.rows, traces.rows, strict=True):
        finite = trace.y_px[np.isfinite(trace.y_px)]
        if row.index in pulse_of:
            base = pulse_of[row.index].baseline_px
            px_per_mv = row_gains[row.index] * ppmm_y
            if len(finite) and abs(float(np.median(finite)) - base) > PULSE_BASE_MAX_MV * px_per_mv:
                level_mv = (base - float(np.median(finite))) / px_per_mv
                note = ""
                if row_gains[row.index] != cal.gain_mm_mv:
                    # a misread pulse gives its row no gain of its own either
                    note = (f" and it is read at the page's {cal.gain_mm_mv:g} mm/mV, not its "
                            f"pulse's {row_gains[row.index]:g}")
                    row_gains[row.index] = cal.gain_mm_mv
                warnings.append(f"row {row.index}: its trace lies {level_mv:+.2f} mV from its "
                                "pulse's bottom most of the time; its most common level is "
                                f"taken as 0 mV{note}")
                base = _mode(finite)
            baselines.append(base)
        else:
            # no pulse: the most common trace level (isoelectric line), not the mean
            baselines.append(_mode(finite) if len(finite) else row.centre_px)
    if tuple(row_gains) != cal.row_gain_mm_mv:
        cal = dataclasses.replace(cal, row_gain_mm_mv=tuple(row_gains))
    if len(pulses) < len(rows.rows):
        warnings.append("rows without a pulse use their most common level as 0 mV")
    copies = None if layout_hint else _strip_copies(traces, axis)
    if copies is not None and copies < STRIP_COPY_MIN:
        # the bottom row copies no lead printed above it: not a rhythm strip
        warnings.append(f"bottom row (row {len(rows.rows) - 1}) copies no lead above it "
                        f"(best correlation {copies:.2f}): not read as a rhythm strip")
        rows = dataclasses.replace(rows, rows=rows.rows[:-1])
        traces = dataclasses.replace(traces, rows=traces.rows[:-1])
        baselines = baselines[:-1]
        cal = dataclasses.replace(cal, row_gain_mm_mv=cal.row_gain_mm_mv[:-1])
    separators = fit_separators(
        separator_profile(clean, claimed, baselines, rows.pitch_px, ppmm_x,
                          lightest=lightest_channel(normalised_u8(page))), axis.x0_px,
        axis.x1_px, ppmm_x, strip_rows=_known_strip_rows(len(rows.rows)))
    if separators is not None and separators.accepted:
        # four columns between the separators' lattice ends: the standard 250 mm, which sets
        # the scale along x too (a row read from a late first ink, or a grid's px/mm a few
        # per cent off, gave a shorter axis; its length is not kept)
        ppmm_x = (separators.x1_px - separators.x0_px) / STANDARD_AXIS_MM
        standard_s = STANDARD_AXIS_MM / cal.speed_mm_s
        axis = TimeAxis(x0_px=separators.x0_px, x1_px=separators.x1_px,
                        duration_s=round(standard_s, 4), n_samples=round(standard_s * FS_HZ),
                        source=f"{axis.source}; fitted to the lead separators "
                               f"({separators.reason})")
    ticks = tick_evidence(clean, baselines, axis, ppmm_x)
    label_positions = []
    span = axis.x1_px - axis.x0_px
    for lab in text.labels:
        if lab.lead is None:
            continue
        cy = 0.5 * (lab.box[1] + lab.box[3])
        row_index = int(np.argmin([abs(cy - b) for b in baselines]))
        xfrac = (lab.box[0] - axis.x0_px) / span
        label_positions.append((row_index, round(float(xfrac), 3), lab.lead))
    einthoven_scores = _einthoven_by_layout(len(rows.rows), traces, baselines, cal, ppmm_x,
                                            ppmm_y, axis)
    if layout_hint:
        layout_result = LayoutResult(get_layout(layout_hint).name, 1.0, {}, {"hint": layout_hint},
                                     ("layout given by the caller",))
    else:
        layout_result = choose_layout(len(rows.rows), ticks, label_positions, einthoven_scores,
                                      strip_matcher(traces.rows, axis),
                                      strip_distances(traces.rows, axis))
    warnings.extend(layout_result.warnings)
    lap("layout")
    layout = layout_result.layout
    if layout is None:
        raise RowsError(f"unknown layout: {len(rows.rows)} trace rows fit no template", source)
    row_conf = [t.confidence for t in traces.rows]
    extra = min(1.0, 0.5 + 0.5 * cal.confidence) * min(1.0, 0.5 + 0.5 * layout_result.confidence)
    conv = build_record(traces.rows, layout, baselines, list(cal.row_gain_mm_mv), cal.speed_mm_s,
                        ppmm_x, ppmm_y, axis.x0_px, axis.n_samples, row_conf, extra,
                        provenance={"source": source, "page": page_index + 1,
                                    "producer": f"ecglens digitize {VERSION}",
                                    "layout": layout.name, "gain_mm_mv": cal.gain_mm_mv,
                                    "speed_mm_s": cal.speed_mm_s},
                        guard_px=BOUNDARY_GUARD_PENS * traces.line_width_px + 1.0)
    for name, value in conv.einthoven.items():
        if math.isfinite(value) and value > 0.35:
            warnings.append(f"Einthoven check ({name}) residual {value:.2f} of signal rms: "
                            "leads may be mislabelled or misread")
    lap("convert")
    return DigitizeResult(
        source=source, page_index=page_index, n_pages=n_pages, grid=grid2, deskew=desk, ink=ink,
        rows=rows, text=text, calibration=cal, time_axis=axis, traces=traces,
        layout=layout_result, convert=conv, baselines_px=tuple(float(b) for b in baselines),
        warnings=tuple(dict.fromkeys(warnings)), timings_s=timings,
        network_row_count=network_row_count, separators=separators)


def _known_strip_rows(n_rows: int) -> tuple[int, ...]:
    """The rhythm-strip rows every template of ``n_rows`` rows shares (none where the
    templates of that count differ, e.g. 3x4+3 and 6x2)."""
    found = {lay.rhythm_rows for lay in LAYOUTS.values() if lay.n_rows == n_rows}
    return next(iter(found)) if len(found) == 1 else ()


def _mode(values: np.ndarray) -> float:
    """Most common value (histogram peak at 0.5 px, refined by the mean around it)."""
    lo, hi = float(values.min()), float(values.max())
    if hi - lo < 1:
        return float(np.median(values))
    hist, edges = np.histogram(values, bins=max(2, int((hi - lo) / 0.5)))
    k = int(np.argmax(hist))
    centre = 0.5 * (edges[k] + edges[k + 1])
    near = values[np.abs(values - centre) <= 1.5]
    return float(near.mean()) if len(near) else centre


def _bands(dark: np.ndarray, px_per_mm: float) -> np.ndarray:
    """``dark`` (one flag per image row or column) kept only in runs at least 1 mm long or
    touching the image edge: a scanner's border or fill, not a single flat trace line (an
    own-renderer page has three flat leads, which were erased as dark rows before)."""
    if not dark.any():
        return dark
    edges = np.flatnonzero(np.diff(np.concatenate([[0], dark.astype(np.int8), [0]])))
    out = np.zeros_like(dark)
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        if stop - start >= px_per_mm or start == 0 or stop == len(dark):
            out[start:stop] = True
    return out


def _solid_border(darkness: np.ndarray, px_per_mm: float) -> np.ndarray:
    """Pixels of solid dark regions that touch the image edge (the scanner lid beside a
    tilted page, the fill of a rotation): ink wider than 2 mm in both directions, which no
    trace or text stroke is. Found on a ~2 px/mm copy; returned at full size, grown by 1 mm.
    """
    import cv2

    factor = max(1, int(px_per_mm / 2))
    h, w = darkness.shape
    # (cropped to a whole number of cells: OpenCV's whole-factor area path, 3x as fast)
    small = cv2.resize(np.greater_equal(darkness[:max(factor, h // factor * factor),
                                                 :max(factor, w // factor * factor)],
                                        0.5).view(np.uint8),
                       (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_AREA)
    size = max(3, round(2 * px_per_mm / factor) | 1)
    solid = cv2.morphologyEx(small, cv2.MORPH_OPEN, np.ones((size, size), np.uint8))
    if not solid.any():
        return np.zeros(darkness.shape, dtype=bool)
    _, labels = cv2.connectedComponents(solid)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    edge = edge[edge > 0]
    if len(edge) == 0:
        return np.zeros(darkness.shape, dtype=bool)
    edge_parts = np.isin(labels, edge).astype(np.uint8)
    grow = max(1, round(px_per_mm / factor))
    keep = cv2.dilate(edge_parts, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8))
    return cv2.resize(keep, (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)


def _einthoven_by_layout(n_rows: int, traces: TraceResult, baselines: list[float],
                         cal: CalibrationResult, ppmm_x: float, ppmm_y: float,
                         axis: TimeAxis) -> dict[str, float]:
    """Consistency penalty per candidate template (subtracted, ×2, from its layout score):
    the Einthoven residual for templates that only differ in lead order (12x1 vs Cabrera);
    :func:`_duplicate_mismatch` for templates that differ in their grid (6x2 vs 3x4+3)."""
    candidates = [name for name, lay in LAYOUTS.items() if lay.n_rows == n_rows]
    if len(candidates) < 2:
        return {}
    if not all(len(LAYOUTS[c].row_cells(0)) == 1 for c in candidates):
        # templates that differ in their grid (6x2 vs 3x4+3): a lead printed twice (a cell
        # and a rhythm strip) must read the same both times
        return {name: _duplicate_mismatch(LAYOUTS[name], traces, axis) for name in candidates}
    out = {}
    for name in candidates:
        conv = build_record(traces.rows, LAYOUTS[name], baselines, list(cal.row_gain_mm_mv),
                            cal.speed_mm_s, ppmm_x, ppmm_y, axis.x0_px, axis.n_samples)
        res = einthoven_residual(conv.record.signal)
        vals = [v for v in res.values() if math.isfinite(v)]
        out[name] = float(np.mean(vals)) if vals else float("nan")
    return out


def _duplicate_mismatch(layout: Any, traces: TraceResult, axis: TimeAxis) -> float:
    """Sum over the leads that ``layout`` prints twice at the same time of (0.6 − r), r the
    correlation of the two rows' traces there: negative where the copies agree (evidence for
    the layout), positive where they do not; 0 for a layout without such pairs."""
    span = axis.x1_px - axis.x0_px
    total = 0.0
    cells = sorted(layout.cells, key=lambda c: (c.stored_lead, c.t1 - c.t0))
    for i, short in enumerate(cells):
        for long in cells[i + 1:]:
            if long.stored_lead != short.stored_lead or long.row == short.row:
                continue
            t0, t1 = max(short.t0, long.t0), min(short.t1, long.t1)
            if t1 - t0 < 0.1 or long.row >= len(traces.rows) or short.row >= len(traces.rows):
                continue
            xs = np.arange(axis.x0_px + t0 * span + 0.05 * span * (t1 - t0),
                           axis.x0_px + t1 * span - 0.05 * span * (t1 - t0))
            a_tr, b_tr = traces.rows[short.row], traces.rows[long.row]
            a = np.interp(xs, a_tr.x_px.astype(float), a_tr.y_px, left=np.nan, right=np.nan)
            b = np.interp(xs, b_tr.x_px.astype(float), b_tr.y_px, left=np.nan, right=np.nan)
            ok = np.isfinite(a) & np.isfinite(b)
            if ok.sum() < 20 or np.std(a[ok]) == 0 or np.std(b[ok]) == 0:
                continue
            r = float(np.corrcoef(a[ok], b[ok])[0, 1])
            total += 0.6 - r
    return total


PULSE_COLUMN_MM = 5.0
"""Pulses whose right edges lie within this of each other form a column; a pulse-like stroke
off the page's column is not at its row's start (a square-looking artefact in a trace on an
own render) and is not used as a pulse."""


def pulse_column(pulses: Sequence[Pulse], px_per_mm_x: float) -> list[Pulse]:
    """The page's column of calibration pulses: the pulse with the most others within
    ``PULSE_COLUMN_MM`` of its right edge, and those others (on a tie the leftmost group:
    pulses are printed at the rows' start). Empty without pulses."""
    if not pulses:
        return []
    rights = np.array([p.x_right_px for p in pulses], dtype=float)
    near = np.abs(rights[:, None] - rights[None, :]) <= PULSE_COLUMN_MM * px_per_mm_x
    counts = near.sum(axis=1)
    best = max(range(len(rights)), key=lambda i: (counts[i], -rights[i]))
    if not near[best].any():        # no scale (NaN px/mm): keep them all
        return list(pulses)
    return [p for p, keep in zip(pulses, near[best], strict=True) if keep]


def iter_digitize_file(path: str | Path, dpi: float | None = None, use_ocr: bool = True,
                       pages: tuple[int, ...] | None = None, upright: bool = False
                       ) -> Iterator[DigitizeResult]:
    """Read the pages of an image or PDF file one at a time (see :func:`digitize_image`;
    ``upright``: the caller states the pages are upright as given).

    ``pages`` (1-based) limits the reading to those pages. Only one page image is held at a
    time, so memory does not grow with the page count.

    Raises
    ------
    InputError
        Missing, truncated or unreadable file, empty or encrypted PDF, page out of range.
    DigitizeError
        A page cannot be read as an ECG.
    """
    from ecglens.digitize.load import iter_pages

    t0 = time.perf_counter()
    for page in iter_pages(path, dpi=dpi, pages=pages):
        load_s = time.perf_counter() - t0
        result = digitize_image(page.image, source=str(path), page_index=page.page_index,
                                n_pages=page.n_pages, dpi_prior=page.dpi_prior, use_ocr=use_ocr,
                                upright=upright)
        yield dataclasses.replace(result, timings_s={"load": load_s, **result.timings_s})
        t0 = time.perf_counter()


def digitize_file(path: str | Path, dpi: float | None = None, use_ocr: bool = True
                  ) -> list[DigitizeResult]:
    """Read every page of an image or PDF file (see :func:`iter_digitize_file`)."""
    return list(iter_digitize_file(path, dpi=dpi, use_ocr=use_ocr))


def write_outputs(result: DigitizeResult, outdir: str | Path, overlay: bool = True,
                  stem: str | None = None, overwrite: bool = False,
                  extra_json: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write ``<stem>.hea/.dat``, ``<stem>.json`` and ``<stem>_overlay.png`` into ``outdir``.

    The files are written into a temporary folder inside ``outdir`` and moved into place
    together, the header last: a record is complete (its ``.hea`` exists) or absent, never
    half-written, also after Ctrl-C. ``stem`` defaults to :attr:`DigitizeResult.stem`;
    ``extra_json`` is merged into the page JSON (e.g. the input path and output stem).

    Raises
    ------
    OutputError
        ``outdir`` is a file or cannot be written, or an output exists and ``overwrite`` is
        False.
    """
    import os
    import shutil
    import tempfile

    from ecglens.core.errors import OutputError
    from ecglens.core.io import write_wfdb

    outdir = Path(outdir)
    stem = stem or result.stem
    if outdir.exists() and not outdir.is_dir():
        raise OutputError("output folder is a file", outdir)
    names = [f"{stem}.dat", f"{stem}.json", f"{stem}.hea"]
    if overlay:
        names.insert(1, f"{stem}_overlay.png")
    if not overwrite:
        existing = [n for n in names if (outdir / n).exists()]
        if existing:
            raise OutputError(f"{existing[0]} exists (use --overwrite to replace it, or --resume "
                              "to skip complete pages)", outdir)
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{stem}.", suffix=".partial", dir=outdir))
    except OSError as exc:
        raise OutputError(f"cannot write here ({exc.strerror or exc})", outdir) from exc
    try:
        write_wfdb(result.record, staging / stem)
        t0 = time.perf_counter()
        if overlay:
            from ecglens.digitize.overlay import save_overlay

            save_overlay(result.overlay_image(), staging / f"{stem}_overlay.png")
        overlay_s = time.perf_counter() - t0
        data = result.to_json()
        data["timings_s"]["overlay"] = round(overlay_s, 4)
        data.update({"output_stem": stem, **(extra_json or {})})
        (staging / f"{stem}.json").write_text(json.dumps(data, indent=1))
        for name in names:   # header last: its presence marks a complete record
            os.replace(staging / name, outdir / name)
    except OSError as exc:
        raise OutputError(f"cannot write outputs ({exc.strerror or exc})", outdir) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    paths = {"header": outdir / f"{stem}.hea", "json": outdir / f"{stem}.json"}
    if overlay:
        paths["overlay"] = outdir / f"{stem}_overlay.png"
    return paths
