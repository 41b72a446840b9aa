"""``ecglens batch`` on a synthetic archive: pages/s, scaling, memory, an external cluster.

Pages are rendered from LUDB records (``../shared/data/ludb``) with the ecglens renderer:
single-page PNG and JPEG in nested folders, 10-page PDFs and 50-page TIFFs. Outputs go to
``benchmarks/out/archive/`` (git-ignored); each measurement writes a JSON beside them with the
load average seen before and after it (the machine may be shared).

    python benchmarks/archive_bench.py make --pages 1000 --dpi 100
    python benchmarks/archive_bench.py scaling --pages 30 --repeat 2   # 1 vs 2 workers
    python benchmarks/archive_bench.py full --workers 2                # the whole archive
    python benchmarks/archive_bench.py external                        # dask scheduler/worker
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out" / "archive"
LUDB = REPO.parent / "shared" / "data" / "ludb" / "data"
LAYOUTS = ("3x4+1", "6x2", "3x4")
PDF_PAGES = 10
"""Pages per multi-page PDF."""
TIFF_PAGES = 50
"""Pages per multi-page TIFF."""
SHARE = {"pdf": 0.2, "tiff": 0.1}
"""Fractions of the pages in PDFs and TIFFs; the rest are PNG and JPEG files, half each."""


def _render(job: tuple[int, float]) -> Any:
    from ecglens.analysis.ludb import read_ludb_record
    from ecglens.synth.render import RenderSettings, render_page

    k, dpi = job
    record = read_ludb_record(LUDB / str(k % 200 + 1))
    return render_page(record, RenderSettings(dpi=dpi, layout=LAYOUTS[k % len(LAYOUTS)]))


def make(n_pages: int, dpi: float, folder: Path) -> dict[str, Any]:
    """Render the archive into ``folder`` (PNG/JPEG in site/year folders, PDFs, TIFFs)."""
    from PIL import Image

    from ecglens.synth.render import save_pdf

    if folder.exists():
        shutil.rmtree(folder)
    n_pdf = round(n_pages * SHARE["pdf"] / PDF_PAGES)
    n_tiff = max(1, round(n_pages * SHARE["tiff"] / TIFF_PAGES))
    n_single = n_pages - n_pdf * PDF_PAGES - n_tiff * TIFF_PAGES
    t0 = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pages = pool.imap(_render, [(k, dpi) for k in range(n_pages)], chunksize=8)
        counts = {"png": 0, "jpg": 0, "pdf_files": 0, "tiff_files": 0}
        for k in range(n_single):
            page = next(pages)
            kind = ("png", "jpg")[k % 2]
            path = folder / f"site{k % 3}" / str(2001 + k % 7) / f"ecg_{k:05d}.{kind}"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(page.image).save(path, dpi=(dpi, dpi),
                                             **({"quality": 90} if kind == "jpg" else {}))
            counts[kind] += 1
        for k in range(n_pdf):
            path = folder / f"site{k % 3}" / "pdf" / f"bundle_{k:03d}.pdf"
            path.parent.mkdir(parents=True, exist_ok=True)
            save_pdf([next(pages) for _ in range(PDF_PAGES)], path)
            counts["pdf_files"] += 1
        for k in range(n_tiff):
            frames = [Image.fromarray(next(pages).image) for _ in range(TIFF_PAGES)]
            path = folder / "tiff" / f"scans_{k:02d}.tiff"
            path.parent.mkdir(parents=True, exist_ok=True)
            frames[0].save(path, save_all=True, append_images=frames[1:], dpi=(dpi, dpi),
                           compression="tiff_lzw")
            counts["tiff_files"] += 1
    for truth in folder.rglob("*_truth.*"):
        truth.unlink()
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    return {"pages": n_pages, "dpi": dpi, **counts, "mb": round(size / 2**20, 1),
            "render_s": round(time.perf_counter() - t0, 1)}


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


class _TreeCpu:
    """CPU seconds used by this process and all its descendants (the local workers, their
    OCR helpers), sampled every second: with other jobs on the machine, ``cpu_s / wall_s``
    says how many cores the run actually got."""

    def __init__(self) -> None:
        import threading

        import psutil

        self.me = psutil.Process()
        self.used: dict[int, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> None:
        import psutil

        for proc in [self.me, *self.me.children(recursive=True)]:
            try:
                t = proc.cpu_times()
                self.used[proc.pid] = t.user + t.system
            except psutil.Error:
                continue

    def _loop(self) -> None:
        while not self.stop.wait(1.0):
            self._sample()

    def __enter__(self) -> _TreeCpu:
        self._sample()
        self.start = sum(self.used.values())
        self.used.clear()
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self._sample()

    @property
    def cpu_s(self) -> float:
        return sum(self.used.values()) - self.start


def _run(sources: list[str], outdir: Path, workers: int | None = None,
         scheduler: str | None = None) -> dict[str, Any]:
    """One archive run; end-to-end and steady-state pages/s (after each worker's first page:
    the imports and the first read are a fixed start-up cost)."""
    from ecglens.app.archive import run_archive

    if outdir.exists():
        shutil.rmtree(outdir)
    stamps: list[float] = []
    load_before = _load()
    t0 = time.perf_counter()
    with _TreeCpu() as cpu:
        summary = run_archive(sources, outdir, workers=workers, scheduler=scheduler,
                              on_page=lambda o: stamps.append(time.perf_counter()))
    wall = time.perf_counter() - t0
    n_workers = summary.workers
    steady = float("nan")
    if len(stamps) > n_workers + 1:
        steady = (len(stamps) - n_workers) / (stamps[-1] - stamps[n_workers - 1])
    return {"workers": n_workers, "pages_ok": summary.ok, "pages_failed": summary.failed,
            "wall_s": round(wall, 1), "startup_s": round(summary.startup_s, 1),
            "pages_per_s_end_to_end": round(summary.pages_per_s, 3),
            "pages_per_s_steady": round(steady, 3),
            "worker_peak_rss_mb": [round(m) for m in summary.worker_peak_rss_mb],
            "cores_obtained": round(cpu.cpu_s / wall, 2) if scheduler is None else None,
            "pages_per_cpu_s": round(summary.ok / cpu.cpu_s, 3) if scheduler is None else None,
            "load_before": load_before, "load_after": _load()}


def scaling(n_pages: int, repeat: int, archive: Path) -> dict[str, Any]:
    """The same ``n_pages`` single-page files on 1 and on 2 workers, alternating, ``repeat``
    times; the ratio of each pair is from the same run of this script."""
    files = sorted(str(p) for p in archive.rglob("*.png"))[:n_pages]
    pairs = []
    for r in range(repeat):
        one = _run(files, OUT / "scaling_1", workers=1)
        two = _run(files, OUT / "scaling_2", workers=2)
        pairs.append({"one": one, "two": two,
                      "speedup_steady": round(two["pages_per_s_steady"]
                                              / one["pages_per_s_steady"], 2),
                      "speedup_end_to_end": round(two["pages_per_s_end_to_end"]
                                                  / one["pages_per_s_end_to_end"], 2),
                      # pages per CPU-second, 2 workers vs 1: the parallel overhead whatever
                      # share of the cores other jobs left (1.0 = none)
                      "cpu_efficiency": round(two["pages_per_cpu_s"] / one["pages_per_cpu_s"],
                                              2)})
        print(json.dumps(pairs[-1]), flush=True)
        if r + 1 < repeat:
            time.sleep(5)
    return {"pages": len(files), "pairs": pairs}


def external(archive: Path, n_workers: int) -> dict[str, Any]:
    """The archive through ``dask scheduler`` + ``n_workers`` ``dask worker`` processes (one
    thread each), as on machines sharing the storage."""
    dask = Path(sys.executable).with_name("dask")
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory() as tmp:
        scheduler_file = Path(tmp) / "scheduler.json"
        log = open(Path(tmp) / "cluster.log", "w")  # noqa: SIM115 closed below
        try:
            procs.append(subprocess.Popen(
                [str(dask), "scheduler", "--host", "127.0.0.1", "--port", "0",
                 "--no-dashboard", "--scheduler-file", str(scheduler_file)],
                stdout=log, stderr=log))
            deadline = time.time() + 60
            while not scheduler_file.exists() and time.time() < deadline:
                time.sleep(0.2)
            address = json.loads(scheduler_file.read_text())["address"]
            for _ in range(n_workers):
                procs.append(subprocess.Popen(
                    [str(dask), "worker", address, "--nthreads", "1", "--nworkers", "1",
                     "--no-dashboard"], stdout=log, stderr=log))
            _wait_for_workers(address, n_workers)
            result = _run([str(archive)], OUT / "external_out", scheduler=address)
            result["scheduler"] = address
            return result
        finally:
            for proc in reversed(procs):
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
            log.close()


def _wait_for_workers(address: str, n: int, timeout_s: float = 120.0) -> None:
    from distributed import Client

    with Client(address, timeout=30) as client:
        client.wait_for_workers(n, timeout=timeout_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("make")
    p.add_argument("--pages", type=int, default=1000)
    p.add_argument("--dpi", type=float, default=100.0)
    p = sub.add_parser("scaling")
    p.add_argument("--pages", type=int, default=30)
    p.add_argument("--repeat", type=int, default=2)
    p = sub.add_parser("full")
    p.add_argument("--workers", type=int, default=2)
    p = sub.add_parser("external")
    p.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    archive = OUT / "in"
    OUT.mkdir(parents=True, exist_ok=True)
    if args.mode == "make":
        result = make(args.pages, args.dpi, archive)
    elif args.mode == "scaling":
        result = scaling(args.pages, args.repeat, archive)
    elif args.mode == "full":
        result = _run([str(archive)], OUT / "full_out", workers=args.workers)
    else:
        result = external(archive, args.workers)
    result = {"mode": args.mode, "cpu_count": os.cpu_count(), **result}
    (OUT / f"{args.mode}.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
