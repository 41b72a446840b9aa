"""Peak memory of the CLI on long inputs: a many-page PDF and an hour-long CSV.

    python benchmarks/memory_check.py --pages 30 --out benchmarks/out/memory

1. ``ecglens digitize`` of a ``--pages``-page PDF (LUDB records drawn by the renderer at
   300 dpi, 3x4+1): pages are rasterised and read one at a time, so the peak should not grow
   with the page count (a 3-page PDF is timed too for the ratio).
2. ``ecglens analyze`` and ``ecglens classify`` of a one-hour 12-lead CSV at 500 Hz
   (a LUDB record repeated): only the ``--seconds`` window (default 300 s) is parsed and kept.

Each command runs in its own process; its peak RSS is the child's ``ru_maxrss``. Targets
(issue 23): ≤ 1.5 GB for the 30-page PDF, ≤ 1 GB for analyze/classify of the long recording.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("ECGLENS_SHARED_DATA", REPO.parent / "shared" / "data"))


def _peak_rss_mb(cmd: list[str]) -> tuple[float, float, int]:
    """Run ``cmd`` in a child process; its peak RSS (MB), wall seconds and exit code."""
    code = ("import resource, subprocess, sys, json, time\n"
            "t = time.perf_counter()\n"
            "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
            "print(json.dumps([resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,"
            " time.perf_counter() - t, rc]))\n")
    out = subprocess.run([sys.executable, "-c", code, *cmd], capture_output=True, text=True,
                         check=True)
    rss, wall, rc = json.loads(out.stdout.strip().splitlines()[-1])
    return float(rss), float(wall), int(rc)


def _make_pdf(n_pages: int, path: Path) -> None:
    from ecglens.analysis.ludb import read_ludb_record
    from ecglens.synth.render import RenderSettings, render_page, save_pdf

    pages = []
    for k in range(n_pages):
        record = read_ludb_record(DATA / "ludb" / "data" / str(1 + k % 200))
        pages.append(render_page(record, RenderSettings(layout="3x4+1", dpi=300.0)))
    save_pdf(pages, path)


def _make_long_csv(hours: float, path: Path) -> None:
    from ecglens.analysis.ludb import read_ludb_record

    record = read_ludb_record(DATA / "ludb" / "data" / "1").standard12()
    n = round(hours * 3600 * record.fs)
    reps = int(np.ceil(n / record.n_samples))
    signal = np.tile(record.signal, (reps, 1))[:n]
    with open(path, "w") as fh:
        fh.write("time_s," + ",".join(record.leads) + "\n")
        step = 100_000
        for a in range(0, n, step):
            block = signal[a:a + step]
            t = (np.arange(a, a + len(block)) / record.fs)[:, None]
            np.savetxt(fh, np.hstack([t, block]), fmt="%.4f", delimiter=",")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=30)
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "memory"))
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ecglens = [sys.executable, "-m", "ecglens.cli"]
    report: dict[str, object] = {}
    for n in (3, args.pages):
        pdf = out / f"pages{n}.pdf"
        if not pdf.exists():
            _make_pdf(n, pdf)
        rss, wall, rc = _peak_rss_mb([*ecglens, "-q", "digitize", str(pdf), "-o",
                                      str(out / f"read{n}_{time.time_ns()}")])
        report[f"digitize_pdf_{n}_pages"] = {"peak_rss_mb": round(rss), "seconds": round(wall),
                                             "exit": rc}
        print(f"digitize {n}-page PDF: peak RSS {rss:.0f} MB, {wall:.0f} s, exit {rc}",
              flush=True)
    csv_path = out / f"long_{args.hours:g}h.csv"
    if not csv_path.exists():
        _make_long_csv(args.hours, csv_path)
    for command in ("analyze", "classify"):
        rss, wall, rc = _peak_rss_mb([*ecglens, "-q", command, str(csv_path), "--json"])
        report[f"{command}_csv_{args.hours:g}h"] = {"peak_rss_mb": round(rss),
                                                   "seconds": round(wall), "exit": rc}
        print(f"{command} {args.hours:g}-hour CSV: peak RSS {rss:.0f} MB, {wall:.0f} s, exit {rc}",
              flush=True)
    (out / "memory.json").write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
