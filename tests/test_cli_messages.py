"""Every error is one line and exit code 1; no traceback without --debug, one with it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ecglens.cli import main
from ecglens.core.io import write_wfdb
from ecglens.core.record import STANDARD_LEADS, ECGRecord

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "samples" / "ptbxl_00001_scan.jpg"


def _one_line_error(capsys: pytest.CaptureFixture[str], *needles: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("ecglens: error:") and "Traceback" not in err[0]
    for needle in needles:
        assert needle in err[0], err[0]
    return err[0]


def _record(tmp_path: Path) -> Path:
    t = np.arange(5000) / 500.0
    signal = np.stack([np.sin(2 * np.pi * 1.2 * t) * (0.5 + 0.05 * k) for k in range(12)], 1)
    return write_wfdb(ECGRecord(signal=signal, fs=500.0, leads=tuple(STANDARD_LEADS)),
                      tmp_path / "rec")


@pytest.mark.parametrize("argv", [
    ["analyze", "x.hea", "--age", "-3"], ["analyze", "x.hea", "--age", "old"],
    ["render", "x.hea", "-o", "a.png", "--seed", "-1"], ["render", "x.hea", "-o", "a.png",
                                                         "--dpi", "0"],
    ["analyze", "x.hea", "--page", "0"], ["analyze", "x.hea", "--seconds", "-5"],
    ["no-such-command"]])
def test_bad_arguments_are_one_line_exit_1(argv: list[str],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 1
    _one_line_error(capsys, "--help")


def test_encrypted_pdf_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pypdf = pytest.importorskip("pypdf")
    writer = pypdf.PdfWriter()
    writer.add_blank_page(width=200, height=200)
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="RC4-128")
    pdf = tmp_path / "locked.pdf"
    with open(pdf, "wb") as fh:
        writer.write(fh)
    assert main(["analyze", str(pdf)]) == 1
    _one_line_error(capsys, "locked.pdf", "encrypted PDF")


def test_render_output_name_that_wfdb_cannot_hold(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", str(_record(tmp_path)), "-o", str(tmp_path / "a+b.png")]) == 1
    _one_line_error(capsys, "a+b", "WFDB")


def test_score_out_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    truth = tmp_path / "truth"
    truth.mkdir()
    _record(truth)
    existing = tmp_path / "report.txt"
    existing.write_text("keep me")
    assert main(["-q", "score", str(truth), str(truth), "--out", str(existing)]) == 1
    capsys.readouterr()   # the table went to stdout before the write failed
    assert existing.read_text() == "keep me"


def test_score_takes_a_plain_folder_of_wfdb_truth_records(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The Challenge's layout: truth ``<id>.hea`` with no ``_truth`` suffix and no geometry;
    a read record identical to the truth scores far above any read, a missing one 0 dB."""
    truth, read = tmp_path / "truth", tmp_path / "read"
    truth.mkdir()
    read.mkdir()
    _record(truth)
    _record(read)
    write_wfdb(ECGRecord(signal=np.ones((5000, 12)), fs=500.0, leads=tuple(STANDARD_LEADS)),
               truth / "other")
    assert main(["-q", "score", str(truth), str(read), "--out", str(tmp_path / "s")]) == 0
    import json

    pages = {p["id"]: p for p in json.loads((tmp_path / "s" / "score.json").read_text())["pages"]}
    assert set(pages) == {"rec", "other"}
    assert pages["rec"]["mean_snr_db"] > 40 and pages["other"]["error"] == "no read record"


def test_unwritable_output_is_one_line(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["digitize", str(SAMPLE), "-o", str(blocker / "sub")]) == 1
    _one_line_error(capsys, "cannot create the output folder")


def test_debug_shows_the_traceback_of_a_bad_file_in_a_batch(tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    cmd = [sys.executable, "-m", "ecglens.cli", "digitize", str(bad), "-o", str(tmp_path / "o")]
    quiet = subprocess.run(cmd, capture_output=True, text=True)
    assert quiet.returncode == 1 and "Traceback" not in quiet.stderr
    debug = subprocess.run([*cmd[:3], "--debug", *cmd[3:-1], str(tmp_path / "o2")],
                           capture_output=True, text=True)
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_library_warnings_go_to_the_log_not_stderr(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str],
                                                   caplog: pytest.LogCaptureFixture) -> None:
    """A warning raised by a library while a command runs (here: while the record is read)
    is not printed; with --debug it is logged."""
    import warnings

    import ecglens.core.io as io

    real = io.read_record

    def noisy(*args: object, **kwargs: object) -> ECGRecord:
        warnings.warn("a library grumbles", UserWarning, stacklevel=1)
        return real(*args, **kwargs)

    monkeypatch.setattr(io, "read_record", noisy)
    record = _record(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert main(["analyze", str(record)]) == 0
        assert "a library grumbles" not in capsys.readouterr().err
        caplog.clear()
        assert main(["--debug", "analyze", str(record)]) == 0
        assert any("a library grumbles" in r.getMessage() for r in caplog.records
                   if r.name == "py.warnings")


def test_unwritable_saliency_path_keeps_the_classification(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], shared_data: Path) -> None:
    """``classify --saliency`` to a path that cannot be written: the classification is still
    printed, with a warning naming the path; no traceback."""
    import json

    from ecglens.analysis.ludb import read_ludb_record

    record = write_wfdb(read_ludb_record(shared_data / "ludb" / "data" / "3"), tmp_path / "r3")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["classify", str(record), "--json", "--no-beats", "--saliency",
                 str(blocker / "sal.png")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["probabilities"] and out["saliency_png"] == []
    assert any("saliency plot not written" in w and "sal.png" in w for w in out["warnings"])
