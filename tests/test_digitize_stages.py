"""Stage functions of the digitizer on synthetic inputs with known answers."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ecglens.core.layouts import get_layout
from ecglens.digitize.calibration import (
    Pulse,
    decide_calibration,
    find_pulse,
    parse_settings_text,
)
from ecglens.digitize.convert import build_record, einthoven_residual
from ecglens.digitize.labels import normalize_label
from ecglens.digitize.layout_detect import choose_layout
from ecglens.digitize.trace import RowTrace, extract_traces

PPMM = 8.0  # px per mm of the synthetic pages


def _canvas(h_mm: float, w_mm: float) -> np.ndarray:
    return np.zeros((int(h_mm * PPMM), int(w_mm * PPMM)), dtype=np.uint8)


def _draw(mask: np.ndarray, xy_px: np.ndarray, width_px: int = 2) -> None:
    pts = np.round(np.asarray(xy_px) * 16).astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(mask, [pts], False, 255, width_px, cv2.LINE_AA, 4)


def _pulse_xy(x0_mm: float, base_mm: float, gain: float, speed: float) -> np.ndarray:
    w = 0.2 * speed
    pts_mm = [(x0_mm - 2, base_mm), (x0_mm, base_mm), (x0_mm, base_mm - gain),
              (x0_mm + w, base_mm - gain), (x0_mm + w, base_mm), (x0_mm + w + 3, base_mm)]
    return np.array(pts_mm) * PPMM


@pytest.mark.parametrize(("gain", "speed"), [(5, 25), (10, 25), (20, 25), (10, 50), (20, 50)])
def test_pulse_gives_gain_speed_and_zero_line(gain: float, speed: float) -> None:
    mask = _canvas(60, 60)
    base_mm = 45.0
    _draw(mask, _pulse_xy(8, base_mm, gain, speed))
    pulse = find_pulse(mask / 255.0, 0, base_mm * PPMM - 3, (0, 45 * PPMM), PPMM, PPMM,
                       30 * PPMM)
    assert pulse is not None
    assert pulse.gain_mm_mv == gain
    assert pulse.speed_mm_s == speed
    assert abs(pulse.baseline_px - base_mm * PPMM) < 0.6
    assert abs(pulse.height_mm - gain) < 0.3


def _narrow_pulse_xy(x0_mm: float, base_mm: float, gain: float, width_mm: float) -> np.ndarray:
    """A pulse drawn on its own, with no foot lines (as some printers draw it)."""
    pts_mm = [(x0_mm, base_mm), (x0_mm, base_mm - gain), (x0_mm + width_mm, base_mm - gain),
              (x0_mm + width_mm, base_mm)]
    return np.array(pts_mm) * PPMM


@pytest.mark.parametrize("gain", [5, 10, 20])
def test_narrow_pulse_with_no_feet_gives_the_gain_but_no_speed(gain: float) -> None:
    mask = _canvas(60, 60)
    base_mm = 45.0
    _draw(mask, _narrow_pulse_xy(8, base_mm, gain, 3.2))
    # the row's trace starts after a gap and wanders well below its 0 mV line
    x = np.arange(16 * PPMM, 60 * PPMM)
    _draw(mask, np.stack([x, base_mm * PPMM + 12 * np.sin(x / 15.0)], axis=1))
    pulse = find_pulse(mask / 255.0, 0, base_mm * PPMM - 3, (0, 45 * PPMM), PPMM, PPMM,
                       30 * PPMM)
    assert pulse is not None
    assert (pulse.gain_mm_mv, pulse.speed_mm_s) == (gain, None)
    assert abs(pulse.baseline_px - base_mm * PPMM) < 0.6
    cal = decide_calibration([pulse], 1, None)
    assert (cal.gain_mm_mv, cal.speed_mm_s) == (gain, 25.0)
    assert any("give the gain only" in w for w in cal.warnings)
    assert decide_calibration([pulse], 1, parse_settings_text("50 mm/s")).speed_mm_s == 50.0


def test_footless_pulse_beside_a_trace_at_another_level_is_found() -> None:
    # ECG-Image-Kit's layout variants: the pulse has no foot lines, the trace starts beside it
    # at its first sample's level (here 1.5 mm up), a lead name stands under its falling side,
    # and a QRS complex 5 mm on made the falling side and the QRS a footed 50-mm/s "pulse"
    mask = _canvas(60, 60)
    base_mm, level_mm = 45.0, 43.5
    _draw(mask, _narrow_pulse_xy(8, base_mm, 10, 5))
    _draw(mask, np.array([(13, level_mm), (18, level_mm), (18.5, 38), (19, 50), (19.5, level_mm),
                          (60, level_mm)]) * PPMM)
    for x_mm in (12.5, 13.5):   # a label "II" under the pulse's falling side
        _draw(mask, np.array([(x_mm, 47.0), (x_mm, 51.0)]) * PPMM)
    pulse = find_pulse(mask / 255.0, 0, base_mm * PPMM - 3, (0, 45 * PPMM), PPMM, PPMM,
                       30 * PPMM)
    assert pulse is not None
    assert (pulse.gain_mm_mv, pulse.speed_mm_s) == (10.0, 25.0)
    assert abs(pulse.x_left_px - 8 * PPMM) < 1.5 and abs(pulse.x_right_px - 13 * PPMM) < 1.5
    assert abs(pulse.baseline_px - base_mm * PPMM) < 1.0


def test_the_upper_half_of_a_footless_pulse_is_no_pulse_of_half_its_gain() -> None:
    # the trace starts beside the pulse 5 mm up, where a 5-mm/mV pulse's foot would be; both
    # sides run on below that candidate's bottom: the 10-mm/mV pulse is read
    mask = _canvas(60, 60)
    _draw(mask, _narrow_pulse_xy(8, 45.0, 10, 5))
    _draw(mask, np.array([(13, 40.0), (60, 40.0)]) * PPMM)
    pulse = find_pulse(mask / 255.0, 0, 42 * PPMM, (0, 45 * PPMM), PPMM, PPMM, 30 * PPMM)
    assert pulse is not None and pulse.gain_mm_mv == 10.0
    assert abs(pulse.baseline_px - 45 * PPMM) < 1.0


def test_a_pulse_shape_along_the_rows_trace_is_no_pulse() -> None:
    # a row with no pulse: 25 mm of trace, then a square complex 5 mm wide and 10 mm tall
    # (ECG-Image-Kit layout variants without pulses: a QRS 27 mm in was read as the pulse)
    mask = _canvas(60, 70)
    base_mm = 45.0
    trace = [(2.0, base_mm), (27.0, base_mm), (27.0, base_mm - 10), (32.0, base_mm - 10),
             (32.0, base_mm), (70.0, base_mm)]
    _draw(mask, np.array(trace) * PPMM)
    assert find_pulse(mask / 255.0, 0, base_mm * PPMM, (0, 40 * PPMM), PPMM, PPMM,
                      30 * PPMM) is None
    # the same pulse with only a lead name before it is the row's pulse
    mask = _canvas(60, 70)
    _draw(mask, np.array(trace[1:]) * PPMM)
    for x_mm in (23.0, 24.5):
        _draw(mask, np.array([(x_mm, base_mm - 4), (x_mm, base_mm + 1)]) * PPMM)
    pulse = find_pulse(mask / 255.0, 0, base_mm * PPMM, (0, 40 * PPMM), PPMM, PPMM, 30 * PPMM)
    assert pulse is not None and (pulse.gain_mm_mv, pulse.speed_mm_s) == (10.0, 25.0)
    assert abs(pulse.x_left_px - 27 * PPMM) < 1.5


def test_a_label_iii_is_no_narrow_pulse() -> None:
    # three 5-mm strokes 1.5 mm apart: the outer two and the middle one's top looked like a
    # 5-mm/mV pulse 3 mm wide (real scan ecg00007) until the top and the inside were checked
    mask = _canvas(60, 60)
    for x_mm in (8.0, 9.5, 11.0):
        _draw(mask, np.array([(x_mm, 40.0), (x_mm, 45.0)]) * PPMM)
    assert find_pulse(mask / 255.0, 0, 45 * PPMM - 3, (0, 45 * PPMM), PPMM, PPMM,
                      30 * PPMM) is None


def test_overlapping_pulses_of_neighbouring_rows_are_not_doubled() -> None:
    # 12x1 at 20 mm/mV: each 20-mm pulse reaches over the row above (pitch 13 mm)
    mask = _canvas(110, 40)
    bases = [30.0, 43.0, 56.0, 69.0, 82.0]
    for base in bases:
        _draw(mask, _pulse_xy(8, base, 20, 25))
    for k, base in enumerate(bases[1:-1], start=1):
        pulse = find_pulse(mask / 255.0, k, base * PPMM, (0, 35 * PPMM), PPMM, PPMM, 13 * PPMM)
        assert pulse is not None and pulse.gain_mm_mv == 20.0
        assert abs(pulse.baseline_px - base * PPMM) < 0.6


def test_no_pulse_on_a_plain_trace() -> None:
    mask = _canvas(40, 60)
    x = np.arange(0, 60 * PPMM)
    _draw(mask, np.stack([x, 20 * PPMM + 3 * np.sin(x / 9.0)], axis=1))
    assert find_pulse(mask / 255.0, 0, 20 * PPMM, (0, 40 * PPMM), PPMM, PPMM, 30 * PPMM) is None


def test_settings_text_and_disagreement() -> None:
    text = parse_settings_text("25 mm/s   10 mm/mV   0.05-150 Hz")
    assert (text.speed_mm_s, text.gain_mm_mv) == (25.0, 10.0)
    text = parse_settings_text("Speed: 50mm/s Limb: 20mm/mV")
    assert (text.speed_mm_s, text.gain_mm_mv) == (50.0, 20.0)
    assert parse_settings_text("no numbers here").gain_mm_mv is None
    # OCR's letters for digits before "mm" (seed-4 p0236: no pulse found, 10 mm/mV and
    # 25 mm/s assumed for a page printed at 5 mm/mV and 50 mm/s)
    text = parse_settings_text("5@mm/s Smm/mV @@5 15@ Hz")
    assert (text.speed_mm_s, text.gain_mm_mv) == (50.0, 5.0)
    assert text.text == "5@mm/s Smm/mV @@5 15@ Hz"      # what OCR read is kept as read
    assert parse_settings_text("25mm/s 1Omm/mV").gain_mm_mv == 10.0
    assert parse_settings_text("mms mmm . - z").gain_mm_mv is None
    assert parse_settings_text("Smm/s").speed_mm_s is None    # one digit: no paper speed
    # no setting has an 8: OCR's 8 for a 0 (a 150-dpi render's "50mm/s"), and nothing else
    assert parse_settings_text("58mm/s Smm/mV¥ 005 150 Hz").speed_mm_s == 50.0
    assert parse_settings_text("28 mm/s 18 mm/mV").speed_mm_s is None
    assert parse_settings_text("28 mm/s 18 mm/mV").gain_mm_mv == 10.0
    pulses = [Pulse(0, 10, 50, 100, 20.0, 5.0, 20.0, 25.0, 0.9)]
    agree = decide_calibration(pulses, 1, parse_settings_text("25 mm/s 20 mm/mV"))
    clash = decide_calibration(pulses, 1, parse_settings_text("25 mm/s 10 mm/mV"))
    assert agree.gain_mm_mv == clash.gain_mm_mv == 20.0
    assert agree.source == "pulse+text"
    assert clash.confidence < agree.confidence
    assert any("settings line" in w for w in clash.warnings)
    nothing = decide_calibration([], 3, None)
    assert (nothing.gain_mm_mv, nothing.speed_mm_s, nothing.source) == (10.0, 25.0, "default")
    assert nothing.confidence < 0.5


def test_lead_label_normalisation() -> None:
    assert normalize_label("aVR") == "aVR"
    assert normalize_label("AVL") == "aVL"
    assert normalize_label("Vl") == "V1"
    assert normalize_label("ll") == "II"
    assert normalize_label("III") == "III"
    assert normalize_label("-aVR") == "-aVR"
    assert normalize_label("QT/QTc") is None


def _signal_px(x: np.ndarray, base: float, spike_at: float, spike_mm: float) -> np.ndarray:
    """A wave (3 px) plus a narrow spike of ``spike_mm`` at ``spike_at`` (px)."""
    wave = 3.0 * np.sin(x / 25.0)
    spike = spike_mm * PPMM * np.exp(-0.5 * ((x - spike_at) / 3.0) ** 2)
    return base - wave - spike


def test_trace_follows_wave_and_keeps_peak() -> None:
    mask = _canvas(60, 120)
    x = np.arange(20.0, 110 * PPMM, 0.5)
    y = _signal_px(x, 35 * PPMM, 400.0, 15.0)
    _draw(mask, np.stack([x, y], axis=1), 2)
    res = extract_traces(mask / 255.0, [35 * PPMM], [(30, int(105 * PPMM))], PPMM)
    row = res.rows[0]
    truth = np.interp(row.x_px, x, y)
    err = row.y_px - truth
    flat = np.abs(row.x_px - 400) > 25
    assert np.nanmax(np.abs(err[flat])) < 1.0
    # the spike's tip (15 mm = 120 px above the line) is kept within 2 px
    assert abs(np.nanmin(row.y_px) - truth.min()) < 2.0
    assert row.confidence > 0.9


def test_trace_ignores_text_and_neighbouring_row_spike() -> None:
    mask = _canvas(70, 120)
    x = np.arange(20.0, 110 * PPMM, 0.5)
    top = 25 * PPMM + 2.0 * np.sin(x / 30.0)
    # the lower row has a spike that reaches 18 mm up, through the upper row's line
    low = _signal_px(x, 45 * PPMM, 500.0, 22.0)
    _draw(mask, np.stack([x, top], axis=1), 2)
    _draw(mask, np.stack([x, low], axis=1), 2)
    cv2.putText(mask, "aVR", (int(30 * PPMM), int(19 * PPMM)), cv2.FONT_HERSHEY_SIMPLEX, 0.8,
                255, 2, cv2.LINE_AA)
    res = extract_traces(mask / 255.0, [25 * PPMM, 45 * PPMM], [(30, int(105 * PPMM))] * 2,
                         PPMM)
    upper, lower = res.rows
    truth_upper = np.interp(upper.x_px, x, top)
    assert np.nanmax(np.abs(upper.y_px - truth_upper)) < 2.0      # stays on its own line
    truth_lower = np.interp(lower.x_px, x, low)
    assert abs(np.nanmin(lower.y_px) - truth_lower.min()) < 3.0   # spike kept in its own row


def test_convert_places_cells_and_inverts_cabrera() -> None:
    layout = get_layout("3x4")
    n = 5000
    x0, speed, ppmm = 100.0, 25.0, PPMM
    xs = np.arange(0, int(x0 + 250 * ppmm) + 2)
    rows = []
    for r in range(3):
        rows.append(RowTrace(r, xs, np.full(len(xs), 200.0 * (r + 1) - 8.0 * (r + 1)),
                             np.zeros(len(xs), bool), 1.0, 2.0))
    conv = build_record(tuple(rows), layout, [200.0, 400.0, 600.0], [10.0] * 3, speed, ppmm, ppmm,
                        x0, n)
    rec = conv.record
    lead_i = rec.lead("I")
    assert np.allclose(lead_i[:1250], 0.1)               # 8 px / (8 px/mm · 10 mm/mV)
    assert np.isnan(lead_i[1250:]).all()                 # not printed after 2.5 s
    assert np.allclose(rec.lead("V6")[3750:], 0.3)
    cab = build_record(tuple(rows * 4), get_layout("12x1-cabrera"), [200.0, 400.0, 600.0] * 4,
                       [10.0] * 12, speed, ppmm, ppmm, x0, n)
    # row 2 prints -aVR at +0.3 mV, so aVR is stored as -0.3 mV
    assert np.allclose(cab.record.lead("aVR"), -0.3)


def test_einthoven_residual() -> None:
    t = np.arange(2000) / 500
    lead_i = np.sin(2 * np.pi * t)
    lead_iii = 0.5 * np.cos(2 * np.pi * 1.3 * t)
    sig = np.full((2000, 12), np.nan)
    sig[:, 0], sig[:, 2], sig[:, 1] = lead_i, lead_iii, lead_i + lead_iii
    sig[:, 3] = -(lead_i + sig[:, 1]) / 2
    sig[:, 4] = lead_i - sig[:, 1] / 2
    sig[:, 5] = sig[:, 1] - lead_i / 2
    res = einthoven_residual(sig)
    assert res["limb"] < 1e-6 and res["augmented"] < 1e-6
    sig[:, 1] = lead_i  # wrong lead II
    assert einthoven_residual(sig)["limb"] > 0.3


def test_layout_from_ticks_and_labels() -> None:
    ticks_3x4 = {0.25: 1.0, 0.5: 1.0, 0.75: 1.0}
    ticks_mid = {0.25: 0.0, 0.5: 1.0, 0.75: 0.0}
    none = {0.25: 0.0, 0.5: 0.0, 0.75: 0.0}
    assert choose_layout(6, [ticks_3x4] * 3 + [none] * 3, []).name == "3x4+3"
    assert choose_layout(6, [ticks_mid] * 6, []).name == "6x2"
    assert choose_layout(4, [ticks_3x4] * 3 + [none], []).name == "3x4+1"
    labels = [(0, 0.0, "aVL"), (1, 0.0, "I"), (3, 0.0, "II")]
    assert choose_layout(12, [none] * 12, labels).name == "12x1-cabrera"
    assert choose_layout(12, [none] * 12, [], {"12x1": 0.05, "12x1-cabrera": 0.9}).name == "12x1"
    unknown = choose_layout(8, [none] * 8, [])   # 7 and 13 rows: 6x2+1, 12x1+1
    assert unknown.name == "unknown" and unknown.warnings


def test_row_pulse_is_found_behind_a_dark_edge_strip() -> None:
    """Seed-4 page p0203 (50 mm/s scan): a scanner's dark edge strip was the row's first ink,
    20 mm left of its 10-mm pulse; a 30-mm search strip ended inside the pulse's lead-out and
    25 mm/s was assumed (every lead at the wrong time scale)."""
    from ecglens.digitize.layout_detect import Row
    from ecglens.digitize.pulse_rows import row_pulse

    mask = _canvas(60, 120)
    base_mm = 45.0
    mask[:, int(2 * PPMM):int(4 * PPMM)] = 255                  # the dark edge strip
    _draw(mask, _pulse_xy(24, base_mm, 10, 50))                  # pulse 24-34 mm, lead-out 37
    x = np.arange(37 * PPMM, 118 * PPMM)
    _draw(mask, np.stack([x, base_mm * PPMM + 2 * np.sin(x / 9.0)], axis=1))
    row = Row(0, base_mm * PPMM - 3, 0.9, int(2 * PPMM), int(118 * PPMM))
    pulse = row_pulse(mask / 255.0, row, PPMM, PPMM, 30 * PPMM)
    assert pulse is not None
    assert (pulse.gain_mm_mv, pulse.speed_mm_s) == (10.0, 50.0)


def _word_image(words: list[str]) -> np.ndarray:
    """Dark words on white, one per line, drawn by OpenCV's Hershey font (8-bit grey)."""
    canvas = np.full((60 * len(words) + 40, 420), 255, np.uint8)
    for k, word in enumerate(words):
        cv2.putText(canvas, word, (20, 60 + 60 * k), cv2.FONT_HERSHEY_SIMPLEX, 1.3, 0, 3)
    return canvas


