"""``ecglens report``: a one-page A4 PDF at true scale, with the disclaimer and the STEMI
statement, "not assessable" without findings, one-line errors and an atomic write."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.lines import Line2D

from ecglens.analysis.report import analyze_record
from ecglens.app import report as rp
from ecglens.app.inputs import LoadedInput, iter_inputs
from ecglens.cli import main
from ecglens.core import DISCLAIMER
from ecglens.core.errors import InputError
from ecglens.core.io import read_record, write_wfdb
from ecglens.core.record import STANDARD_LEADS, ECGRecord

REPO = Path(__file__).resolve().parents[1]
SAMPLE_PAGE = REPO / "samples" / "ptbxl_00001_scan.jpg"
PTBXL_500 = Path("ptbxl") / "records500" / "00000" / "00001_hr.hea"
A4_LANDSCAPE_PT = (841.89, 595.28)
FINDING_WORDS = ("POSITIVE", "negative", "bpm", "FIRED", "No rule fired", "probability",
                 "criteria not met", "criteria met", "QTc")
"""Words of a finding: none may appear on the report of a record that is not assessable."""


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        message = f"{name} is not installed (poppler-utils)"
        if os.environ.get("ECGLENS_REQUIRE_DATA", "") not in ("", "0"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def _pdf_info(path: Path) -> dict[str, str]:
    out = subprocess.run([_tool("pdfinfo"), str(path)], capture_output=True, text=True,
                         check=True).stdout
    return {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in out.splitlines()
                                               if ":" in line)}


def _pdf_text(path: Path, layout: bool = False) -> str:
    """The PDF's text with every run of white space made one space (``layout``: line by line
    across the page, so that a table row stays together)."""
    args = [_tool("pdftotext"), *(["-layout"] if layout else []), str(path), "-"]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return " ".join(out.split())


def _squash(text: str) -> str:
    return " ".join(text.split())


def _assert_one_page_a4(path: Path) -> None:
    info = _pdf_info(path)
    assert info["Pages"] == "1"
    w, h = (float(v) for v in re.findall(r"[\d.]+", info["Page size"])[:2])
    assert (w, h) == pytest.approx(A4_LANDSCAPE_PT, abs=0.5)


def _xy(line: Line2D) -> tuple[np.ndarray, np.ndarray]:
    """A matplotlib line's data as float arrays."""
    return np.asarray(line.get_xdata(), dtype=float), np.asarray(line.get_ydata(), dtype=float)


def _strip(ax: Axes) -> tuple[np.ndarray, np.ndarray]:
    """The longest line of the grid: the lead II rhythm strip."""
    return max((_xy(ln) for ln in ax.get_lines()), key=lambda xy: len(xy[0]))


def _synthetic_record(fs: float = 500.0, seconds: float = 10.0) -> ECGRecord:
    """12 leads of a 1-Hz sine of 1 mV amplitude (2 mV peak to peak)."""
    t = np.arange(round(fs * seconds)) / fs
    sig = np.repeat(np.sin(2 * np.pi * t)[:, None], 12, axis=1)
    return ECGRecord(sig, fs, STANDARD_LEADS)


