"""A one-page PDF report of one ECG that a clinician reads: :func:`build_report_pdf`.

The page is A4 landscape at true physical scale (1 mm on the grid is 1 mm on paper):

* the 12 leads re-plotted from the read record on ECG paper (1 mm / 5 mm lines) at 25 mm/s and
  10 mm/mV in the standard 3x4 arrangement with a lead II rhythm strip, a 1-mV calibration
  pulse in front of every row, lead names, and NaN spans left as gaps;
* intervals and the STEMI statement at the top; the ST table, the STEMI rules that fired,
  warnings, the class probabilities with their decisions and (for a paper input) the page with
  the digitizer's overlay below the grid;
* provenance (file, page, layout, gain, speed, versions, date) and the disclaimer at the foot.

A record that is not assessable (analysis ``measurable`` False, or a classification that says
so) gets the reason as it comes and no finding: no intervals, no class probabilities.

:func:`build_report_pdf` goes from a path to the PDF; :func:`write_report_pdf` and
:func:`report_figure` start from an already loaded input, analysis and classification (for a
web page). The PDF is written to a temporary name in the output folder and renamed when
complete, so a half-written report never exists under the output name.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import logging
import math
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ecglens import __version__
from ecglens.core import DISCLAIMER
from ecglens.core.errors import InputError, OutputError
from ecglens.core.layouts import LAYOUTS
from ecglens.core.record import ECGRecord

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ecglens.analysis.report import AnalysisReport
    from ecglens.app.inputs import LoadedInput

log = logging.getLogger(__name__)

# ---------------------------------------------------------------- page geometry (mm)
MM_PER_INCH = 25.4
PT_MM = MM_PER_INCH / 72.0
"""One typographic point in mm."""
PAGE_W_MM, PAGE_H_MM = 297.0, 210.0
"""A4 landscape."""
MARGIN_MM = 8.0
HEADER_H_MM = 19.0
"""Title, patient, intervals and STEMI statement above the grid."""

SPEED_MM_S = 25.0
GAIN_MM_MV = 10.0
STRIP_S = 10.0
"""Seconds of the record on the page (the rhythm strip's length)."""
CAL_LEAD_IN_MM = 10.0
"""Grid in front of the traces that holds the calibration pulse."""
CAL_PULSE_MV = 1.0
CAL_PULSE_S = 0.2
CAL_PULSE_X_MM = 2.5
"""Where the pulse rises, from the grid's left edge."""
MINOR_MM, MAJOR_MM = 1.0, 5.0
ROW_MM = 25.0
"""Height of one trace row (5 major squares); large complexes may reach into the next row, as
on printed ECGs."""
BASELINE_BELOW_ROW_TOP_MM = 14.0
LAYOUT_NAME = "3x4+1"
"""Standard 3x4 arrangement plus a lead II rhythm strip (:data:`ecglens.core.layouts.LAYOUTS`)."""
N_ROWS = LAYOUTS[LAYOUT_NAME].n_rows
GRID_W_MM = CAL_LEAD_IN_MM + STRIP_S * SPEED_MM_S
GRID_H_MM = N_ROWS * ROW_MM
GRID_X_MM = (PAGE_W_MM - GRID_W_MM) / 2.0
GRID_TOP_MM = PAGE_H_MM - MARGIN_MM - HEADER_H_MM
GRID_Y_MM = GRID_TOP_MM - GRID_H_MM
SEPARATOR_MM = 3.0
"""Half height of the tick that separates two leads in a row."""

CAPTION_GAP_MM = 1.2
PANEL_TOP_MM = GRID_Y_MM - 6.5
FOOTER_H_MM = 15.5
PANEL_BOTTOM_MM = MARGIN_MM + FOOTER_H_MM
COLUMN_GAP_MM = 3.0
COLUMN_W_MM = (60.0, 106.0, 54.0, 52.0)
"""ST table, STEMI rules and warnings, classification, input page; with the gaps they fill the
width between the margins."""
THUMB_MAX_PX = 900
"""The overlay image is downscaled to at most this width (≈ 440 dpi over its 52 mm)."""

REPORT_FILE_MODE = 0o644
"""Permissions of the written PDF (the temporary file is created private)."""
GRID_AXES_LABEL = "ecg-grid"
"""Label of the grid axes (its data units are mm on paper)."""

# ---------------------------------------------------------------- style
MINOR_COLOUR, MAJOR_COLOUR = "#f6c3c3", "#e07878"
MINOR_LW_PT, MAJOR_LW_PT = 0.25, 0.6
TRACE_COLOUR, TRACE_LW_PT = "black", 0.6
TEXT_COLOUR, MUTED_COLOUR, ALERT_COLOUR = "black", "#555555", "#c00000"
FONT_PT = 6.5
HEADING_PT = 7.5
FONT_FAMILY = "DejaVu Sans"
LINE_SPACING = 1.22
STATEMENT_FITS = ((8.5, 2), (7.5, 2), (6.5, 3))
"""(font size, most lines) tried in turn for the STEMI statement in the header."""

CLASS_NAMES = {"NORM": "normal ECG", "MI": "myocardial infarction", "STTC": "ST/T change",
               "CD": "conduction disturbance", "HYP": "hypertrophy"}
"""PTB-XL diagnostic superclasses in words."""


# ================================================================= from a path to the PDF
def check_output_path(out_pdf: str | Path) -> Path:
    """The output path, checked before any work: not a folder, in a writable folder.

    Raises
    ------
    OutputError
        Naming the path.
    """
    out = Path(out_pdf)
    if out.is_dir():
        raise OutputError("is a folder; give a file name such as report.pdf", out)
    parent = out.parent
    if not parent.exists():
        raise OutputError(f"folder {str(parent)!r} does not exist", out)
    if not parent.is_dir():
        raise OutputError(f"{str(parent)!r} is not a folder", out)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"folder {str(parent)!r} is not writable", out)
    if out.exists() and not os.access(out, os.W_OK):
        raise OutputError("exists and is not writable", out)
    return out