def test_kept_loaded_ocr_reads_as_the_tesseract_program() -> None:
    """The in-process worker (model loaded once) gives the words, boxes and confidences that
    pytesseract's one-program-per-call path gives on the same pixels, call after call."""
    pytest.importorskip("pytesseract")
    import shutil

    from ecglens.digitize import ocr

    if shutil.which("tesseract") is None:
        pytest.skip("tesseract not installed")
    image = _word_image(["aVR", "V5", "25mm/s 10mm/mV"])
    settings = {"tessedit_do_invert": "0"}
    ocr.USE_WORKER = False
    try:
        expected = ocr.image_to_data(image, psm=6, variables=settings)
    finally:
        ocr.USE_WORKER = True
    if ocr._get_worker() is None:
        pytest.skip("libtesseract's C API not loadable here: pytesseract is the path in use")
    assert "kept loaded" in ocr.engine_name(start=True)
    for _ in range(2):
        got = ocr.image_to_data(image, psm=6, variables=settings)
        for key in ("text", "left", "top", "width", "height", "conf", "level"):
            assert got[key] == expected[key], key
    assert "aVR" in got["text"]


def test_ocr_worker_that_died_is_started_again() -> None:
    pytest.importorskip("pytesseract")
    from ecglens.digitize import ocr

    worker = ocr._get_worker()
    if worker is None:
        pytest.skip("libtesseract's C API not loadable here")
    worker._proc.kill()
    worker._proc.wait()
    got = ocr.image_to_data(_word_image(["V2"]), psm=6)
    assert "V2" in got["text"]
    assert ocr._get_worker() is not worker


