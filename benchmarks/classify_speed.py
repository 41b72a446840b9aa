"""Inference time per record on one CPU core: torch vs ONNX Runtime, and their agreement.

Usage::

    python benchmarks/classify_speed.py --n 200 --out benchmarks/out/classify_speed.json

Batch size 1 (one record at a time, as the CLI does), one intra-op thread for both engines,
inputs = the first N PTB-XL fold-9 records already normalised; the preprocessing (resample
+ normalise) is timed separately on the same records. Reports median and 90th percentile ms.
The machine is shared: note the load average printed with the result.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "ptbxl"))
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "classify_speed.json"))
    a = p.parse_args(argv)

    import torch

    from ecglens.classify.data import load_ptbxl, normalize
    from ecglens.classify.export_onnx import onnx_session
    from ecglens.classify.predict import load_model, record_windows
    from ecglens.core.record import STANDARD_LEADS, ECGRecord

    torch.set_num_threads(1)
    data = load_ptbxl(a.data)
    fold9 = data.subset(data.folds == 9)
    signals = fold9.signals[:a.n]
    records = [ECGRecord(s, 100.0, STANDARD_LEADS) for s in signals]
    t_pre = []
    for rec in records:
        t0 = time.perf_counter()
        record_windows(rec)
        t_pre.append(time.perf_counter() - t0)
    inputs = np.stack([normalize(s) for s in signals])
    model = load_model().model
    sess = onnx_session()
    with torch.no_grad():
        for x in inputs[:10]:                       # warm-up
            model(torch.from_numpy(x[None]))
            sess.run(["probabilities"], {"input": x[None]})
        t_torch, t_onnx, diffs = [], [], []
        for x in inputs:
            t0 = time.perf_counter()
            pt = torch.sigmoid(model(torch.from_numpy(x[None]))).numpy()
            t1 = time.perf_counter()
            po = sess.run(["probabilities"], {"input": x[None]})[0]
            t2 = time.perf_counter()
            t_torch.append(t1 - t0)
            t_onnx.append(t2 - t1)
            diffs.append(float(np.max(np.abs(pt - po))))

    def stats(v: list[float]) -> dict[str, float]:
        ms = 1000 * np.asarray(v)
        return {"median_ms": round(float(np.median(ms)), 3),
                "p90_ms": round(float(np.percentile(ms, 90)), 3)}

    result = {
        "n_records": len(inputs), "threads": 1, "batch": 1,
        "preprocess": stats(t_pre), "torch": stats(t_torch), "onnx": stats(t_onnx),
        "onnx_max_abs_diff": max(diffs), "load_average_1_5_15": os.getloadavg(),
        "cpu": _cpu_name(), "torch_version": torch.__version__,
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    sys.exit(main())