def load_one_page(path: str | Path, page: int | None = None, upright: bool = False
                  ) -> LoadedInput:
    """The one record a report is about: a signal file, or one page of an image/PDF.

    Raises
    ------
    InputError
        As :func:`ecglens.app.inputs.iter_inputs`; also for a multi-page input without
        ``page`` (a report covers one page).
    """
    from ecglens.app.inputs import is_paper, iter_inputs

    if page is None and is_paper(path):
        from ecglens.digitize.load import count_pages

        n_pages = count_pages(path)
        if n_pages > 1:
            raise InputError(f"{n_pages} pages; a report covers one page: choose it with "
                             "--page N", path)
    item = next(iter(iter_inputs(path, page=page, upright=upright)), None)
    if item is None:
        raise InputError("no page could be read", path)
    return item


def build_report_pdf(path: str | Path, out_pdf: str | Path, page: int | None = None,
                     sex: str | None = None, age: float | None = None,
                     upright: bool = False) -> Path:
    """Read ``path`` (one page), analyse and classify it, and write the one-page PDF report.

    Parameters
    ----------
    path
        WFDB record (.hea), CSV or JSON record, or an image/PDF of a paper ECG.
    out_pdf
        The PDF to write (replaced if it exists; written whole or not at all).
    page
        1-based page of a multi-page image/PDF (required when it has several).
    sex, age
        Override the record's sex (``"M"``/``"F"``) and age (years).

    Returns
    -------
    Path
        ``out_pdf``.

    Raises
    ------
    EcglensError
        :class:`InputError` for an unreadable input, :class:`OutputError` for an output that
        cannot be written, and what reading a page or classifying may raise.
    """
    from ecglens.analysis.report import analyze_record

    out = check_output_path(out_pdf)
    item = load_one_page(path, page, upright)
    analysis = analyze_record(item.record, sex=sex, age=age)
    classification = None
    if _not_assessable(analysis.to_dict()) is None:
        from ecglens.classify.report import classify_one

        classification = classify_one(item.record, item.source, item.page,
                                      digitized=item.digitized)
    else:
        log.info("%s: not assessable; no classification", item.source)
    return write_report_pdf(item, analysis, classification, out)


def write_report_pdf(item: LoadedInput, analysis: AnalysisReport | Mapping[str, Any],
                     classification: Mapping[str, Any] | None, out_pdf: str | Path,
                     created: datetime.datetime | None = None) -> Path:
    """Write the report of an already loaded input (see :func:`report_figure`) atomically.

    The PDF goes to a temporary file in the output folder and is renamed to ``out_pdf`` when
    complete; on any failure (or Ctrl-C) the temporary file is removed.

    Raises
    ------
    OutputError
        The output cannot be written.
    """
    import matplotlib

    out = check_output_path(out_pdf)
    created = created or datetime.datetime.now().astimezone()
    # TrueType fonts in the PDF: text that can be searched and copied
    with matplotlib.rc_context({"pdf.fonttype": 42}):
        fig = report_figure(item, analysis, classification, created)
        metadata = {"Title": f"ECG report: {Path(item.source).name}",
                    "Author": f"ecglens {__version__}", "Creator": f"ecglens {__version__}",
                    "Subject": DISCLAIMER, "CreationDate": created}
        with _atomic_path(out) as tmp:
            fig.savefig(tmp, format="pdf", metadata=metadata)
    log.info("wrote %s", out)
    return out


