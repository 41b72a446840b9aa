"""Orientation stage (``digitize/orient.py``) and final ECG check (``digitize/ecg_check.py``)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from ecglens.core.errors import DigitizeError
from ecglens.core.io import read_record
from ecglens.core.record import STANDARD_LEADS
from ecglens.digitize.convert import ConvertResult, LeadRead, einthoven_residual
from ecglens.digitize.ecg_check import check_reading
from ecglens.digitize.orient import DIRECTION_SCORE, decide, find_orientation, turn_upright
from ecglens.digitize.pipeline import _read_upright, digitize_image
from ecglens.synth.render import RenderSettings, render_page

DPI = 150.0


@pytest.fixture(scope="module")
def record(shared_data):
    return read_record(shared_data / "ludb" / "data" / "5")


@pytest.fixture(scope="module")
def page(record):
    return render_page(record, RenderSettings(layout="3x4+1", dpi=DPI, grid="red"))


@pytest.fixture(scope="module")
def upright(page):
    return digitize_image(page.image, source="upright.png", dpi_prior=DPI)


def _median_r(a: np.ndarray, b: np.ndarray) -> float:
    rs = []
    for x, y in zip(a.T, b.T, strict=True):
        ok = np.isfinite(x) & np.isfinite(y)
        if ok.sum() > 50:
            rs.append(np.corrcoef(x[ok], y[ok])[0, 1])
    return float(np.median(rs)) if rs else float("nan")


def test_upright_page_is_read_unchanged(page, upright):
    assert upright.orientation.rotation_deg == 0
    assert not upright.orientation.refused and not upright.orientation.turned
    assert upright.orientation.confirmed
    assert not any("turned" in w or "orientation" in w for w in upright.warnings)
    assert not upright.ecg_check.refused
    # the same read as without the orientation stage and the check
    plain = _read_upright(page.image, "upright.png", 0, 1, DPI, True, None, None)
    assert plain.layout.name == upright.layout.name == "3x4+1"
    np.testing.assert_array_equal(plain.record.signal, upright.record.signal)
    data = upright.to_json()
    assert data["orientation"]["rotation_deg"] == 0
    assert data["ecg_check"]["failures"] == [] and data["ecg_check"]["beats"] >= 5


@pytest.mark.parametrize("turn", [180, 90, 270])
def test_turned_page_is_read_the_right_way_up(page, upright, turn):
    # np.rot90 turns counter-clockwise: the page as given is turned by `turn` degrees
    turned = np.rot90(page.image, turn // 90)
    result = digitize_image(turned, source=f"turned{turn}.png", dpi_prior=DPI)
    assert result.orientation.rotation_deg == turn, result.orientation.reason
    assert result.layout.name == upright.layout.name
    assert result.calibration.gain_mm_mv == upright.calibration.gain_mm_mv
    assert result.calibration.speed_mm_s == upright.calibration.speed_mm_s
    assert _median_r(result.record.signal, upright.record.signal) > 0.9
    assert any(f"page turned by {turn} deg" in w for w in result.warnings)
    assert result.to_json()["orientation"]["rotation_deg"] == turn
    np.testing.assert_array_equal(turn_upright(turned, turn), page.image)


@pytest.fixture(scope="module")
def bare_page(record):
    """A page with no calibration pulse, read without OCR: only its traces say which way is
    up."""
    return render_page(record, RenderSettings(layout="6x2", dpi=DPI, grid="red", pulse=False))


@pytest.fixture(scope="module")
def bare_upright(bare_page):
    return digitize_image(bare_page.image, source="bare.png", dpi_prior=DPI, use_ocr=False)


def test_page_without_pulses_or_names_is_confirmed_upright_by_its_traces(bare_upright):
    orientation = bare_upright.orientation
    assert orientation.rotation_deg == 0 and orientation.confirmed
    assert orientation.reason.startswith("trace direction")
    assert orientation.direction[0] is not None
    assert orientation.direction[0][0] >= DIRECTION_SCORE
    assert not any("orientation" in w for w in bare_upright.warnings)
    assert bare_upright.layout.name == "6x2" and not bare_upright.ecg_check.refused


@pytest.mark.parametrize("turn", [90, 180, 270])
def test_page_without_pulses_or_names_is_turned_by_its_traces(bare_page, bare_upright, turn):
    turned = np.rot90(bare_page.image, turn // 90)
    result = digitize_image(turned, source="bare.png", dpi_prior=DPI, use_ocr=False)
    assert result.orientation.rotation_deg == turn
    assert result.orientation.reason.startswith("trace direction")
    assert any(w.startswith(f"page turned by {turn} deg") for w in result.warnings)
    assert result.layout.name == "6x2"
    assert _median_r(result.record.signal, bare_upright.record.signal) > 0.99


def test_blank_grid_is_read_as_it_is_with_an_unconfirmed_orientation():
    orientation = find_orientation(np.zeros((800, 1200)), DPI / 25.4, DPI / 25.4,
                                   use_ocr=False)
    assert orientation.rotation_deg == 0 and not orientation.confirmed
    assert orientation.direction == (None, None)


def _grid_page(h: int = 1300, w: int = 1800, ppmm: float = DPI / 25.4) -> np.ndarray:
    page = np.full((h, w, 3), 255, np.uint8)
    for k, x in enumerate(np.arange(0, w, ppmm)):
        page[:, int(x)] = (228, 96, 96) if k % 5 == 0 else (247, 178, 178)
    for k, y in enumerate(np.arange(0, h, ppmm)):
        page[int(y), :] = (228, 96, 96) if k % 5 == 0 else (247, 178, 178)
    return page


def test_random_lines_on_a_grid_are_refused_as_no_ecg():
    rng = np.random.default_rng(0)
    page = _grid_page()
    for row in range(4):
        y = np.convolve(rng.normal(0, 25, page.shape[1]), np.ones(3) / 3, mode="same")
        ys = (250 + 270 * row + np.clip(y, -100, 100)).astype(np.int32)
        xs = np.arange(80, page.shape[1] - 80)
        cv2.polylines(page, [np.stack([xs, ys[xs]], 1).reshape(-1, 1, 2)], False, (0, 0, 0),
                      2, cv2.LINE_AA)
    # the reading stages find four trace rows in it: the final check refuses it
    result = digitize_image(page, source="lines.png", dpi_prior=DPI, check=False)
    assert len(result.rows.rows) == 4 and result.ecg_check.refused
    assert any("not an ECG" in w for w in result.warnings)
    with pytest.raises(DigitizeError, match="not an ECG"):
        digitize_image(page, source="lines.png", dpi_prior=DPI)


def test_page_of_text_is_refused_as_no_ecg():
    rng = np.random.default_rng(0)
    words = ["patient", "report", "the", "of", "and", "rhythm", "normal", "signed", "date"]
    page = np.full((1600, 2200, 3), 255, np.uint8)
    for top in range(80, 1560, 45):
        cv2.putText(page, " ".join(rng.choice(words, 12)), (60, top), cv2.FONT_HERSHEY_SIMPLEX,
                    1.1, (0, 0, 0), 2)
    # lines of text 6 mm apart pass the row search as trace rows; what is read is no ECG
    with pytest.raises(DigitizeError, match="not an ECG"):
        digitize_image(page, source="text.png", dpi_prior=200.0)


def _convert(signal: np.ndarray, fs: float) -> ConvertResult:
    from ecglens.core.record import ECGRecord

    record = ECGRecord(signal=signal, fs=fs, leads=STANDARD_LEADS)
    leads = tuple(LeadRead(name, (0,), 0.0, len(signal) / fs,
                           float(np.mean(np.isfinite(signal[:, k]))), 1.0, ())
                  for k, name in enumerate(STANDARD_LEADS))
    return ConvertResult(record, leads, einthoven_residual(signal))


def test_check_passes_a_real_record_and_refuses_it_with_its_leads_scrambled(record):
    rec = record.standard12()
    good = check_reading(_convert(rec.signal, rec.fs))
    assert not good.refused and good.beats >= 5 and good.beat_correlation > 0.8
    # each lead a different stretch of another lead, time reversed: no common rhythm and no
    # Einthoven's law
    rng = np.random.default_rng(1)
    scrambled = np.stack([np.roll(rec.signal[::-1, (k * 5) % 12], rng.integers(200, 2000))
                          for k in range(12)], axis=1)
    bad = check_reading(_convert(scrambled, rec.fs))
    assert bad.refused, bad
    assert bad.reason.startswith("what was read is not an ECG")


def test_decision_rules():
    none = dict.fromkeys((0, 90, 180, 270), 0)
    # upright pulses decide alone
    assert decide(4, None, {0: 3}, None).rotation_deg == 0
    # pulses and names agree on 180
    both = decide(4, 0, {**none, 180: 4}, {**none, 180: 6})
    assert both.rotation_deg == 180 and both.confidence == 1.0 and both.turned
    # one name elsewhere does not outvote six
    assert decide(4, 0, none, {**none, 90: 6, 270: 1}).rotation_deg == 90
    # a single pulse or a single name is no vote
    single = decide(4, 0, {**none, 180: 1}, {**none, 180: 1})
    assert single.rotation_deg == 0 and not single.refused
    # pulses and names that disagree, neither upright: refused, naming both
    conflict = decide(4, 0, {**none, 180: 4}, {**none, 90: 5})
    assert conflict.refused and "180" in conflict.refused and "90" in conflict.refused
    # ...one of them upright: read as it is, with no confidence
    assert decide(4, 0, {**none, 180: 4}, {**none, 0: 5}).confidence == 0.0
    # no vote, traces down the page: read as it is, suspected of a turn
    down = decide(0, 6, none, none)
    assert down.rotation_deg == 0 and not down.refused and "90 or 270" in down.suspicion
    assert math.isclose(decide(3, 0, none, none).confidence, 0.5)
    # no pulse or name vote: a clear trace direction decides, along the rows across the page
    # or, where more rows run down it, along those
    clear, weak = (DIRECTION_SCORE + 0.5, 20), (DIRECTION_SCORE - 0.5, 20)
    assert decide(4, 0, none, none, ((-clear[0], 20), None)).rotation_deg == 180
    assert decide(0, 6, none, none, (None, clear)).rotation_deg == 90
    assert decide(0, 6, none, none, (None, (-clear[0], 20))).rotation_deg == 270
    unclear = decide(4, 0, none, none, ((-weak[0], 20), None))
    assert unclear.rotation_deg == 0 and not unclear.confirmed
    # the rows with more windows carry the vote, not the axis with more rows: QRS complexes
    # of a page with three long rows line up into more, short rows down it
    assert decide(3, 9, none, none, (clear, (-clear[0], 7))).rotation_deg == 0
    assert decide(3, 9, none, none, (clear, (-clear[0], 7))).confirmed
    # ...from enough windows only
    assert decide(4, 0, none, none, ((-clear[0], 2), None)).rotation_deg == 0
    # pulses or names that vote are not overruled by the trace direction
    assert decide(4, 0, {**none, 180: 4}, none, (clear, None)).rotation_deg == 180


def test_record_carries_the_orientation_and_the_gate_refuses_an_unconfirmed_one(record,
                                                                                 bare_upright):
    from ecglens.core.gate import assess_measurability

    assert bare_upright.record.provenance["orientation"] == {
        "rotation_deg": 0, "confirmed": True, "by": "trace direction"}
    ecg = record.standard12()
    for purpose in ("analysis", "classification", "beats"):
        assert assess_measurability(ecg, purpose).assessable
        unsure = ecg.replace(provenance={**ecg.provenance, "orientation": {
            "rotation_deg": 0, "confirmed": False, "by": "no evidence that the page is turned"}})
        verdict = assess_measurability(unsure, purpose)
        assert not verdict.assessable
        assert "orientation was not confirmed" in verdict.reason
        assert "--upright" in verdict.reason


def test_page_stated_upright_skips_the_orientation_stage(bare_page, bare_upright):
    # the caller's word is taken: even a page turned by 180 deg is then read as it is
    stated = digitize_image(bare_page.image, source="bare.png", dpi_prior=DPI, use_ocr=False,
                            upright=True)
    assert stated.orientation.reason == "given as upright by the caller"
    assert stated.record.provenance["orientation"]["confirmed"] is True
    np.testing.assert_array_equal(stated.record.signal, bare_upright.record.signal)
