"""The ecglens command line: fast help, one-line errors, score."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ecglens.cli as cli
from ecglens.core.io import read_record, write_wfdb


def test_help_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys\nimport ecglens.cli as cli\n"
        "cli.build_parser().format_help()\n"
        "heavy = [m for m in ('torch', 'cv2', 'wfdb', 'scipy', 'skimage', 'neurokit2', 'pandas')"
        " if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_every_command_is_registered() -> None:
    helptext = cli.build_parser().format_help()
    for command in ("render", "digitize", "score", "analyze", "classify"):
        assert command in helptext


def test_missing_record_is_one_line_error_exit_1(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["score", str(tmp_path / "nope"), str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert len(err.splitlines()) == 1 and "nope" in err and "Traceback" not in err


def test_score_folder_reports_table(shared_data: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    truth_dir, read_dir = tmp_path / "truth", tmp_path / "read"
    record = read_record(shared_data / "ludb" / "data" / "10")
    signal = record.signal.copy()
    signal[1250:, 0] = np.nan                               # lead I printed for 2.5 s only
    truth = record.replace(signal=signal)
    write_wfdb(truth, truth_dir / "p1_truth")
    (truth_dir / "p1_truth.json").write_text('{"layout": "3x4", "profile": "clean", '
                                             '"gain_mm_mv": 10, "speed_mm_s": 25}')
    write_wfdb(truth, truth_dir / "p2_truth")               # no read record for p2 → 0 dB
    noisy = truth.signal + np.random.default_rng(0).normal(0, 0.01, truth.signal.shape)
    write_wfdb(truth.replace(signal=noisy), read_dir / "p1")
    (read_dir / "p1.json").write_text('{"layout": "3x4", "gain_mm_mv": 10, "speed_mm_s": 50}')
    assert cli.main(["score", str(truth_dir), str(read_dir), "--out", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "| clean | 3x4 | 1 |" in out
    import json
    result = json.loads((tmp_path / "s" / "score.json").read_text())
    pages = {p["id"]: p for p in result["pages"]}
    assert pages["p1"]["mean_snr_db"] > 20 and pages["p2"]["mean_snr_db"] == 0.0
    checks = pages["p1"]["checks"]
    assert checks["layout"]["right"] and not checks["speed_mm_s"]["right"]