@contextlib.contextmanager
def _atomic_path(out: Path) -> Iterator[Path]:
    """A temporary path next to ``out``; renamed to ``out`` if the block completes."""
    try:
        fd, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    except OSError as exc:
        raise OutputError(f"cannot write ({exc.strerror or exc})", out) from exc
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, REPORT_FILE_MODE)
        os.replace(tmp, out)
    except OSError as exc:
        raise OutputError(f"cannot write ({exc.strerror or exc})", out) from exc
    finally:
        tmp.unlink(missing_ok=True)


# ================================================================= the page
def report_figure(item: LoadedInput, analysis: AnalysisReport | Mapping[str, Any],
                  classification: Mapping[str, Any] | None,
                  created: datetime.datetime | None = None) -> Figure:
    """The report page as a matplotlib figure, A4 landscape, 1 data unit = 1 mm on paper.

    Parameters
    ----------
    item
        The loaded record (:class:`ecglens.app.inputs.LoadedInput`), with its digitizer
        result for a paper input.
    analysis
        :class:`ecglens.analysis.report.AnalysisReport` or its ``to_dict()``.
    classification
        What :func:`ecglens.classify.report.classify_one` returned, or None (not run).
    created
        Date printed on the page (default: now).
    """
    import matplotlib

    report = analysis.to_dict() if hasattr(analysis, "to_dict") else dict(analysis)
    created = created or datetime.datetime.now().astimezone()
    with matplotlib.rc_context({"font.family": FONT_FAMILY}):  # the font text is wrapped for
        return _page(item, report, classification, created)


def _page(item: LoadedInput, report: Mapping[str, Any],
          classification: Mapping[str, Any] | None, created: datetime.datetime) -> Figure:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(PAGE_W_MM / MM_PER_INCH, PAGE_H_MM / MM_PER_INCH))
    page = fig.add_axes((0.0, 0.0, 1.0, 1.0), label="page")
    page.set_xlim(0, PAGE_W_MM)
    page.set_ylim(0, PAGE_H_MM)
    page.set_axis_off()
    reason = _not_assessable(report)
    cls_reason = reason or (_not_assessable(classification) if classification else None)

    _draw_header(page, item, report, reason)
    record, unit = record_in_mv(item.record)
    draw_ecg_grid(fig, record)
    _draw_caption(page, record, unit)
    x = MARGIN_MM
    cols = []
    for width in COLUMN_W_MM:
        cols.append(_Column(page, x, PANEL_TOP_MM, width, PANEL_BOTTOM_MM))
        x += width + COLUMN_GAP_MM
    _draw_st(cols[0], report, reason)
    _draw_rules(cols[1], report, reason)
    _draw_classification(cols[2], classification, cls_reason)
    roomiest = max(cols[:3], key=lambda c: (c.y - c.bottom) * c.width)
    _draw_warnings(roomiest, report, reason, item, classification)
    _draw_input(fig, cols[3], item)
    _draw_footer(page, item, report, classification, created)
    return fig


def record_in_mv(record: ECGRecord) -> tuple[ECGRecord, str]:
    """The record in mV as the analysis measured it, and the unit it was read in.

    The measurability gate (:func:`ecglens.core.gate.assess_measurability`) reads a record
    whose amplitudes are in µV, nV or V in that unit and converts it; the grid shows the same
    millivolts. Otherwise the record is returned as it is.
    """
    from ecglens.core.gate import assess_measurability

    gate = assess_measurability(record, "analysis")
    if gate.unit != "mV":
        return gate.record, gate.unit
    return record, "mV"


def _not_assessable(result: Mapping[str, Any] | None) -> str | None:
    """The "not assessable" reason of an analysis or classification dict, or None.

    Reads ``measurable``/``assessable`` False with ``cannot_measure``/``not_assessable``/
    ``reason``; a classification without probabilities is not assessable either.
    """
    if not result:
        return None
    flagged = result.get("measurable") is False or result.get("assessable") is False
    text = result.get("not_assessable")
    if isinstance(text, str) and text.strip():
        return text.strip()
    if flagged:
        for key in ("cannot_measure", "reason", "statement"):
            value = result.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
        return "no reason given"
    if "probabilities" in result and not result["probabilities"]:
        return str(result.get("reason") or "no class probabilities")
    return None


def _not_assessable_text(reason: str) -> str:
    low = reason.lower()
    return reason if low.startswith("not assessable") else f"Not assessable: {reason}"


