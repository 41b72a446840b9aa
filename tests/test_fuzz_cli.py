"""Fuzzing the command line with bad and odd input (property-based where it fits).

Corrupt, truncated, huge, odd-named, rotated, non-ECG, unit-scaled and partial inputs go
through ``ecglens`` and must give: exit code 0 or 1, on failure exactly one line
``ecglens: error: <file>: <reason>``, never a traceback, and never a finding on what is not a
measurable ECG (no POSITIVE class, no STEMI call, no "(high confidence)" on leads not seen).
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecglens.app.batch import safe_stem
from ecglens.cli import main
from ecglens.core.io import read_record, write_csv, write_wfdb
from ecglens.core.record import STANDARD_LEADS, ECGRecord

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "samples" / "ptbxl_00001_scan.jpg"
SUFFIXES = [".png", ".jpg", ".pdf", ".tif", ".hea", ".csv", ".json", ".dat", ".webp"]
FUZZ = settings(max_examples=25, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


def _run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code in (0, 1), (argv, code, err)
    assert "Traceback" not in err and "Traceback" not in out
    if code == 1 and "digitize" not in argv:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("ecglens: error: "), err
    return code, out, err


def _no_finding(command: str, out: str) -> None:
    """The JSON of ``analyze``/``classify`` states no finding."""
    data = json.loads(out)
    items = data if isinstance(data, list) else [data]
    for item in items:
        if command == "analyze":
            assert item["measurable"] is False, item.get("stemi")
        else:
            assert item["positive"] == [] and item.get("assessable") is False


# ------------------------------------------------------------------------ corrupt files
@FUZZ
@given(content=st.binary(min_size=0, max_size=600), suffix=st.sampled_from(SUFFIXES))
def test_corrupt_files_are_one_line_errors_or_not_assessable(
        tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str],
        content: bytes, suffix: str) -> None:
    folder = tmp_path_factory.mktemp("corrupt")
    path = folder / f"input{suffix}"
    path.write_bytes(content)
    for command in ("analyze", "classify"):
        code, out, _ = _run(capsys, [command, str(path), "--json"])
        if code == 0:   # bytes that happen to parse as a record: never a finding
            _no_finding(command, out)


@FUZZ
@given(fraction=st.floats(min_value=0.0, max_value=0.98))
def test_truncated_image_fails_alone(tmp_path_factory: pytest.TempPathFactory,
                                     capsys: pytest.CaptureFixture[str],
                                     fraction: float) -> None:
    folder = tmp_path_factory.mktemp("trunc")
    data = SAMPLE.read_bytes()
    path = folder / "cut.jpg"
    path.write_bytes(data[:int(fraction * len(data))])
    code, _, err = _run(capsys, ["-q", "digitize", str(path), "-o", str(folder / "out")])
    assert code == 1
    assert [ln for ln in err.splitlines() if ln.startswith("ecglens: error:")] == [
        ln for ln in err.splitlines() if ln.strip()]
    assert not list((folder / "out").glob("*.hea"))


def test_huge_image_is_refused_by_its_size(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """A 40,000 × 40,000 px PNG (a few kB on disk, 4.8 GB decoded) is refused unread."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None
    path = tmp_path / "huge.png"
    Image.new("1", (40_000, 40_000), 1).save(path)
    Image.MAX_IMAGE_PIXELS = 89_478_485
    code, _, err = _run(capsys, ["-q", "digitize", str(path), "-o", str(tmp_path / "out")])
    assert code == 1 and "huge.png" in err and "large" in err


# ------------------------------------------------------------------------ odd names
@settings(max_examples=200, deadline=None)
@given(name=st.text(min_size=0, max_size=120))
def test_any_name_gives_a_wfdb_record_name(name: str) -> None:
    stem = safe_stem(name)
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", stem) or stem == "record"
    assert len(stem) <= 80


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc"),
                                           blacklist_characters="/\\"),
                    min_size=1, max_size=40).filter(lambda s: s.strip(". ") == s.strip()
                                                    and s not in (".", "..")))
def test_a_record_under_any_safe_name_reads_back(tmp_path_factory: pytest.TempPathFactory,
                                                 name: str) -> None:
    folder = tmp_path_factory.mktemp("names")
    record = ECGRecord(signal=np.zeros((500, 12)), fs=500.0, leads=tuple(STANDARD_LEADS))
    header = write_wfdb(record, folder / safe_stem(name))
    assert read_record(header).signal.shape == (500, 12)


