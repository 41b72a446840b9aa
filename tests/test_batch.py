"""Batches that never lose, overwrite or half-write: names, collisions, atomic outputs, resume."""

from __future__ import annotations

import csv
import functools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import wfdb

from ecglens.app import batch
from ecglens.app.batch import BatchOptions, plan_stems, run_batch, safe_stem
from ecglens.cli import main
from ecglens.core.io import read_record

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "samples" / "ptbxl_00001_scan.jpg"


@pytest.mark.parametrize(("name", "stem"), [
    ("page", "page"), ("rec.v2", "rec_v2"), ("a+b", "a_b"), ("Müller ECG (2)", "Muller_ECG_2"),
    ("心电图", "record"), ("--x--", "x"), ("a" * 200, "a" * batch.MAX_STEM_CHARS)])
def test_safe_stem_is_a_wfdb_name(name: str, stem: str) -> None:
    assert safe_stem(name) == stem


def test_colliding_stems_get_their_folder_names(tmp_path: Path) -> None:
    files = [tmp_path / "A" / "page.jpg", tmp_path / "B" / "page.png", tmp_path / "c.pdf",
             tmp_path / "B" / "c.pdf"]
    stems = plan_stems(files)
    assert stems[files[0]] == "A_page" and stems[files[1]] == "B_page"
    assert len({s.lower() for s in stems.values()}) == 4
    assert plan_stems([files[2], files[2]]) == {files[2]: "c"}   # the same file once


@functools.cache
def _one_read() -> object:
    """The sample page read once (the batch tests below reuse it through a stub reader)."""
    from ecglens.digitize.pipeline import digitize_file

    return digitize_file(SAMPLE)[0]


def _fake_reader(monkeypatch: pytest.MonkeyPatch, interrupt_at: int | None = None) -> list[int]:
    """Replace page reading by the cached read; raise Ctrl-C on call ``interrupt_at``."""
    calls: list[int] = []
    read = _one_read()   # before the stub is in place

    def digitize_image(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if interrupt_at is not None and len(calls) == interrupt_at:
            raise KeyboardInterrupt
        return read

    monkeypatch.setattr("ecglens.digitize.pipeline.digitize_image", digitize_image)
    return calls


def _copies(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for k in range(n):
        path = folder / f"scan {k:02d}.jpg"
        path.write_bytes(SAMPLE.read_bytes())
        files.append(path)
    return files


def _manifest(outdir: Path) -> list[dict[str, str]]:
    with open(outdir / "manifest.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_interrupted_batch_resumes_to_complete_records(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    files = _copies(tmp_path / "in", 10)
    out = tmp_path / "out"
    _fake_reader(monkeypatch, interrupt_at=5)
    first = run_batch(files, out, BatchOptions())
    assert first.interrupted and first.ok == 4
    assert len(list(out.glob("*.hea"))) == 4
    assert not list(out.glob(".*.partial"))          # the page in progress left nothing
    calls = _fake_reader(monkeypatch)
    second = run_batch(files, out, BatchOptions(resume=True))
    assert (second.ok, second.skipped, second.failed, len(calls)) == (6, 4, 0, 6)
    rows = _manifest(out)
    assert sorted(r["output_stem"] for r in rows) == [f"scan_{k:02d}" for k in range(10)]
    assert all(r["status"] == "ok" for r in rows)
    for k in range(10):
        record = read_record(out / f"scan_{k:02d}.hea")
        assert record.signal.shape == (5000, 12)
        assert wfdb.rdheader(str(out / f"scan_{k:02d}")).sig_len == 5000


def test_existing_outputs_are_never_replaced_without_overwrite(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = _copies(tmp_path / "in", 1)
    out = tmp_path / "out"
    _fake_reader(monkeypatch)
    assert run_batch(files, out, BatchOptions()).ok == 1
    header = out / "scan_00.hea"
    before = header.stat().st_mtime_ns
    again = run_batch(files, out, BatchOptions())
    assert again.failed == 1 and header.stat().st_mtime_ns == before
    assert "exists" in _manifest(out)[-1]["reason"]
    time.sleep(0.01)
    assert run_batch(files, out, BatchOptions(overwrite=True)).ok == 1
    assert header.stat().st_mtime_ns != before


def test_a_write_cut_short_leaves_no_record(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C between moving the files into place: the header goes last, so no record."""
    files = _copies(tmp_path / "in", 1)
    out = tmp_path / "out"
    _fake_reader(monkeypatch)
    real_replace = os.replace

    def replace(src: str | os.PathLike, dst: str | os.PathLike) -> None:
        if str(dst).endswith(".json"):
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    assert run_batch(files, out, BatchOptions()).interrupted
    assert not list(out.glob("*.hea")) and not list(out.glob(".*.partial"))


def test_cli_batch_same_names_odd_names_and_a_bad_file(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    """Real reads through the CLI: ``A/page.jpg`` and ``B/page.jpg`` both kept, a name with a
    space, accents and dots gives a record wfdb reads back, a bad file fails alone."""
    for folder in ("A", "B"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "page.jpg").write_bytes(SAMPLE.read_bytes())
    odd = tmp_path / "Müller ECG.v2.jpg"
    odd.write_bytes(SAMPLE.read_bytes())
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    out = tmp_path / "out"
    code = main(["-q", "digitize", str(tmp_path / "A"), str(tmp_path / "B" / "page.jpg"),
                 str(odd), str(bad), "-o", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err == [f"ecglens: error: {bad}: not an image file (format not recognised)"]
    assert {p.stem for p in out.glob("*.hea")} == {"A_page", "B_page", "Muller_ECG_v2"}
    assert wfdb.rdrecord(str(out / "Muller_ECG_v2")).n_sig == 12
    rows = {r["output_stem"]: r for r in _manifest(out)}
    assert rows["bad"]["status"] == "failed" and rows["A_page"]["status"] == "ok"


def test_output_folder_that_is_a_file_is_one_line(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "out"
    target.write_text("x")
    assert main(["digitize", str(SAMPLE), "-o", str(target)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "output folder is a file" in err[0]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigint_then_resume_through_the_command_line(tmp_path: Path) -> None:
    """The 'Done when' of issue 23: a 10-file batch interrupted by Ctrl-C (SIGINT to the
    process) and run again with --resume ends with 10 complete, readable records."""
    files = _copies(tmp_path / "in", 10)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "ecglens.cli", "-q", "digitize", str(tmp_path / "in"),
           "-o", str(out)]
    # a pytest started in the background without job control inherits SIGINT ignored, and
    # so would the command: it gets the default back, as in a terminal
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("*.hea"))) < 2:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "--resume" in err
    done = len(list(out.glob("*.hea")))
    assert 2 <= done < 10
    assert not list(out.glob(".*.partial"))
    resumed = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert len(list(out.glob("*.hea"))) == len(files) == 10
    rows = _manifest(out)
    assert len(rows) == 10 and all(r["status"] == "ok" for r in rows)
    for path in out.glob("*.hea"):
        assert read_record(path).n_samples == 5000