# ---------------------------------------------------------------- ECG grid and traces
def draw_ecg_grid(fig: Figure, record: ECGRecord) -> Axes:
    """Axes of ECG paper on ``fig`` (an A4-landscape figure), in mm, with the record's leads.

    The axes spans :data:`GRID_W_MM` x :data:`GRID_H_MM` of the page, and its data limits are
    the same numbers, so 1 data unit is 1 mm on paper. Every row starts with a 1-mV pulse;
    each lead of the 3x4 cells is centred on its median (no filtering); NaN stays a gap.
    """
    from matplotlib.collections import LineCollection

    ax = fig.add_axes((GRID_X_MM / PAGE_W_MM, GRID_Y_MM / PAGE_H_MM,
                       GRID_W_MM / PAGE_W_MM, GRID_H_MM / PAGE_H_MM), label=GRID_AXES_LABEL)
    ax.set_xlim(0.0, GRID_W_MM)
    ax.set_ylim(0.0, GRID_H_MM)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_facecolor("white")
    for spine in ax.spines.values():
        spine.set_edgecolor(MAJOR_COLOUR)
        spine.set_linewidth(MAJOR_LW_PT)
    for step, colour, width, z in ((MINOR_MM, MINOR_COLOUR, MINOR_LW_PT, 0.5),
                                   (MAJOR_MM, MAJOR_COLOUR, MAJOR_LW_PT, 0.6)):
        xs = np.arange(0.0, GRID_W_MM + 1e-6, step)
        ys = np.arange(0.0, GRID_H_MM + 1e-6, step)
        if step == MINOR_MM:   # minor lines only where no major line is
            xs = xs[np.abs(xs / MAJOR_MM - np.round(xs / MAJOR_MM)) > 1e-6]
            ys = ys[np.abs(ys / MAJOR_MM - np.round(ys / MAJOR_MM)) > 1e-6]
        segs = [((x, 0.0), (x, GRID_H_MM)) for x in xs] + [((0.0, y), (GRID_W_MM, y)) for y in ys]
        ax.add_collection(LineCollection(segs, colors=colour, linewidths=width, zorder=z))

    rec = record.standard12()
    layout = LAYOUTS[LAYOUT_NAME]
    n_page = min(rec.n_samples, round(STRIP_S * rec.fs))
    pulse_w = CAL_PULSE_S * SPEED_MM_S
    pulse_h = CAL_PULSE_MV * GAIN_MM_MV
    for row in range(layout.n_rows):
        base = GRID_H_MM - row * ROW_MM - BASELINE_BELOW_ROW_TOP_MM
        x0 = CAL_PULSE_X_MM
        ax.plot([0.5, x0, x0, x0 + pulse_w, x0 + pulse_w, CAL_LEAD_IN_MM - 0.5],
                [base, base, base + pulse_h, base + pulse_h, base, base],
                color=TRACE_COLOUR, lw=TRACE_LW_PT, solid_joinstyle="miter", zorder=3)
        for cell in layout.row_cells(row):
            i0 = round(cell.t0 * STRIP_S * rec.fs)
            i1 = min(n_page, round(cell.t1 * STRIP_S * rec.fs))
            x_start = CAL_LEAD_IN_MM + cell.t0 * STRIP_S * SPEED_MM_S
            values = rec.lead(cell.lead)[i0:i1] if i1 > i0 else np.empty(0)
            finite = np.isfinite(values)
            if finite.any():
                centre = float(np.median(values[finite]))
                t_s = np.arange(i0, i0 + len(values)) / rec.fs
                ax.plot(CAL_LEAD_IN_MM + t_s * SPEED_MM_S,
                        base + (values - centre) * GAIN_MM_MV,
                        color=TRACE_COLOUR, lw=TRACE_LW_PT, solid_joinstyle="round",
                        solid_capstyle="round", zorder=3)
            else:
                ax.text(x_start + 0.5 * (cell.t1 - cell.t0) * STRIP_S * SPEED_MM_S, base + 1.0,
                        "no signal", ha="center", va="bottom", fontsize=FONT_PT,
                        color=MUTED_COLOUR, style="italic", zorder=4)
            if cell.t0 > 0:
                ax.plot([x_start, x_start], [base - SEPARATOR_MM, base + SEPARATOR_MM],
                        color=TRACE_COLOUR, lw=TRACE_LW_PT, zorder=3)
            ax.text(x_start + 1.5, base + ROW_MM - BASELINE_BELOW_ROW_TOP_MM - 1.5, cell.lead,
                    ha="left", va="top", fontsize=8, fontweight="bold", color=TEXT_COLOUR,
                    zorder=4, bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none",
                                    "alpha": 0.7})
    return ax