# ------------------------------------------------------------------------ not an ECG
def _image_bytes(array: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _non_ecg_images() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    blank = np.full((1200, 1600, 3), 255, np.uint8)
    noise = rng.integers(0, 256, (1200, 1600, 3), dtype=np.uint8)
    stripes = blank.copy()
    stripes[::40] = 0                      # ruled paper, no trace
    text = blank.copy()
    import cv2

    for k in range(25):
        cv2.putText(text, "The quick brown fox jumps over the lazy dog " * 2, (20, 40 + 45 * k),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.9, (0, 0, 0), 2)
    return {"blank": blank, "noise": noise, "stripes": stripes, "text": text}


@pytest.mark.parametrize("kind", ["blank", "noise", "stripes", "text"])
def test_non_ecg_image_gets_no_finding(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       kind: str) -> None:
    path = tmp_path / f"{kind}.png"
    path.write_bytes(_image_bytes(_non_ecg_images()[kind]))
    for command in ("analyze", "classify"):
        code, out, _ = _run(capsys, [command, str(path), "--json"])
        if code == 0:
            _no_finding(command, out)


@pytest.mark.parametrize("kind", ["flat", "white noise", "all NaN", "two samples"])
def test_non_ecg_signal_gets_no_finding(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        kind: str) -> None:
    rng = np.random.default_rng(1)
    n = 2 if kind == "two samples" else 5000
    signal = {"flat": np.zeros((n, 12)), "white noise": rng.normal(0, 0.5, (n, 12)),
              "all NaN": np.full((n, 12), np.nan), "two samples": rng.normal(0, 1, (n, 12))}[kind]
    path = write_csv(ECGRecord(signal=signal, fs=500.0, leads=tuple(STANDARD_LEADS)),
                     tmp_path / "rec.csv")
    for command in ("analyze", "classify"):
        code, out, _ = _run(capsys, [command, str(path), "--json"])
        if code == 0:
            _no_finding(command, out)


# ------------------------------------------------------------------------ real ECGs, odd units
@pytest.fixture(scope="module")
def ludb_records(shared_data: Path) -> list[ECGRecord]:
    from ecglens.analysis.ludb import read_ludb_record

    return [read_ludb_record(shared_data / "ludb" / "data" / str(k)).standard12()
            for k in (3, 21, 77, 140)]


@FUZZ
@given(index=st.integers(0, 3), scale=st.sampled_from([1e-3, 1e3, 1e6, 1e-6]))
def test_unit_scaled_record_is_converted_or_not_assessable(
        ludb_records: list[ECGRecord], tmp_path_factory: pytest.TempPathFactory,
        capsys: pytest.CaptureFixture[str], index: int, scale: float) -> None:
    """A real ECG written in µV, nV or V (×1e3, ×1e6, ×1e-3) is read in mV with a warning, or
    refused; its ST levels are never hundreds of mV and no STEMI is called that mV would not
    call."""
    record = ludb_records[index]
    folder = tmp_path_factory.mktemp("units")
    path = write_csv(record.replace(signal=record.signal * scale), folder / "rec.csv")
    _, out, _ = _run(capsys, ["analyze", str(path), "--json"])
    _, out_mv, _ = _run(capsys, ["analyze", str(write_csv(record, folder / "mv.csv")),
                                 "--json"])
    scaled, plain = json.loads(out), json.loads(out_mv)
    if scaled["measurable"]:
        assert any("µV" in w or "nV" in w or " V" in w or "unit" in w.lower()
                   for w in scaled["warnings"])
        for level in scaled["st"]:
            if level.get("st_j_mv") is not None:
                assert abs(level["st_j_mv"]) < 2.0
        assert scaled["stemi"]["detected"] == plain["stemi"]["detected"]


@FUZZ
@given(index=st.integers(0, 3),
       leads=st.sets(st.sampled_from(STANDARD_LEADS), min_size=1, max_size=11))
def test_partial_record_is_never_high_confidence_on_leads_not_seen(
        ludb_records: list[ECGRecord], tmp_path_factory: pytest.TempPathFactory,
        capsys: pytest.CaptureFixture[str], index: int, leads: set[str]) -> None:
    record = ludb_records[index].select(sorted(leads, key=STANDARD_LEADS.index))
    folder = tmp_path_factory.mktemp("partial")
    path = write_csv(record, folder / "rec.csv")
    _, out, _ = _run(capsys, ["analyze", str(path), "--json"])
    report = json.loads(out)
    if report["measurable"] and report.get("stemi"):
        assert report["stemi"]["confidence_label"] != "high"
        if report["stemi"]["detected"] is False:
            statement = report["stemi"]["statement"]
            assert "not met" in statement and "assessed" in statement
    _, out, _ = _run(capsys, ["classify", str(path), "--json"])
    if len(leads) < 9:      # the classifier's minimum (ecglens.core.gate.MIN_LEADS)
        _no_finding("classify", out)


# ------------------------------------------------------------------------ rotated pages
@pytest.mark.parametrize("turns", [1, 2])
def test_rotated_page_is_turned_or_refused_never_read_wrong(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], turns: int) -> None:
    from PIL import Image

    path = tmp_path / f"turned{turns}.png"
    with Image.open(SAMPLE) as img:
        img.rotate(90 * turns, expand=True).save(path)
    code, _, err = _run(capsys, ["-q", "digitize", str(path), "-o", str(tmp_path / "out")])
    if code == 1:
        assert "rotat" in err or "turn" in err or "not an ECG" in err
        return
    meta = json.loads((tmp_path / "out" / f"turned{turns}.json").read_text())
    assert meta["orientation"]["rotation_deg"] % 360 != 0
    assert meta["layout"] == "3x4+1"