def test_hung_ocr_worker_times_out_and_is_replaced(tmp_path, monkeypatch) -> None:
    """A worker that answers its start but never a page: the call ends with TimeoutError
    after ``OCR_TIMEOUT_S``, that process is stopped, and the next call reads with a new
    worker."""
    pytest.importorskip("pytesseract")
    import struct
    import time

    from ecglens.digitize import ocr

    if ocr._get_worker() is None:
        pytest.skip("libtesseract's C API not loadable here")
    ocr._close_worker()
    hung = tmp_path / "hung_worker.py"
    hung.write_text(
        "import sys, time\n"
        f"sys.stdout.buffer.write(b'\\x00' + {struct.pack('<Q', 4)!r} + b'fake')\n"
        "sys.stdout.buffer.flush()\n"
        "time.sleep(600)\n")
    monkeypatch.setattr(ocr, "WORKER_SCRIPT", hung)
    monkeypatch.setattr(ocr, "OCR_TIMEOUT_S", 0.5)
    worker = ocr._get_worker()
    assert worker is not None and worker.version == "fake"
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        ocr.image_to_data(_word_image(["V2"]), psm=6)
    assert time.monotonic() - start < 5.0
    assert worker._proc.poll() is not None          # the hung process was stopped
    monkeypatch.undo()
    got = ocr.image_to_data(_word_image(["V2"]), psm=6)
    assert "V2" in got["text"]
    assert ocr._get_worker() is not worker