def _draw_caption(page: Axes, record: ECGRecord, unit: str = "mV") -> None:
    y = GRID_Y_MM - CAPTION_GAP_MM
    shown = min(record.duration_s, STRIP_S)
    converted = "" if unit == "mV" else f" · amplitudes read as {unit}, shown in mV"
    page.text(GRID_X_MM, y,
              f"{SPEED_MM_S:g} mm/s · {GAIN_MM_MV:g} mm/mV · grid 1 mm / 5 mm · "
              f"{CAL_PULSE_MV:g} mV calibration pulse · traces as read (unfiltered; each lead "
              "centred on its median); gaps: not printed or not read",
              ha="left", va="top", fontsize=FONT_PT, color=MUTED_COLOUR)
    page.text(GRID_X_MM + GRID_W_MM, y,
              f"{shown:.1f} s of {record.duration_s:.1f} s · {record.fs:g} Hz{converted}",
              ha="right", va="top", fontsize=FONT_PT, color=MUTED_COLOUR)


# ---------------------------------------------------------------- text
@functools.lru_cache(maxsize=4096)
def _width_mm(text: str, size_pt: float, bold: bool = False) -> float:
    """Width of ``text`` set in the report's font, in mm."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import text_to_path

    prop = FontProperties(family=FONT_FAMILY, size=size_pt,
                          weight="bold" if bold else "normal")
    width_pt = text_to_path.get_text_width_height_descent(text, prop, ismath=False)[0]
    return float(width_pt) * PT_MM


def _wrap(text: str, width_mm: float, size_pt: float, bold: bool = False) -> list[str]:
    """Greedy word wrap to ``width_mm`` with the font's real glyph widths; a word wider than
    the line is cut."""
    space = _width_mm(" ", size_pt, bold)
    lines: list[str] = []
    line: list[str] = []
    used = 0.0
    for word in text.split():
        w = _width_mm(word, size_pt, bold)
        while w > width_mm:      # a path or a long token: cut it
            cut = len(word)
            while cut > 1 and _width_mm(word[:cut], size_pt, bold) > width_mm:
                cut -= 1
            if line:
                lines.append(" ".join(line))
                line, used = [], 0.0
            lines.append(word[:cut])
            word = word[cut:]
            w = _width_mm(word, size_pt, bold)
        if line and used + space + w > width_mm:
            lines.append(" ".join(line))
            line, used = [], 0.0
        used += (space if line else 0.0) + w
        line.append(word)
    if line:
        lines.append(" ".join(line))
    return lines or [""]


def _line_mm(size_pt: float) -> float:
    return size_pt * PT_MM * LINE_SPACING


class _Column:
    """Text written top-down in a box of the page (mm); what does not fit ends in '…'."""

    def __init__(self, ax: Axes, x: float, top: float, width: float, bottom: float) -> None:
        self.ax, self.x, self.y, self.width, self.bottom = ax, x, top, width, bottom
        self.full = False

    def write(self, text: str, size: float = FONT_PT, bold: bool = False,
              colour: str = TEXT_COLOUR, indent: float = 0.0, gap: float = 0.0) -> bool:
        """Wrap and write a paragraph; False once the box is full."""
        for line in _wrap(text, self.width - indent, size, bold):
            if not self._line(line, size, bold, colour, indent):
                return False
        self.y -= gap
        return True

    def heading(self, text: str) -> bool:
        """A bold section heading."""
        self.y -= 0.6
        return self.write(text, HEADING_PT, bold=True, gap=0.3)

    def cells(self, cells: Sequence[tuple[float, str]], size: float = FONT_PT,
              bold: bool = False, colour: str = TEXT_COLOUR,
              align: Sequence[str] | None = None) -> bool:
        """One table row: (x offset in mm, text) per cell; ``align`` per cell (left/right)."""
        h = _line_mm(size)
        if not self._room(h):
            return False
        for k, (dx, text) in enumerate(cells):
            ha = align[k] if align else "left"
            self.ax.text(self.x + dx, self.y, text, ha=ha, va="top", fontsize=size,
                         fontweight="bold" if bold else "normal", color=colour)
        self.y -= h
        return True

    def _room(self, h: float) -> bool:
        if self.full:
            return False
        if self.y - 2 * h < self.bottom:
            self.ax.text(self.x, self.y, "… (more: ecglens analyze / classify)", ha="left",
                         va="top", fontsize=FONT_PT, color=MUTED_COLOUR, style="italic")
            self.full = True
            log.debug("report column at x=%.0f mm is full", self.x)
            return False
        return True

    def _line(self, line: str, size: float, bold: bool, colour: str, indent: float) -> bool:
        h = _line_mm(size)
        if not self._room(h):
            return False
        self.ax.text(self.x + indent, self.y, line, ha="left", va="top", fontsize=size,
                     fontweight="bold" if bold else "normal", color=colour)
        self.y -= h
        return True


def _num(value: Any, unit: str = "", fmt: str = "{:.0f}") -> str:
    """A number for the page ("n/a" for None/NaN; never "-0")."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    text = fmt.format(value)
    if text.lstrip("+-").strip("0.") == "" and text[:1] == "-":
        text = fmt.format(0.0)
    return text + (f" {unit}" if unit else "")


