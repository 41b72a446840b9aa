"""Trace segmentation in the ink stage: read each page with the switch off and on, same process.

Usage::

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/seg_ink_ab.py eik --part tune \
        --every 4 --out benchmarks/out/seg_ink/eik_tune
    ... own --own-set benchmarks/out/seed0 --every 8 --out benchmarks/out/seg_ink/own
    ... photos --out benchmarks/out/seg_ink/photos
    ... eik --part val --out benchmarks/out/seg_ink/eik_val --variants off gate

Every page is read once per variant (``off`` and the :data:`digitize.seg_ink.VARIANTS`),
one after the other in this one process, so every variant runs the same code even while the
working tree changes. Reads go to ``<out>/<variant>/read``, scores (``benchmarks/families.py``'s
``score_one``) to ``<out>/<variant>/scores``; ``<out>/summary.md`` has the table.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


def _families() -> Any:
    spec = importlib.util.spec_from_file_location("families", REPO / "benchmarks" / "families.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["families"] = module
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("family", choices=("eik", "own", "photos"))
    parser.add_argument("--part", default="tune", choices=("tune", "val"))
    parser.add_argument("--every", type=int, default=1)
    parser.add_argument("--own-set", default=str(REPO / "benchmarks" / "out" / "seed0"))
    parser.add_argument("--variants", nargs="+", default=["off", "gate", "gate_max"])
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    fam = _families()
    from ecglens.digitize.seg_ink import TRACE_MODEL_ENV
    from ecglens.score.scoring import kaggle_set_db

    if args.family == "eik":
        pages = fam.eik_pages(DATA / "ecg_image_kit" / "synthetic", args.part)[:: args.every]
    elif args.family == "own":
        pages = fam.own_pages(Path(args.own_set), args.every)
    else:
        pages = fam.photo_pages(DATA / "real_photos" / "paper2pulse")[:: args.every]
    out = Path(args.out)
    rows: dict[str, list[dict[str, Any]]] = {v: [] for v in args.variants}
    refused: dict[str, int] = dict.fromkeys(args.variants, 0)
    seconds: dict[str, list[float]] = {v: [] for v in args.variants}
    start = time.perf_counter()
    for k, page in enumerate(pages, start=1):
        line = []
        for variant in args.variants:
            os.environ[TRACE_MODEL_ENV] = "0" if variant == "off" else variant
            read_dir = out / variant / "read"
            if fam.is_done(read_dir, page.stem):
                status = "refused" if (read_dir / f"{page.stem}.refused.json").exists() else "ok"
            else:
                _, status, _, sec = fam.digitize_one(page.image, str(read_dir), page.stem, False)
                seconds[variant].append(sec)
            refused[variant] += status != "ok"
            snr = float("nan")
            if page.truth:
                result = fam.score_one(page, str(read_dir))
                rows[variant].append(result)
                snr = result["mean_snr_db"]
            line.append(f"{variant} {status} {snr:.2f}")
        print(f"{k}/{len(pages)} {page.stem}: {' | '.join(line)} "
              f"({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
    summary = []
    for variant in args.variants:
        scored = rows[variant]
        snrs = [r["mean_snr_db"] if math.isfinite(r["mean_snr_db"]) else 0.0 for r in scored]
        summary.append({
            "variant": variant, "pages": len(pages), "with_truth": len(scored),
            "refused": refused[variant],
            "snr_2024_db": sum(snrs) / len(snrs) if snrs else float("nan"),
            "kaggle_2025_db": kaggle_set_db(scored),
            "median_s": sorted(seconds[variant])[len(seconds[variant]) // 2]
            if seconds[variant] else float("nan"),
        })
    lines = ["| variant | pages | with truth | refused | 2024 SNR dB | Kaggle-2025 dB | "
             "median s/page |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {s['variant']} | {s['pages']} | {s['with_truth']} | {s['refused']} | "
              f"{s['snr_2024_db']:.2f} | {s['kaggle_2025_db']:.2f} | {s['median_s']:.2f} |"
              for s in summary]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
