"""ECGRecord and its WFDB/CSV/JSON I/O on real records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ecglens.core.errors import InputError, RecordError
from ecglens.core.io import read_record, write_csv, write_json, write_wfdb
from ecglens.core.record import STANDARD_LEADS, ECGRecord, normalize_lead_name


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("i", "I"), ("avr", "aVR"), ("AVL", "aVL"), ("v6", "V6"), ("MLII", "II"), ("vx", "VX"),
     ("-aVR", "-aVR")],
)
def test_lead_names_are_normalised(raw: str, expected: str) -> None:
    assert normalize_lead_name(raw) == expected


def test_ludb_record_reads_with_leads_age_sex(shared_data: Path) -> None:
    record = read_record(shared_data / "ludb" / "data" / "1")
    assert record.leads == STANDARD_LEADS
    assert record.fs == 500 and record.signal.shape == (5000, 12)
    assert record.age == 51 and record.sex == "F"
    # Einthoven on real data: II = I + III to within ADC rounding
    residual = record.lead("II") - record.lead("I") - record.lead("III")
    assert np.median(np.abs(residual)) < 0.02


def test_cinc_and_ptb_headers(shared_data: Path) -> None:
    cinc = read_record(shared_data / "cinc" / "E07500.hea")
    assert cinc.leads == STANDARD_LEADS and cinc.age == 78 and cinc.sex == "M"
    ptb = read_record(shared_data / "ptb" / "patient001" / "s0010_re")
    assert ptb.leads[:12] == STANDARD_LEADS and ptb.leads[12:] == ("VX", "VY", "VZ")
    assert ptb.fs == 1000 and ptb.sex == "F" and ptb.age == 81


def _with_gaps(record: ECGRecord) -> ECGRecord:
    signal = record.signal.copy()
    signal[:1250, 0] = np.nan       # unprinted span
    signal[:, 5] = np.nan           # a lead that was not printed at all
    return record.replace(signal=signal, provenance={"source": "test", "page": 2},
                          confidence=tuple([0.9] * len(record.leads)))


def test_wfdb_round_trip_keeps_nan_metadata_and_values(shared_data: Path, tmp_path: Path) -> None:
    record = _with_gaps(read_record(shared_data / "ludb" / "data" / "7"))
    write_wfdb(record, tmp_path / "out")
    back = read_record(tmp_path / "out.hea")
    assert back.leads == record.leads and back.fs == record.fs
    assert np.array_equal(np.isnan(back.signal), np.isnan(record.signal))
    assert np.nanmax(np.abs(back.signal - record.signal)) <= 0.0005 + 1e-9   # 1 µV steps
    assert back.provenance["page"] == 2 and back.confidence == record.confidence
    assert back.age == record.age and back.sex == record.sex


def test_csv_and_json_round_trip(shared_data: Path, tmp_path: Path) -> None:
    record = _with_gaps(read_record(shared_data / "ludb" / "data" / "2"))
    csv_back = read_record(write_csv(record, tmp_path / "r.csv"))
    assert csv_back.fs == pytest.approx(500.0)
    assert np.array_equal(np.isnan(csv_back.signal), np.isnan(record.signal))
    assert np.nanmax(np.abs(csv_back.signal - record.signal)) < 1e-5
    json_back = read_record(write_json(record, tmp_path / "r.json"))
    assert np.nanmax(np.abs(json_back.signal - record.signal)) < 1e-5


def test_resample_keeps_gaps_and_shape(shared_data: Path) -> None:
    record = _with_gaps(read_record(shared_data / "ptb" / "patient001" / "s0010_re"))
    half = record.resample(500)
    assert half.n_samples == record.n_samples // 2
    assert np.isnan(half.signal[:600, 0]).all() and np.isfinite(half.signal[700:, 0]).all()
    # a smooth lead survives 1000 → 500 Hz closely
    assert np.nanmax(np.abs(half.signal[100:-100, 1] - record.signal[200:-200:2, 1])) < 0.05


def test_standard12_fills_missing_leads_with_nan() -> None:
    record = ECGRecord(signal=np.zeros((10, 2)), fs=100, leads=("ii", "v1"))
    full = record.standard12()
    assert full.leads == STANDARD_LEADS
    assert np.isnan(full.lead("I")).all() and (full.lead("II") == 0).all()
    assert full.confidence[0] == 0.0


def test_bad_records_raise_one_family_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"missing \.hea"):
        read_record(tmp_path / "nothing")
    header = tmp_path / "broken.hea"
    header.write_text("broken 12 five hundred\n")
    with pytest.raises(InputError, match=r"broken\.hea"):
        read_record(header)
    (tmp_path / "nodat.hea").write_text("nodat 1 500 100\nnodat.dat 16 200 16 0 0 0 0 II\n")
    with pytest.raises(InputError, match="nodat"):
        read_record(tmp_path / "nodat.hea")
    (tmp_path / "bad.csv").write_text("I,II\n1,abc\n")
    with pytest.raises(InputError, match=r"bad\.csv"):
        read_record(tmp_path / "bad.csv")
    with pytest.raises(RecordError):
        ECGRecord(signal=np.zeros((10, 2)), fs=500, leads=("I",))