def _draw_header(page: Axes, item: LoadedInput, report: Mapping[str, Any],
                 reason: str | None) -> None:
    top = PAGE_H_MM - MARGIN_MM
    page.text(MARGIN_MM, top, "12-lead ECG report", ha="left", va="top", fontsize=12,
              fontweight="bold")
    patient = report.get("patient") or {}
    sex = {"M": "male", "F": "female"}.get(patient.get("sex") or "", "sex not given")
    age = patient.get("age")
    age_text = "age not given" if age is None else f"age {age:g} y"
    where = Path(item.source).name + (f", page {item.page} of {item.n_pages}"
                                      if item.page is not None else "")
    page.text(PAGE_W_MM - MARGIN_MM, top, f"{where}   ·   Patient: {sex}, {age_text}",
              ha="right", va="top", fontsize=8.5)
    y = top - 6.0
    width = PAGE_W_MM - 2 * MARGIN_MM
    if reason is not None:
        page.text(MARGIN_MM, y, _not_assessable_text(reason), ha="left", va="top", fontsize=10,
                  fontweight="bold", color=ALERT_COLOUR)
    else:
        iv = report.get("intervals") or {}
        parts = [f"HR {_num(iv.get('hr_bpm'), 'bpm')}", f"PR {_num(iv.get('pr_ms'), 'ms')}",
                 f"QRS {_num(iv.get('qrs_ms'), 'ms')}", f"QT {_num(iv.get('qt_ms'), 'ms')}",
                 f"QTc {_num(iv.get('qtc_bazett_ms'), 'ms')} (Bazett), "
                 f"{_num(iv.get('qtc_fridericia_ms'), 'ms')} (Fridericia)",
                 f"Axis {_num(iv.get('axis_deg'), '', '{:.0f}°')}".rstrip()]
        page.text(MARGIN_MM, y, "     ".join(parts), ha="left", va="top", fontsize=10,
                  fontweight="bold")
    y -= 5.0
    size, lines, _ = _fit_statement(_statement(report), width)
    stemi = report.get("stemi") or {}
    detected = stemi.get("detected")
    colour = ALERT_COLOUR if detected else TEXT_COLOUR if detected is False else MUTED_COLOUR
    for line in lines:
        page.text(MARGIN_MM, y, line, ha="left", va="top", fontsize=size, fontweight="bold",
                  color=colour)
        y -= _line_mm(size)


def _statement(report: Mapping[str, Any]) -> str:
    statement = str((report.get("stemi") or {}).get("statement") or "No STEMI statement.")
    return statement if "stemi" in statement.lower() else f"STEMI: {statement}"


def _fit_statement(statement: str, width: float) -> tuple[float, list[str], bool]:
    """The largest font size at which the statement fits the header, its lines, and whether
    it had to be cut (then it is given in full under "STEMI rules")."""
    for size, max_lines in STATEMENT_FITS:
        lines = _wrap(statement, width, size, bold=True)
        if len(lines) <= max_lines:
            return size, lines, False
    suffix = " … (in full below)"
    lines = _wrap(statement, width - _width_mm(suffix, size, bold=True), size, bold=True)
    return size, [*lines[:max_lines - 1], lines[max_lines - 1] + suffix], True


def _draw_st(col: _Column, report: Mapping[str, Any], reason: str | None) -> None:
    col.heading("ST level vs PR segment (mV)")
    if reason is not None:
        col.write(_not_assessable_text(reason) + ". No ST measurement.", colour=ALERT_COLOUR)
        return
    levels = {lv["lead"]: lv for lv in report.get("st") or []}
    stemi_leads = set((report.get("stemi") or {}).get("leads") or [])
    half = col.width / 2.0
    header = [(0.0, "lead"), (15.0, "J"), (27.0, "J+60")]
    align = ["left", "right", "right"]
    col.cells([*header, *[(half + dx, t) for dx, t in header]], bold=True,
              align=align + align)
    limb, chest = ("I", "II", "III", "aVR", "aVL", "aVF"), ("V1", "V2", "V3", "V4", "V5", "V6")
    for left, right in zip(limb, chest, strict=True):
        cells: list[tuple[float, str]] = []
        for off, lead in ((0.0, left), (half, right)):
            lv = levels.get(lead) or {}
            mark = " ▲" if lead in stemi_leads else ""
            cells += [(off, lead + mark), (off + 15.0, _num(lv.get("st_j_mv"), "", "{:+.2f}")),
                      (off + 27.0, _num(lv.get("st_j60_mv"), "", "{:+.2f}"))]
        col.cells(cells, align=align + align)
    unmeasured: dict[str, list[str]] = {}
    for lead, lv in levels.items():
        if lv.get("st_j_mv") is None and lv.get("reason"):
            unmeasured.setdefault(str(lv["reason"]), []).append(lead)
    if stemi_leads:
        col.write("▲ lead carries the STEMI criteria", colour=ALERT_COLOUR)
    for why, leads in unmeasured.items():
        col.write(f"n/a in {', '.join(leads)}: {why}", colour=MUTED_COLOUR)
    col.write(f"0.1 mV = 1 mm · median beat of {report.get('n_beats')} beats",
              colour=MUTED_COLOUR)