def test_first_extreme_is_argmin_with_ties() -> None:
    from ecglens.digitize.trace import _first_extreme

    rng = np.random.default_rng(3)
    values = rng.integers(0, 4, size=(14, 500)).astype(float)   # many ties
    values[5, :7] = -np.inf
    assert np.array_equal(_first_extreme(values, values.min(axis=0)), values.argmin(axis=0))
    assert np.array_equal(_first_extreme(values, values.max(axis=0)), values.argmax(axis=0))
    wide = rng.integers(0, 3, size=(60, 50)).astype(float)
    assert np.array_equal(_first_extreme(wide, wide.min(axis=0)), wide.argmin(axis=0))


def test_pulse_column_ignores_pulses_off_the_column() -> None:
    from ecglens.digitize.pipeline import pulse_column

    def pulse(row: int, right: float) -> Pulse:
        return Pulse(row, right - 23.0, right, 100.0 * row, 5.0, 5.0, 5.0, 25.0, 1.0)

    ppmm = 4.65
    column = [pulse(k, 139.5 + 0.1 * (k % 3)) for k in range(10)]
    assert pulse_column(column, ppmm) == column
    stray = [*column, pulse(10, 211.5), pulse(11, 229.9)]
    assert pulse_column(stray, ppmm) == column
    assert pulse_column([], ppmm) == []
    # two pulses far apart (no majority, no pulse at the median): the leftmost
    assert [p.row for p in pulse_column([pulse(0, 229.9), pulse(1, 139.5)], ppmm)] == [1]
    assert len(pulse_column([pulse(0, 139.5), pulse(1, 229.9)], float("nan"))) == 2


def test_lattice_levels_of_a_short_profile_do_not_fail():
    """A grid profile with 16-30 inked samples (a small grid patch on a photo) used to fail
    to broadcast its 31-sample running mean."""
    from ecglens.digitize.grid import _lattice_levels

    profile = np.zeros(60)
    profile[10:33] = 1.0 + (np.arange(23) % 5 == 0)
    m, _, strength = _lattice_levels(profile, 0.2)
    assert m in (1, -5, 2, 3, 4, 5, 10) and np.isfinite(strength)