# ------------------------------------------------------------------ the command
def test_report_of_a_wfdb_record(shared_data: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    record_path = shared_data / PTBXL_500
    out = tmp_path / "report.pdf"
    assert main(["report", str(record_path), "-o", str(out), "--sex", "M", "--age", "56"]) == 0
    assert str(out) in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.pdf"]   # no temp file left
    _assert_one_page_a4(out)
    text = _pdf_text(out)
    expected = analyze_record(read_record(record_path), sex="M", age=56)
    assert expected.measurable and expected.stemi is not None
    assert _squash(expected.stemi.statement) in text
    assert DISCLAIMER in text
    assert "Patient: male, age 56 y" in text
    for lead in STANDARD_LEADS:
        assert re.search(rf"(^| ){re.escape(lead)}( |$)", text), lead
    assert re.search(r"HR \d+ bpm", text) and "QTc" in text
    rows = _pdf_text(out, layout=True)
    for cls in ("NORM", "MI", "STTC", "CD", "HYP"):
        assert re.search(rf"{cls} [01]\.\d{{3}} [01]\.\d{{3}} (POSITIVE|negative)", rows), cls
    assert "ecglens 0.1.0" in text and "00001_hr.hea" in text


def test_report_of_the_sample_page(tmp_path: Path) -> None:
    out = tmp_path / "page.pdf"
    assert main(["report", str(SAMPLE_PAGE), "-o", str(out), "--page", "1"]) == 0
    _assert_one_page_a4(out)
    text = _pdf_text(out)
    item = next(iter_inputs(SAMPLE_PAGE))
    expected = analyze_record(item.record)
    assert expected.stemi is not None
    assert _squash(expected.stemi.statement) in text
    assert DISCLAIMER in text
    assert "Input page and what was read" in text
    assert "layout 3x4+1 (read)" in text and "gain 10 mm/mV, speed 25 mm/s" in text
    assert b"/Subtype /Image" in out.read_bytes()           # the overlay thumbnail


def test_flat_record_is_not_assessable_and_has_no_finding(tmp_path: Path) -> None:
    flat = ECGRecord(np.zeros((5000, 12)), 500.0, STANDARD_LEADS)
    header = write_wfdb(flat, tmp_path / "flat")
    out = tmp_path / "flat.pdf"
    assert main(["report", str(header), "-o", str(out)]) == 0
    _assert_one_page_a4(out)
    text = _pdf_text(out)
    reason = analyze_record(flat).cannot_measure
    assert reason
    assert "not assessable" in text.lower() and reason.lower() in text.lower()
    assert DISCLAIMER in text
    for word in FINDING_WORDS:
        assert word not in text, word


@pytest.mark.parametrize("kind", ["missing", "garbage_header", "not_an_image"])
def test_bad_input_is_one_line_exit_1(kind: str, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    path = {"missing": tmp_path / "nothing.hea", "garbage_header": tmp_path / "bad.hea",
            "not_an_image": tmp_path / "text.png"}[kind]
    if kind != "missing":
        path.write_text("this is not an ECG\n")
    out = tmp_path / "r.pdf"
    assert main(["report", str(path), "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"ecglens: error: {path}: "), err
    assert not out.exists()


def test_bad_output_is_one_line_exit_1(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    header = write_wfdb(_synthetic_record(), tmp_path / "rec")
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    for out, says in ((tmp_path, "is a folder"), (tmp_path / "no" / "r.pdf", "does not exist"),
                      (blocker / "r.pdf", "is not a folder")):
        assert main(["report", str(header), "-o", str(out)]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith(f"ecglens: error: {out}: "), err
        assert says in err


def test_multi_page_input_needs_page(tmp_path: Path) -> None:
    from PIL import Image

    path = tmp_path / "two.tif"
    frames = [Image.new("RGB", (64, 48), "white"), Image.new("RGB", (64, 48), "white")]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with pytest.raises(InputError, match=r"2 pages.*--page"):
        rp.build_report_pdf(path, tmp_path / "r.pdf")


# ------------------------------------------------------------------ the page
def test_grid_is_at_true_physical_scale() -> None:
    fig = rp.report_figure(LoadedInput(_synthetic_record(), "sine.csv", None, 1),
                           {"measurable": True, "st": [], "rules": []}, None)
    assert (fig.get_figwidth() * 25.4, fig.get_figheight() * 25.4) == pytest.approx((297, 210))
    ax = next(a for a in fig.axes if a.get_label() == rp.GRID_AXES_LABEL)
    box = ax.get_position()
    assert box.width * 297 == pytest.approx(260.0) and box.height * 210 == pytest.approx(100.0)
    assert ax.get_xlim() == pytest.approx((0, 260)) and ax.get_ylim() == pytest.approx((0, 100))
    ppmm = fig.dpi / 25.4                                 # display pixels per mm on paper
    (x0, y0), (x1, y1) = ax.transData.transform([(0.0, 0.0), (50.0, 20.0)])
    assert (x1 - x0) / ppmm == pytest.approx(50.0) and (y1 - y0) / ppmm == pytest.approx(20.0)
    x, y = _strip(ax)                                               # lead II rhythm strip
    assert x[500] - x[0] == pytest.approx(25.0)                     # 1 s = 25 mm
    assert np.nanmax(y) - np.nanmin(y) == pytest.approx(20.0, abs=0.01)   # 2 mV = 20 mm
    pulses = [xy for xy in map(_xy, ax.get_lines()) if len(xy[0]) == 6]
    assert len(pulses) == 4
    for px, py in pulses:
        assert np.ptp(py) == pytest.approx(10.0) and px[3] - px[2] == pytest.approx(5.0)


def test_record_in_microvolts_is_drawn_in_millivolts() -> None:
    """The measurability gate reads µV amplitudes as µV; the grid shows the same mV."""
    rec = _synthetic_record()
    fig = rp.report_figure(LoadedInput(rec.replace(signal=rec.signal * 1000.0), "uv.csv", None,
                                       1), {"measurable": True, "st": [], "rules": []}, None)
    ax = next(a for a in fig.axes if a.get_label() == rp.GRID_AXES_LABEL)
    y = _strip(ax)[1]
    assert np.nanmax(y) - np.nanmin(y) == pytest.approx(20.0, abs=0.01)   # 2 mV = 20 mm
    texts = " ".join(t.get_text() for a in fig.axes for t in a.texts)
    assert "amplitudes read as µV" in texts


def test_nan_gaps_stay_gaps() -> None:
    rec = _synthetic_record()
    sig = rec.signal.copy()
    sig[2000:2600, 1] = np.nan                               # 1.2 s gap in lead II
    sig[:, STANDARD_LEADS.index("V2")] = np.nan              # V2 not read at all
    fig = rp.report_figure(LoadedInput(rec.replace(signal=sig), "gap.csv", None, 1),
                           {"measurable": True, "st": [], "rules": []}, None)
    ax = next(a for a in fig.axes if a.get_label() == rp.GRID_AXES_LABEL)
    y = _strip(ax)[1]
    assert np.isnan(y[2000:2600]).all() and np.isfinite(y[:2000]).all()
    gap_x = (rp.CAL_LEAD_IN_MM + 4.0 * 25.0, rp.CAL_LEAD_IN_MM + 5.2 * 25.0)
    strip_base = rp.GRID_H_MM - 3 * rp.ROW_MM - rp.BASELINE_BELOW_ROW_TOP_MM
    for lx, ly in map(_xy, ax.get_lines()):      # nothing else drawn into the gap of the strip
        inside = (lx > gap_x[0] + 0.1) & (lx < gap_x[1] - 0.1) & (np.abs(ly - strip_base) < 12)
        assert not (inside & np.isfinite(ly)).any()
    texts = [t.get_text() for t in ax.texts]
    assert "no signal" in texts


def test_not_assessable_classification_is_shown_as_it_comes() -> None:
    record = _synthetic_record()
    analysis = {"measurable": True, "st": [], "rules": [],
                "stemi": {"statement": "STEMI criteria not met (high confidence).",
                          "detected": False},
                "intervals": {"hr_bpm": 60.0}}
    gated = {"assessable": False, "reason": "not assessable: noise in every lead",
             "probabilities": {}, "thresholds": {"MI": 0.4}, "positive": [],
             "classes": ["MI"], "warnings": ["no signal in V1"]}
    fig = rp.report_figure(LoadedInput(record, "r.csv", None, 1), analysis, gated)
    texts = " ".join(t.get_text() for ax in fig.axes for t in ax.texts)
    assert "not assessable: noise in every lead. No classification." in texts
    assert "POSITIVE" not in texts and "negative" not in texts and "0.400" not in texts
    assert "HR 60 bpm" in texts                              # the analysis part stays


def test_limb_leads_only_classification_not_assessable(shared_data: Path, tmp_path: Path
                                                       ) -> None:
    """Six leads: the analysis speaks (limb leads), the classifier's gate refuses (≥ 9)."""
    record = read_record(shared_data / PTBXL_500)
    signal = record.signal.copy()
    signal[:, 6:] = np.nan                                   # V1-V6 not recorded
    header = write_wfdb(record.replace(signal=signal), tmp_path / "limb")
    out = tmp_path / "limb.pdf"
    assert main(["report", str(header), "-o", str(out)]) == 0
    text = _pdf_text(out)
    assert "STEMI criteria not met in the 6 leads assessed" in text
    assert "not assessable: only 6 of 12 leads observed" in text
    assert "POSITIVE" not in text and "negative" not in text


def test_failed_write_leaves_no_file_and_keeps_the_old_report(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from matplotlib.figure import Figure

    out = tmp_path / "report.pdf"
    out.write_bytes(b"old report")
    item = LoadedInput(_synthetic_record(), "sine.csv", None, 1)

    def broken_save(self: Figure, fname: str | Path, **kwargs: object) -> None:
        Path(fname).write_bytes(b"%PDF-1.4 half")
        raise KeyboardInterrupt

    monkeypatch.setattr(Figure, "savefig", broken_save)
    with pytest.raises(KeyboardInterrupt):
        rp.write_report_pdf(item, {"measurable": True}, None, out)
    assert out.read_bytes() == b"old report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.pdf"]


def test_report_command_is_registered(capsys: pytest.CaptureFixture[str]) -> None:
    from ecglens.app.report_cli import run_report
    from ecglens.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["report", "in.hea", "-o", "out.pdf", "--sex", "f", "--age", "51",
                              "--page", "2"])
    assert args.func is run_report
    assert (args.input, args.output, args.sex, args.age, args.page) == (
        "in.hea", "out.pdf", "F", 51.0, 2)
    for bad in (["--age", "-3"], ["--page", "0"], []):
        with pytest.raises(SystemExit):                     # argparse: usage error
            parser.parse_args(["report", "in.hea", *bad] + (["-o", "o.pdf"] if bad else []))
    capsys.readouterr()