def _draw_rules(col: _Column, report: Mapping[str, Any], reason: str | None) -> None:
    col.heading("STEMI rules")
    rules = report.get("rules") or []
    stemi = report.get("stemi") or {}
    statement = _statement(report)
    if _fit_statement(statement, PAGE_W_MM - 2 * MARGIN_MM)[2]:
        col.write(statement, bold=True, gap=0.5)
    if reason is not None:
        col.write(_not_assessable_text(reason) + ". No rule was evaluated.", colour=ALERT_COLOUR)
    else:
        fired = [r for r in rules if r.get("fired") is True]
        if not fired:
            col.write("No rule fired.", bold=True)
        for rule in fired:
            col.write(f"▲ FIRED  {rule.get('rule')}: {rule.get('detail')}", colour=ALERT_COLOUR,
                      gap=0.3)
        for key, title in (("equivalents", "STEMI equivalents"), ("confounders", "Confounders")):
            if stemi.get(key):
                col.write(f"{title}: " + "; ".join(map(str, stemi[key])) + ".", gap=0.3)
        not_fired = [str(r.get("rule")) for r in rules if r.get("fired") is False]
        n_a = [str(r.get("rule")) for r in rules if r.get("fired") is None]
        if not_fired:
            col.write("Not fired: " + "; ".join(not_fired) + ".", gap=0.3)
        if n_a:
            col.write("Not applicable: " + "; ".join(n_a) + ".", colour=MUTED_COLOUR, gap=0.3)
        for note in stemi.get("notes") or []:
            col.write(f"Note: {note}", colour=MUTED_COLOUR, gap=0.3)


def _draw_warnings(col: _Column, report: Mapping[str, Any], reason: str | None,
                   item: LoadedInput, classification: Mapping[str, Any] | None) -> None:
    """The analysis's, the digitizer's and the classifier's warnings (each once)."""
    warnings = [str(w) for w in report.get("warnings") or []]
    if item.digitized is not None:
        warnings += [f"reading the page: {w}" for w in item.digitized.warnings]
    if classification and reason is None:
        warnings += [f"classification: {w}" for w in classification.get("warnings") or []
                     if str(w) not in warnings]
    col.heading("Warnings")
    if not warnings:
        col.write("None.")
    for warning in warnings:
        if not col.write(f"• {warning}", gap=0.2):
            break


def _draw_classification(col: _Column, classification: Mapping[str, Any] | None,
                         reason: str | None) -> None:
    col.heading("Classification")
    if reason is not None:
        col.write(_not_assessable_text(reason) + ". No classification.", colour=ALERT_COLOUR)
        return
    if not classification:
        col.write("Not run.", colour=MUTED_COLOUR)
        return
    probs = classification.get("probabilities") or {}
    thresholds = classification.get("thresholds") or {}
    positive = set(classification.get("positive") or [])
    classes = classification.get("classes") or list(probs)
    align = ["left", "right", "right", "left"]
    columns = (0.0, 23.0, 38.5, 41.0)
    col.cells(list(zip(columns, ("class", "probability", "threshold", "decision"),
                       strict=True)), bold=True, align=align)
    for c in classes:
        pos = c in positive
        texts = (c, _num(probs.get(c), "", "{:.3f}"), _num(thresholds.get(c), "", "{:.3f}"),
                 "POSITIVE" if pos else "negative")
        col.cells(list(zip(columns, texts, strict=True)), bold=pos,
                  colour=ALERT_COLOUR if pos else TEXT_COLOUR, align=align)
    col.y -= 0.8
    col.write(" · ".join(f"{c} {CLASS_NAMES[c]}" for c in classes if c in CLASS_NAMES) + ".",
              colour=MUTED_COLOUR, gap=0.5)
    beats = classification.get("beats")
    if isinstance(beats, Mapping) and beats.get("counts"):
        counts = ", ".join(f"{k} {v}" for k, v in beats["counts"].items() if v) or "none"
        duration = _num(beats.get("duration_s"), "s", "{:.1f}")
        col.write(f"Beats in lead {beats.get('lead')} ({duration}): {counts} (AAMI classes "
                  "N/S/V/F/Q).", gap=0.5)
    col.write(f"Model {classification.get('model_version', 'n/a')}; thresholds: max F1 on "
              "PTB-XL fold 9.", colour=MUTED_COLOUR)


