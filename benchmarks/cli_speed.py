"""How long `ecglens --help` takes (median of N runs, fresh interpreter each time).

    .venv/bin/python benchmarks/cli_speed.py --runs 10
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    exe = shutil.which("ecglens") or str(Path(sys.executable).parent / "ecglens")
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        subprocess.run([exe, "--help"], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    baseline = []
    for _ in range(args.runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True, capture_output=True)
        baseline.append(time.perf_counter() - start)
    print(f"ecglens --help: median {statistics.median(times) * 1000:.0f} ms over {args.runs} runs "
          f"(bare python start-up: {statistics.median(baseline) * 1000:.0f} ms)")


if __name__ == "__main__":
    main()
