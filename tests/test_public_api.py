"""The installed ``ecglens`` namespace and the public API, used through public names only."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ecglens
from ecglens.cli import main

REPO = Path(__file__).resolve().parents[1]


def _run_outside(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run Python code from a folder outside the repository (no checkout on the path)."""
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, check=False)


def test_one_namespace_outside_the_repository(tmp_path: Path) -> None:
    ok = _run_outside("import ecglens, ecglens.digitize, ecglens.analysis, ecglens.classify, "
                      "ecglens.core, ecglens.synth, ecglens.score, ecglens.cli; "
                      "print(ecglens.__version__)", tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == ecglens.__version__
    for generic in ("digitize", "analysis", "classify", "cli", "core"):
        out = _run_outside(f"import {generic}", tmp_path)
        assert out.returncode != 0 and "ModuleNotFoundError" in out.stderr, generic


def test_public_names_resolve() -> None:
    for name in ecglens.__all__:
        assert getattr(ecglens, name) is not None, name
    with pytest.raises(AttributeError):
        _ = ecglens.no_such_name  # type: ignore[attr-defined]


def _imported_modules(package: Path) -> set[str]:
    names: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
    return names


@pytest.mark.parametrize("package", ["analysis", "classify", "core"])
def test_analysis_classify_and_core_do_not_import_the_digitizer(package: str) -> None:
    imported = _imported_modules(REPO / package)
    assert not [m for m in imported if m.startswith(("ecglens.digitize", "digitize"))]


def test_core_imports_no_other_ecglens_package() -> None:
    imported = _imported_modules(REPO / "core")
    assert all(m.startswith("ecglens.core") for m in imported if m.startswith("ecglens"))


def test_one_beat_detector() -> None:
    """No package runs a beat detector of its own (NeuroKit2's or another)."""
    for package in ("analysis", "classify", "digitize"):
        for path in (REPO / package).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            assert "ecg_peaks" not in text and "def detect_beats" not in text, path


def _beating_record() -> ecglens.ECGRecord:
    """12 leads, 10 s at 500 Hz: 72 bpm Gaussian QRS complexes with T waves."""
    fs, n = 500.0, 5000
    t = np.arange(n) / fs
    beat_times = np.arange(0.4, 10.0, 60.0 / 72.0)
    qrs = sum(np.exp(-0.5 * ((t - b) / 0.012) ** 2) for b in beat_times)
    tw = sum(np.exp(-0.5 * ((t - b - 0.3) / 0.05) ** 2) for b in beat_times)
    gains = np.linspace(0.6, 1.4, 12)
    signal = np.stack([g * (1.2 * qrs + 0.25 * tw) for g in gains], axis=1)
    return ecglens.ECGRecord(signal=signal, fs=fs, leads=tuple(ecglens.STANDARD_LEADS))


def test_analyze_and_classify_report_the_same_beats(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = ecglens.write_wfdb(_beating_record(), tmp_path / "beats")
    assert main(["analyze", str(path), "--json"]) == 0
    analysis = json.loads(capsys.readouterr().out)
    assert main(["classify", str(path), "--json"]) == 0
    classification = json.loads(capsys.readouterr().out)
    analysed = analysis["beat_times_s"]
    labelled = [b["time_s"] for b in classification["beats"]["beats"]]
    assert len(analysed) == 12
    assert labelled == analysed
