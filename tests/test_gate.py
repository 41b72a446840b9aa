"""The measurability gate through the CLI: no clinical statement on what is not a measurable ECG.

Every bad input goes through ``ecglens analyze`` and ``ecglens classify`` (text and JSON): it
must say "not assessable: <reason>", make no STEMI call and no POSITIVE class, and keep the
disclaimer. A real record in µV or nV (×1e6) is converted with a warning and gives the same
findings as in mV; a record with missing leads never gets a "high confidence" statement.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ecglens.analysis.report import analyze_record
from ecglens.classify import DISCLAIMER
from ecglens.cli import main
from ecglens.core.gate import MIN_LEADS, assess_measurability
from ecglens.core.io import read_record, write_csv, write_json, write_wfdb
from ecglens.core.record import STANDARD_LEADS, ECGRecord

FS = 500.0


@pytest.fixture(scope="module")
def real(shared_data: Path) -> ECGRecord:
    """PTB-XL ecg_id 1 at 500 Hz (fold 3, NORM), 12 leads in mV."""
    return read_record(shared_data / "ptbxl" / "records500" / "00000" / "00001_hr")


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def _analyze(capsys: pytest.CaptureFixture[str], path: Path) -> tuple[dict, str]:
    code, out = _run(capsys, "analyze", str(path), "--json")
    assert code == 0
    code_text, text = _run(capsys, "analyze", str(path))
    assert code_text == 0
    return json.loads(out), text


def _classify(capsys: pytest.CaptureFixture[str], path: Path) -> tuple[dict, str]:
    code, out = _run(capsys, "classify", str(path), "--json")
    assert code == 0
    code_text, text = _run(capsys, "classify", str(path))
    assert code_text == 0
    return json.loads(out), text


def _bad_records() -> dict[str, ECGRecord]:
    n = int(10 * FS)
    rng = np.random.default_rng(7)
    return {
        "flat": ECGRecord(np.full((n, 12), 0.3), FS, STANDARD_LEADS),
        "white_noise": ECGRecord(rng.normal(0.0, 0.3, (n, 12)), FS, STANDARD_LEADS),
        "all_nan": ECGRecord(np.full((n, 12), np.nan), FS, STANDARD_LEADS),
        "two_samples": ECGRecord(rng.normal(0.0, 0.5, (2, 12)), FS, STANDARD_LEADS),
        # a smooth periodic drawing: regular "beats" at 72/min, but no QRS complex
        "triangle": ECGRecord(np.tile(2 * np.abs((1.2 * np.arange(n) / FS) % 1 - 0.5)[:, None],
                                      (1, 12)), FS, STANDARD_LEADS),
    }


EXPECTED_REASON = {
    "flat": "flat line in every lead",
    "white_noise": "do not resemble one another",
    "all_nan": "every lead is empty (all NaN)",
    "two_samples": "only 0.004 s of signal (2 samples",
    "triangle": "no QRS complex",
}


def _assert_not_assessed_analysis(out: dict, text: str, reason: str) -> None:
    assert out["measurable"] is False and out["assessable"] is False
    assert out["reason"].startswith("not assessable: ") and reason in out["reason"]
    assert out["stemi"]["detected"] is None
    assert out["intervals"] is None and out["st"] == []
    assert out["disclaimer"] == DISCLAIMER
    assert out["reason"] in text and "cannot measure" in text.lower()
    assert "STEMI criteria" not in text and DISCLAIMER in text


def _assert_not_assessed_classify(out: dict, text: str, reason: str,
                                  beat_labels: bool = False) -> None:
    assert out["assessable"] is False
    assert out["reason"].startswith("not assessable: ") and reason in out["reason"]
    assert out["positive"] == [] and out["probabilities"] == {}
    assert (out["beats"] is not None) is beat_labels
    assert out["disclaimer"] == DISCLAIMER
    assert out["reason"] in text
    assert "POSITIVE" not in text and "probability" not in text
    assert DISCLAIMER in text


@pytest.mark.parametrize("kind", sorted(EXPECTED_REASON))
def test_bad_csv_is_not_assessable_anywhere(kind: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = write_csv(_bad_records()[kind], tmp_path / f"{kind}.csv")
    out, text = _analyze(capsys, path)
    _assert_not_assessed_analysis(out, text, EXPECTED_REASON[kind])
    out, text = _classify(capsys, path)
    _assert_not_assessed_classify(out, text, EXPECTED_REASON[kind])


def test_flat_line_in_wfdb_is_not_assessable(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    header = write_wfdb(_bad_records()["flat"], tmp_path / "flat")
    out, text = _analyze(capsys, header)
    _assert_not_assessed_analysis(out, text, "flat line in every lead")
    out, text = _classify(capsys, header)
    _assert_not_assessed_classify(out, text, "flat line in every lead")


@pytest.mark.parametrize(("factor", "unit", "writer"), [
    (1e3, "µV", "csv"),        # a CSV in µV, the header saying nothing
    (1e6, "nV", "json"),       # the JSON ×1e6 (ST "+10497.84 mV")
])
def test_other_units_are_converted_with_the_same_findings(
        real: ECGRecord, factor: float, unit: str, writer: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    write = write_csv if writer == "csv" else write_json
    mv_path = write(real, tmp_path / f"mv.{writer}")
    other_path = write(real.replace(signal=real.signal * factor), tmp_path / f"x.{writer}")
    ref, _ = _analyze(capsys, mv_path)
    got, text = _analyze(capsys, other_path)
    assert ref["measurable"] is True and got["measurable"] is True
    assert not any("look like" in w for w in ref["warnings"])
    assert any(f"amplitudes look like {unit}" in w for w in got["warnings"])
    assert f"amplitudes look like {unit}" in text
    for a, b in zip(ref["st"], got["st"], strict=True):
        assert a["lead"] == b["lead"]
        assert a["st_j_mv"] == pytest.approx(b["st_j_mv"], abs=2e-3)
        assert abs(b["st_j_mv"]) < 1.0        # mV, not µV: the "+10.24 mV" is gone
    for key in ("hr_bpm", "qrs_ms", "qt_ms"):
        assert got["intervals"][key] == pytest.approx(ref["intervals"][key], abs=1.0)
    assert got["stemi"]["detected"] is ref["stemi"]["detected"] is False
    assert got["stemi"]["statement"] == ref["stemi"]["statement"]
    ref_c, _ = _classify(capsys, mv_path)
    got_c, _ = _classify(capsys, other_path)
    assert ref_c["assessable"] is True and got_c["assessable"] is True
    assert got_c["positive"] == ref_c["positive"]
    for c in ref_c["classes"]:
        assert got_c["probabilities"][c] == pytest.approx(ref_c["probabilities"][c], abs=1e-3)
    assert any(f"look like {unit}" in w for w in got_c["warnings"])


def test_amplitude_in_no_unit_is_refused(real: ECGRecord, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """×30 (a wrong gain): 30 mV is no ECG, 0.03 mV read as µV neither."""
    path = write_csv(real.replace(signal=real.signal * 30.0), tmp_path / "x30.csv")
    out, text = _analyze(capsys, path)
    _assert_not_assessed_analysis(out, text, "implausible amplitude")
    out, text = _classify(capsys, path)
    _assert_not_assessed_classify(out, text, "implausible amplitude")


def _keep(record: ECGRecord, leads: tuple[str, ...]) -> ECGRecord:
    return record.select(leads)


def test_three_lead_record(real: ECGRecord, tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    """II, aVF, III (two contiguous pairs): "not met" names the 3 leads, never high
    confidence; the classifier (≥ 9 leads) gives no decision."""
    path = write_csv(_keep(real, ("II", "aVF", "III")), tmp_path / "three.csv")
    out, text = _analyze(capsys, path)
    assert out["measurable"] is True
    assert out["leads_assessed"] == ["II", "III", "aVF"]
    stemi = out["stemi"]
    assert stemi["detected"] is False
    assert stemi["confidence_label"] != "high" and stemi["confidence"] < 0.75
    assert "high confidence" not in text
    assert "not met in the 3 leads assessed" in stemi["statement"]
    assert "II, III, aVF" in stemi["statement"] and "Not assessed: I, aVR, aVL, V1" in text
    out, text = _classify(capsys, path)
    # no superclass decision; lead II alone is enough for the beat labels
    _assert_not_assessed_classify(out, text, "only 3 of 12 leads observed", beat_labels=True)
    assert out["beats"]["lead"] == "II" and out["beats"]["counts"]["N"] >= 8


def test_three_leads_without_contiguous_pair_make_no_stemi_statement(
        real: ECGRecord, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """I, II, III: no two are contiguous (Cabrera: aVL, I, −aVR, II, aVF, III), so the ST
    elevation rule cannot run; before the gate this said "not met (high confidence)"."""
    path = write_csv(_keep(real, ("I", "II", "III")), tmp_path / "i_ii_iii.csv")
    out, text = _analyze(capsys, path)
    assert out["measurable"] is True
    assert out["stemi"]["detected"] is None
    assert "No STEMI statement is possible" in out["stemi"]["statement"]
    assert "high confidence" not in text and "not met" not in text
    assert DISCLAIMER in text


def test_full_record_states_all_12_leads_and_one_missing_lead_is_not_high(
        real: ECGRecord, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    full, _ = _analyze(capsys, write_csv(real, tmp_path / "full.csv"))
    assert full["stemi"]["detected"] is False
    assert full["stemi"]["confidence_label"] == "high"          # clear record, 12 leads
    assert "all 12 leads" in full["stemi"]["statement"]
    eleven = tuple(lead for lead in STANDARD_LEADS if lead != "V6")
    out, text = _analyze(capsys, write_csv(_keep(real, eleven), tmp_path / "no_v6.csv"))
    assert out["stemi"]["detected"] is False
    assert out["stemi"]["confidence_label"] == "moderate"
    assert "high confidence" not in text and "Not assessed: V6" in text


def test_one_lead_holter_gets_beat_labels_but_no_superclass(
        shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """MIT-BIH 100 (MLII only): the analysis measures it, makes no STEMI statement (one lead),
    the 12-lead classifier gives no decision, the beat labels are still given."""
    path = shared_data / "mitdb" / "100"
    code, out = _run(capsys, "classify", str(path), "--json")
    assert code == 0
    result = json.loads(out)
    assert result["assessable"] is False and "only 1 of 12 leads" in result["reason"]
    assert result["positive"] == [] and result["probabilities"] == {}
    assert result["beats"]["counts"]["N"] > 300
    assert result["disclaimer"] == DISCLAIMER
    code, out = _run(capsys, "analyze", str(path), "--json")
    report = json.loads(out)
    assert code == 0 and report["measurable"] is True and report["leads_assessed"] == ["II"]
    assert report["stemi"]["detected"] is None
    assert 60 < report["intervals"]["hr_bpm"] < 90


def test_classification_lead_minimum(real: ECGRecord) -> None:
    """Exactly MIN_LEADS["classification"] observed leads pass (with a warning), one fewer
    does not."""
    need = MIN_LEADS["classification"]
    ok = assess_measurability(_keep(real, STANDARD_LEADS[:need]), "classification")
    assert ok.assessable and len(ok.leads_assessed) == need
    assert any("no signal in" in w for w in ok.warnings)
    short = assess_measurability(_keep(real, STANDARD_LEADS[:need - 1]), "classification")
    assert not short.assessable
    assert f"only {need - 1} of 12 leads observed" in short.reason
    # the analysis works on the same record
    assert assess_measurability(_keep(real, STANDARD_LEADS[:need - 1]), "analysis").assessable


def test_stemi_call_with_missing_leads_is_not_high(shared_data: Path) -> None:
    """LUDB 64 (inferior + anterior STEMI per LUDB): without V1–V6 any call is never high."""
    from ecglens.analysis.ludb import read_ludb_record

    record = read_ludb_record(shared_data / "ludb" / "data" / "64")
    limb = analyze_record(_keep(record, STANDARD_LEADS[:6]))
    assert limb.measurable and limb.stemi is not None
    assert limb.stemi.confidence_label != "high"
    assert "V1" in limb.stemi.statement      # names what was not assessed


def test_gate_admits_real_ecgs(shared_data: Path) -> None:
    """Real ECGs of every kind pass (a sample; the full count is in the gate's docs):
    LUDB physically scaled and as read_record gives it (per-lead min-max), PTB-XL fold 1–9."""
    import pandas as pd

    from ecglens.analysis.ludb import read_ludb_record

    records = [read_ludb_record(shared_data / "ludb" / "data" / str(i)) for i in (1, 7, 64, 111)]
    records += [read_record(shared_data / "ludb" / "data" / "2")]
    table = pd.read_csv(shared_data / "ptbxl" / "labels.csv")
    table = table[table.strat_fold <= 9].iloc[::150]     # never fold 10
    records += [read_record(shared_data / "ptbxl" / name) for name in table.filename_lr]
    for record in records:
        for purpose in ("analysis", "classification"):
            verdict = assess_measurability(record, purpose)  # type: ignore[arg-type]
            assert verdict.assessable, (record.provenance.get("source"), verdict.reason)
            assert verdict.unit == "mV" and not verdict.warnings
