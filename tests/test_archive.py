"""``ecglens batch``: an archive digitized as Dask tasks, mirrored, resumable, indexed.

Most tests run the tasks on a threaded Dask cluster in this process (reached through
``scheduler=``, as ``--scheduler`` would), so page reading can be replaced by the sample page
read once; the Ctrl-C tests run the real command with a LocalCluster of worker processes.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ecglens.app import archive
from ecglens.app.archive import ArchiveOptions, PageOutcome, run_archive, walk_sources
from ecglens.cli import main
from ecglens.core.errors import InputError, OutputError
from ecglens.core.io import read_record

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "samples" / "ptbxl_00001_scan.jpg"
MAGIC = (b"\xff\xd8", b"\x89PNG", b"II*\x00", b"MM\x00*", b"%PDF")


@functools.cache
def _one_read() -> Any:
    """The sample page read once (the stubbed reader returns it for every page)."""
    from ecglens.digitize.pipeline import digitize_file

    return digitize_file(SAMPLE)[0]


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """A threaded Dask cluster in this process: its tasks see the test's monkeypatches."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                      dashboard_address=None) as cluster:
        yield cluster.scheduler_address


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int, str]]:
    """Replace page reading: a file without an image/PDF signature fails as the real reader
    does, any other page is the sample read. Records (source, page, sha1 of the bytes read)."""
    calls: list[tuple[str, int, str]] = []
    result = _one_read()

    def digitize_page(path: Path, page: int, options: Any, source: str | None = None) -> Any:
        data = Path(path).read_bytes()
        calls.append((source or str(path), page, hashlib.sha1(data).hexdigest()))
        if not data.startswith(MAGIC):
            raise InputError("not an image file (format not recognised)", path)
        return result

    monkeypatch.setattr(archive, "digitize_page", digitize_page)
    return calls


def _tiff(path: Path, n_pages: int) -> Path:
    """A small multi-page TIFF (its pages are counted for real; reading them is stubbed)."""
    from PIL import Image

    frames = [Image.fromarray(np.full((64, 96, 3), 255 - 40 * k, np.uint8)) for k in range(n_pages)]
    path.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(path, save_all=True, append_images=frames[1:])
    return path


def _archive(root: Path) -> Path:
    """in/A/page.jpg, in/B/page.jpg (same name), in/C/scan.tiff (2 pages), in/C/bad.png."""
    for folder in ("A", "B"):
        (root / "in" / folder).mkdir(parents=True)
        shutil.copy(SAMPLE, root / "in" / folder / "page.jpg")
    _tiff(root / "in" / "C" / "scan.tiff", 2)
    (root / "in" / "C" / "bad.png").write_bytes(b"not an image")
    return root / "in"


