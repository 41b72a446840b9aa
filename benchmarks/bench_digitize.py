"""Digitizer speed and memory: seconds per page per stage on one core, at 200 and 300 dpi.

Usage::

    python benchmarks/bench_digitize.py                       # 3 pages per dpi, LUDB records
    python benchmarks/bench_digitize.py --pages 5 --out benchmarks/out/bench_digitize.json
    git worktree add /tmp/ecglens_ref <commit>        # an older version to compare with
    python benchmarks/bench_digitize.py --dpi 300 --compare /tmp/ecglens_ref --rounds 3

Each page is rendered (3x4+1, red grid) and saved as PNG; then, in this process, limited to one
thread, ``digitize_file`` runs on it once to warm imports and then ``--pages`` times for the
timing. Reported per dpi: the median seconds of every stage (load = image decode, grid,
deskew, ink, rows, calibration, trace, text/OCR, layout, convert), the total, its ratio to
the image-decode time, and the peak resident memory of the process (``ru_maxrss``).

``--compare DIR`` times another checkout of ecglens (``DIR``) and this one in turns, each
round in fresh processes on the same pages, and reports each round's seconds per page and the
ratio this/other: on a shared, noisy machine the ratio within one run says more than two
totals taken at different times.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=3)
    parser.add_argument("--dpi", type=float, nargs="+", default=[200.0, 300.0])
    parser.add_argument("--out", default="benchmarks/out/bench_digitize.json")
    parser.add_argument("--no-ocr", action="store_true", help="time without tesseract")
    parser.add_argument("--compare", metavar="PYTHON", help="the Python of another ecglens "
                        "installation (its venv's bin/python) to time in turns with this one")
    parser.add_argument("--rounds", type=int, default=3, help="turns of --compare")
    args = parser.parse_args(argv)
    if args.compare:
        return _compare(args)

    import cv2
    import numpy as np

    cv2.setNumThreads(1)
    from ecglens.core.io import read_record
    from ecglens.digitize.pipeline import digitize_file
    from ecglens.synth.render import RenderSettings, render_page, save_page

    data = Path(__file__).resolve().parents[2] / "shared" / "data" / "ludb" / "data"
    work = Path(__file__).resolve().parents[1] / "benchmarks" / "out" / "bench_digitize"
    work.mkdir(parents=True, exist_ok=True)
    report: dict[str, object] = {"pages_per_dpi": args.pages, "ocr": not args.no_ocr}
    for dpi in args.dpi:
        files = []
        for k in range(args.pages + 1):
            record = read_record(data / str(10 + k))
            page = render_page(record, RenderSettings(layout="3x4+1", dpi=dpi, grid="red"))
            files.append(save_page(page, work / f"p{int(dpi)}_{k}.png"))
        digitize_file(files[0], use_ocr=not args.no_ocr)  # warm-up: imports, tesseract start
        stages: dict[str, list[float]] = {}
        totals = []
        for path in files[1:]:
            start = time.perf_counter()
            result = digitize_file(path, use_ocr=not args.no_ocr)[0]
            totals.append(time.perf_counter() - start)
            for name, seconds in result.timings_s.items():
                stages.setdefault(name, []).append(seconds)
        med = {name: round(float(np.median(v)), 4) for name, v in stages.items()}
        total = float(np.median(totals))
        report[f"{int(dpi)}dpi"] = {
            "image_px": list(result.deskew.image.shape[:2]),
            "stages_s": med, "total_s": round(total, 3),
            "ratio_to_decode": round(total / max(med.get("load", 1e-9), 1e-9), 1),
        }
        print(f"{int(dpi)} dpi: total {total:.2f} s/page; " + ", ".join(
            f"{k} {v:.3f}" for k, v in med.items()), flush=True)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    report["peak_rss_mib"] = round(peak_mib, 1)
    print(f"peak RSS {peak_mib:.0f} MiB")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    return 0


def _compare(args: argparse.Namespace) -> int:
    """Time the installation of ``args.compare`` (a Python) and this one in turns (fresh
    processes each round)."""
    import subprocess

    here = Path(__file__).resolve()
    out_dir = here.parents[1] / "benchmarks" / "out" / "bench_compare"
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for round_k in range(args.rounds):
        totals = {}
        for name, python in (("other", args.compare), ("this", sys.executable)):
            out = out_dir / f"{name}_{round_k}.json"
            cmd = [python, str(here), "--pages", str(args.pages),
                   "--out", str(out), "--dpi", *[str(d) for d in args.dpi]]
            if args.no_ocr:
                cmd.append("--no-ocr")
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            totals[name] = json.loads(out.read_text())
        for dpi in args.dpi:
            key = f"{int(dpi)}dpi"
            other, this = totals["other"][key]["total_s"], totals["this"][key]["total_s"]
            rows.append((round_k, key, other, this, this / other))
            print(f"round {round_k + 1} {key}: other {other:.3f} s/page, this {this:.3f} "
                  f"s/page, ratio {this / other:.3f}", flush=True)
    import numpy as np

    for dpi in args.dpi:
        key = f"{int(dpi)}dpi"
        ratios = [r[4] for r in rows if r[1] == key]
        print(f"{key}: median ratio this/other {float(np.median(ratios)):.3f} over "
              f"{len(ratios)} rounds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