def _draw_input(fig: Figure, col: _Column, item: LoadedInput) -> None:
    col.heading("Input page and what was read" if item.digitized is not None else "Input")
    if item.digitized is None:
        rec = item.record
        leads = ", ".join(name for name in rec.leads if rec.has_lead(name)) or "none"
        col.write(f"Signal record (not a paper page): {rec.fs:g} Hz, {rec.duration_s:.1f} s, "
                  f"leads {leads}.")
        col.write("The grid above re-plots the record at standard scale.", colour=MUTED_COLOUR)
        return
    try:
        image = _thumbnail(item.digitized.overlay_image())
    except Exception as exc:   # the picture is an aid: its failure must not sink the report
        log.warning("%s: overlay not drawn: %s", item.source, exc)
        col.write(f"Overlay not drawn: {exc}", colour=MUTED_COLOUR)
        return
    caption = ("Blue: traces read · green: 0 mV lines · purple: lead boxes · orange: "
               "calibration pulses · red: not read.")
    n_caption = len(_wrap(caption, col.width, FONT_PT))
    h_px, w_px = image.shape[:2]
    avail_h = col.y - col.bottom - (n_caption + 1.5) * _line_mm(FONT_PT)
    w = min(col.width, avail_h * w_px / h_px)
    h = w * h_px / w_px
    ax = fig.add_axes((col.x / PAGE_W_MM, (col.y - h) / PAGE_H_MM, w / PAGE_W_MM,
                       h / PAGE_H_MM), label="input-page")
    ax.imshow(image, interpolation="antialiased")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_linewidth(0.4)
        spine.set_edgecolor(MUTED_COLOUR)
    col.y -= h + 0.8
    col.write(caption, colour=MUTED_COLOUR)


def _thumbnail(image: np.ndarray) -> np.ndarray:
    from PIL import Image

    arr = np.asarray(image)
    if arr.shape[1] <= THUMB_MAX_PX:
        return arr
    h = round(arr.shape[0] * THUMB_MAX_PX / arr.shape[1])
    return np.asarray(Image.fromarray(arr).resize((THUMB_MAX_PX, h), Image.Resampling.LANCZOS))


def _draw_footer(page: Axes, item: LoadedInput, report: Mapping[str, Any],
                 classification: Mapping[str, Any] | None, created: datetime.datetime) -> None:
    rec = item.record
    parts = [f"File: {item.source}"]
    parts.append(f"page {item.page} of {item.n_pages}" if item.page is not None
                 else "signal record")
    dig = item.digitized
    if dig is not None:
        cal = dig.calibration
        parts += [f"layout {dig.layout.name} (read)",
                  f"gain {cal.gain_mm_mv:g} mm/mV, speed {cal.speed_mm_s:g} mm/s "
                  f"(from {cal.source})"]
    else:
        parts += [f"layout {rec.provenance.get('layout') or 'n/a (signal record)'}",
                  "gain/speed n/a (signal in mV)"]
    parts.append(f"record {rec.fs:g} Hz, {rec.duration_s:.1f} s")
    versions = f"ecglens {__version__}"
    if classification and classification.get("model_version"):
        versions += f", model {classification['model_version']}"
    parts += [versions, f"report {created.isoformat(timespec='minutes')}"]
    text = "Provenance: " + " · ".join(parts) + "."
    if report.get("filter"):
        text += f" Measurements: {report['filter']}."
    y = MARGIN_MM + FOOTER_H_MM - 1.0
    for line in _wrap(text, PAGE_W_MM - 2 * MARGIN_MM, FONT_PT)[:3]:
        page.text(MARGIN_MM, y, line, ha="left", va="top", fontsize=FONT_PT, color=MUTED_COLOUR)
        y -= _line_mm(FONT_PT)
    page.text(PAGE_W_MM / 2, MARGIN_MM + 1.5, DISCLAIMER,
              ha="center", va="bottom", fontsize=9, fontweight="bold", color=TEXT_COLOUR,
              bbox={"boxstyle": "round,pad=0.4", "fc": "#fff4cc", "ec": "#b08800", "lw": 0.6})


__all__ = ["CLASS_NAMES", "GRID_AXES_LABEL", "GRID_H_MM", "GRID_W_MM", "PAGE_H_MM", "PAGE_W_MM",
           "build_report_pdf", "check_output_path", "draw_ecg_grid", "load_one_page",
           "record_in_mv", "report_figure", "write_report_pdf"]