def _manifest(out: Path) -> list[dict[str, str]]:
    with open(out / "manifest.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _headers(out: Path) -> set[str]:
    return {p.relative_to(out).with_suffix("").as_posix() for p in out.rglob("*.hea")}


# ------------------------------------------------------------------ inputs and names
def test_walk_mirrors_the_tree_with_distinct_stems(tmp_path: Path) -> None:
    src = tmp_path / "share"
    for rel in ("2001/A/page.jpg", "2001/B/page.jpg", "2002/page.jpg", "2002/page.png",
                "2002/rec.pdf", "2002/rec_p1.png", "2002/Müller ECG (2).JPG", ".hidden/x.jpg",
                "2002/notes.txt", "out/old_overlay.png"):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(b"x")
    with zipfile.ZipFile(src / "2003.zip", "w") as zf:
        zf.writestr("scans/a.jpg", b"x")
        zf.writestr("../../evil.png", b"x")
        zf.writestr("__MACOSX/scans/._a.jpg", b"x")
        zf.writestr("readme.txt", b"x")
    files = walk_sources([src], src / "out", zip_members=True)
    placed = {f.key.replace(str(src.resolve()), ""): f.output_stem(1, 1) for f in files}
    assert placed == {
        "/2001/A/page.jpg": "2001/A/page", "/2001/B/page.jpg": "2001/B/page",
        "/2002/Müller ECG (2).JPG": "2002/Muller_ECG_2",
        "/2002/page.jpg": "2002/page_jpg", "/2002/page.png": "2002/page_png",
        "/2002/rec.pdf": "2002/rec", "/2002/rec_p1.png": "2002/rec_p1_png",
        "/2003.zip::../../evil.png": "2003.zip/evil", "/2003.zip::scans/a.jpg":
            "2003.zip/scans/a"}
    assert [f.multi_page for f in files if f.key.endswith("rec.pdf")] == [True]
    # zips in folders only with zip_members; a glob and a folder given twice: listed once
    assert not any(f.member for f in walk_sources([src], tmp_path / "o"))
    twice = walk_sources([src / "2001", str(src / "2001" / "*" / "page.jpg")], tmp_path / "o")
    assert [f.output_stem(1, 1) for f in twice] == ["A/page", "B/page"]
    with pytest.raises(InputError, match="no such file"):
        walk_sources([src / "missing"], tmp_path / "o")
    with pytest.raises(InputError, match="no file matches"):
        walk_sources([str(src / "*.nothing")], tmp_path / "o")


def test_manifest_keeps_its_columns_and_survives_a_cut_row(tmp_path: Path) -> None:
    from ecglens.app.batch import MANIFEST_FIELDS, Manifest

    row = PageOutcome("/a.pdf", 1, 2, "x/a_p1", "ok", quality={"layout": "6x2"})
    manifest = Manifest(tmp_path, archive.ARCHIVE_FIELDS)
    manifest.append(row)
    with open(manifest.path, "a", encoding="utf-8") as fh:
        fh.write("/a.pdf,2,2,x/a_p2,o")                        # a crash mid-row
    again = Manifest(tmp_path, MANIFEST_FIELDS)                # the file's columns are kept
    assert again.fields == archive.ARCHIVE_FIELDS and again.pages_known("/a.pdf") == 2
    again.append(dataclasses.replace(row, page=2, output_stem="x/a_p2"))
    rows = _manifest(tmp_path)
    assert [(r["page"], r["status"], r["layout"]) for r in rows] == [
        ("1", "ok", "6x2"), ("2", "o", None), ("2", "ok", "6x2")]
    assert Manifest(tmp_path).last[("/a.pdf", 2)]["status"] == "ok"


def test_parquet_manifest_holds_each_pages_last_state(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    manifest = archive.Manifest(tmp_path, archive.ARCHIVE_FIELDS)
    for status in ("failed", "ok"):
        manifest.append(PageOutcome("/a.jpg", 1, 1, "a", status, seconds=1.5,
                                    quality={"einthoven_limb": "0.2", "layout": "3x4"}))
    target = archive.write_parquet(manifest.path)
    assert target == tmp_path / "manifest.parquet"
    frame = pd.read_parquet(target)
    assert list(frame["status"]) == ["ok"] and frame["einthoven_limb"].iloc[0] == 0.2
    assert frame["page"].dtype.kind == "i"


# ------------------------------------------------------------------ runs on a cluster
def test_archive_mirrors_resumes_retries_and_indexes(tmp_path: Path, scheduler: str,
                                                     reads: list) -> None:
    src, out = _archive(tmp_path), tmp_path / "out"
    failed: list[PageOutcome] = []
    opts = ArchiveOptions(analyze=True, classify=True)
    first = run_archive([src], out, opts, scheduler=scheduler, index=tmp_path / "index.csv",
                        on_page=lambda o: failed.extend([o] if o.status == "failed" else []))
    assert (first.ok, first.failed, first.skipped, first.interrupted) == (4, 1, 0, False)
    assert _headers(out) == {"A/page", "B/page", "C/scan_p1", "C/scan_p2"}
    for stem in _headers(out):
        assert (out / f"{stem}_analysis.json").is_file()
        assert (out / f"{stem}_classify.json").is_file()
        assert read_record(out / f"{stem}.hea").signal.shape == (5000, 12)
    assert [(Path(o.input).name, o.reason) for o in failed] == [
        ("bad.png", "not an image file (format not recognised)")]
    assert sorted((Path(s).name, p) for s, p, _ in reads) == [
        ("bad.png", 1), ("page.jpg", 1), ("page.jpg", 1), ("scan.tiff", 1), ("scan.tiff", 2)]
    rows = {r["output_stem"]: r for r in _manifest(out)}
    assert rows["C/bad"]["status"] == "failed" and rows["C/scan_p2"]["n_pages"] == "2"
    assert rows["A/page"]["layout"] == "3x4+1" and rows["A/page"]["gain_mm_mv"] == "10"
    assert 0 < float(rows["A/page"]["trace_confidence"]) <= 1
    assert float(rows["A/page"]["einthoven_limb"]) >= 0 and rows["A/page"]["leads_read"] == "12"

    with open(tmp_path / "index.csv", newline="", encoding="utf-8") as fh:
        index = {r["output_stem"]: r for r in csv.DictReader(fh)}
    assert set(index) == {"A/page", "B/page", "C/scan_p1", "C/scan_p2"}
    row = index["A/page"]
    assert 40 < float(row["hr_bpm"]) < 120 and 60 < float(row["qrs_ms"]) < 160
    assert float(row["qt_ms"]) > 0 and float(row["qtc_bazett_ms"]) > 0
    assert row["stemi_statement"].startswith("STEMI") and row["assessable"] == "1"
    assert {f"p_{c}" for c in ("NORM", "MI", "STTC", "CD", "HYP")} <= set(row)
    assert row["NORM"] in ("0", "1") and 0 <= float(row["p_NORM"]) <= 1

    reads.clear()                      # a re-run: nothing is read again
    again = run_archive([src], out, opts, scheduler=scheduler)
    assert (again.ok, again.failed, again.skipped, again.failed_before) == (0, 0, 4, 1)
    assert reads == [] and len(_manifest(out)) == 5
    retried = run_archive([src], out, ArchiveOptions(retry_failed=True), scheduler=scheduler)
    assert (retried.failed, retried.skipped, retried.failed_before) == (1, 4, 0)
    assert [Path(s).name for s, _, _ in reads] == ["bad.png"]
    assert _manifest(out)[-1]["output_stem"] == "C/bad"


def test_zip_members_are_read_from_the_zip(tmp_path: Path, scheduler: str, reads: list) -> None:
    src = tmp_path / "in"
    src.mkdir()
    with zipfile.ZipFile(src / "box.zip", "w") as zf:
        zf.write(SAMPLE, "2001/scan.jpg")
        zf.writestr("2001/broken.png", b"garbage")
    (src / "bad.zip").write_bytes(b"not a zip")
    summary = run_archive([src], tmp_path / "out", ArchiveOptions(zip_members=True),
                          scheduler=scheduler)
    assert (summary.ok, summary.failed) == (1, 2)
    assert _headers(tmp_path / "out") == {"box.zip/2001/scan"}
    digest = hashlib.sha1(SAMPLE.read_bytes()).hexdigest()
    assert (str((src / "box.zip").resolve()) + "::2001/scan.jpg", 1, digest) in reads
    reasons = {r["input"].replace(f"{src.resolve()}/", ""): r["reason"]
               for r in _manifest(tmp_path / "out") if r["status"] == "failed"}
    assert reasons == {"box.zip::2001/broken.png": "not an image file (format not recognised)",
                       "bad.zip": "cannot read zip (corrupt or not a zip file)"}
    assert not list(Path(archive._scratch_dir()).glob("ecglens-zip-*"))


def test_outputs_are_adopted_or_refused_never_replaced(tmp_path: Path, scheduler: str,
                                                      reads: list) -> None:
    """Pages written by a stopped run without a manifest row are adopted; a record from
    another input is kept and the page fails until --overwrite."""
    src, out = _archive(tmp_path), tmp_path / "out"
    (src / "C" / "bad.png").unlink()
    assert run_archive([src], out, scheduler=scheduler).ok == 4
    (out / "manifest.csv").unlink()
    reads.clear()
    adopted = run_archive([src], out, ArchiveOptions(analyze=True), scheduler=scheduler)
    assert (adopted.ok, adopted.failed, reads) == (4, 0, [])
    assert all("adopted" in r["reason"] for r in _manifest(out))
    assert (out / "A" / "page_analysis.json").is_file()   # findings added to adopted records

    foreign = out / "B" / "page.json"
    foreign.write_text(foreign.read_text().replace(str((src / "B").resolve()), "/elsewhere"))
    (out / "manifest.csv").unlink()
    before = (out / "B" / "page.hea").stat().st_mtime_ns
    refused = run_archive([src], out, scheduler=scheduler)
    assert refused.failed == 1 and (out / "B" / "page.hea").stat().st_mtime_ns == before
    assert [r["output_stem"] for r in _manifest(out) if "written from another input"
            in r["reason"]] == ["B/page"]
    replaced = run_archive([src], out, ArchiveOptions(overwrite=True), scheduler=scheduler)
    assert (replaced.ok, replaced.failed, replaced.skipped) == (4, 0, 0)
    assert (out / "B" / "page.hea").stat().st_mtime_ns != before


def _wait_idle(address: str, timeout_s: float = 60.0) -> None:
    from distributed import Client

    with Client(address) as client:
        deadline = time.time() + timeout_s
        while time.time() < deadline and any(client.processing().values()):
            time.sleep(0.1)


def test_interrupted_run_resumes_to_every_page(tmp_path: Path, scheduler: str,
                                               reads: list) -> None:
    src, out = _archive(tmp_path), tmp_path / "out"
    (src / "C" / "bad.png").unlink()
    for k in range(6):
        shutil.copy(SAMPLE, src / "A" / f"more{k}.jpg")
    seen: list[PageOutcome] = []

    def stop_after_two(outcome: PageOutcome) -> None:
        seen.append(outcome)
        if len(seen) == 2:
            raise KeyboardInterrupt

    first = run_archive([src], out, scheduler=scheduler, on_page=stop_after_two)
    assert first.interrupted and first.ok == 2
    assert not (out / archive.LOCK_NAME).exists()
    _wait_idle(scheduler)               # tasks already running (not cancellable) finish
    second = run_archive([src], out, scheduler=scheduler)
    assert not second.interrupted and second.failed == 0
    assert second.skipped == 2 and second.ok == 8
    assert len(_headers(out)) == 10 and not list(out.rglob(f"*{archive.PARTIAL_SUFFIX}"))


def test_cli_scheduler_option_and_one_line_errors(tmp_path: Path, scheduler: str, reads: list,
                                                  capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    src, out = _archive(tmp_path), tmp_path / "out"
    code = main(["-q", "batch", str(src), "-o", str(out), "--scheduler", scheduler,
                 "--index", str(tmp_path / "i.csv")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err == [f"ecglens: error: {(src / 'C' / 'bad.png').resolve()}: not an image file "
                   "(format not recognised)"]
    assert len(_headers(out)) == 4 and (tmp_path / "i.csv").is_file()
    assert main(["batch", str(src), "-o", str(out), "--scheduler", scheduler]) == 1
    err = capsys.readouterr().err.strip().splitlines()     # progress, then the summary
    assert err[-5].startswith("pages 5/5 [####################] ")
    assert err[-5].endswith("0 failed, 4 done before, 1 failed before")
    assert err[-4].startswith("0 page(s) read, 0 failed, 4 complete before, 1 failed before")
    assert err[-1] == f"manifest: {(out / 'manifest.csv').resolve()}"
    monkeypatch.setattr(archive, "CONNECT_TIMEOUT_S", 2.0)
    assert main(["batch", str(src), "-o", str(out), "--scheduler", "tcp://127.0.0.1:9"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in err[0]
    assert main(["batch", str(tmp_path / "nothing"), "-o", str(out)]) == 1
    assert "no such file or folder" in capsys.readouterr().err


def test_a_second_run_on_the_same_output_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (out / archive.LOCK_NAME).write_text(f"{socket.gethostname()} {proc.pid}")
        with pytest.raises(OutputError, match="another ecglens batch"):
            run_archive([SAMPLE], out, workers=1)
    finally:
        proc.kill()
        proc.wait()
    with archive._output_lock(out):    # the lock of a process that ended is taken over
        assert (out / archive.LOCK_NAME).read_text().endswith(f" {os.getpid()}")


# ------------------------------------------------------------------ the real command
def _mixed_archive(root: Path, ludb: Path, n_images: int, pdf_pages: int, tiff_pages: int,
                   dpi: float = 100.0) -> tuple[Path, int]:
    """Pages rendered from LUDB records as JPEG/PNG in nested folders, a multi-page PDF, a
    multi-page TIFF and one broken JPEG; returns the folder and the number of good pages."""
    from PIL import Image

    from ecglens.analysis.ludb import read_ludb_record
    from ecglens.synth.render import RenderSettings, render_page, save_pdf

    layouts = ("3x4+1", "6x2", "3x4")
    records = [read_ludb_record(ludb / "data" / str(k + 1)) for k in range(12)]
    pages = [render_page(records[k % 12], RenderSettings(dpi=dpi, layout=layouts[k % 3]))
             for k in range(max(n_images, pdf_pages, tiff_pages))]
    for k in range(n_images):
        folder = root / f"site{k % 2}" / f"y{k % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        kind = ("jpg", "png")[k % 2]
        Image.fromarray(pages[k].image).save(folder / f"ecg{k:03d}.{kind}", dpi=(dpi, dpi),
                                             **({"quality": 90} if kind == "jpg" else {}))
    save_pdf(pages[:pdf_pages], root / "site0" / "bundle.pdf")
    frames = [Image.fromarray(p.image) for p in pages[:tiff_pages]]
    frames[0].save(root / "site1" / "scans.tiff", save_all=True, append_images=frames[1:],
                   dpi=(dpi, dpi))
    for truth in root.rglob("*_truth.*"):
        truth.unlink()
    (root / "site1" / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    return root, n_images + pdf_pages + tiff_pages


RUN_ERRORS = ("exists", "cannot write", "worker", "Error:")
"""Reasons that would come from the run (outputs, workers, a bug), not from a page."""


def _sigint_then_resume(tmp_path: Path, ludb: Path, n_images: int, pdf_pages: int,
                        tiff_pages: int, stop_after: int) -> None:
    """Interrupt a LocalCluster run by SIGINT after ``stop_after`` records, run it again: every
    page ends with exactly one manifest row (none read twice, none lost), the records are
    whole, nothing half-written stays, only pages fail (the broken file, and at most 2 % that
    the digitizer itself cannot read)."""
    src, n_good = _mixed_archive(tmp_path / "in", ludb, n_images, pdf_pages, tiff_pages)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "ecglens.cli", "batch", str(src), "-o", str(out),
           "--workers", "2"]
    # a pytest started in the background without job control inherits SIGINT ignored, and
    # so would the command: it gets the default back, as in a terminal
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None and len(_headers(out)) < stop_after:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "run the same command again" in err
    done = _headers(out)
    assert stop_after <= len(done) < n_good
    assert not list(out.rglob(f"*{archive.PARTIAL_SUFFIX}"))
    assert not (out / archive.LOCK_NAME).exists()
    for stem in done:                  # every record there is whole
        assert read_record(out / f"{stem}.hea").signal.shape[1] == 12
    resumed = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    assert resumed.returncode == 1, resumed.stderr   # the broken file (failed now or before)
    assert "Traceback" not in resumed.stderr
    rows = _manifest(out)
    pages = [(r["input"], r["page"]) for r in rows]
    assert len(pages) == len(set(pages)) == n_good + 1          # one row per page, each once
    failed = {Path(r["input"]).name: r["reason"] for r in rows if r["status"] == "failed"}
    assert failed.pop("broken.jpg").startswith(("not an image file", "cannot open image"))
    assert len(failed) <= 0.02 * n_good, failed
    assert not [r for r in failed.values() if any(e in r for e in RUN_ERRORS)], failed
    errors = [line for line in (err + resumed.stderr).splitlines() if "error:" in line]
    assert len(errors) == 1 + len(failed) and any("broken.jpg" in e for e in errors)
    ok = {r["output_stem"] for r in rows if r["status"] == "ok"}
    assert _headers(out) == ok and len(ok) == n_good - len(failed)
    assert (out / "site0" / "bundle_p2.hea").is_file()
    assert any(stem.startswith("site1/y") for stem in ok)
    assert any(stem.startswith("site1/scans_p") for stem in ok)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigint_then_rerun_through_the_command_line(tmp_path: Path, shared_data: Path) -> None:
    """Ctrl-C (SIGINT to the process) on a LocalCluster run of a small mixed archive: the
    cluster closes, nothing half-written stays, a re-run completes every page."""
    _sigint_then_resume(tmp_path, shared_data / "ludb", n_images=4, pdf_pages=2, tiff_pages=2,
                        stop_after=2)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_200_page_mixed_archive_resumes_after_sigint(tmp_path: Path, shared_data: Path) -> None:
    """Issue 24: 200 pages (JPEG/PNG in folders, a 20-page PDF, a 20-page TIFF) interrupted by
    SIGINT and resumed to 200 complete records (minutes on two cores)."""
    _sigint_then_resume(tmp_path, shared_data / "ludb", n_images=160, pdf_pages=20,
                        tiff_pages=20, stop_after=40)
