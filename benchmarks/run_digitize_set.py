"""Digitize a benchmark set (from ``benchmarks/make_set.py``) and score it.

Usage::

    python benchmarks/make_set.py --out benchmarks/out/reading_set --n 240 --profiles clean scan
    python benchmarks/run_digitize_set.py benchmarks/out/reading_set \
        --out benchmarks/out/reading_read
    python benchmarks/run_digitize_set.py SET --out READ --only p0001 p0002 --jobs 2

Writes ``<id>.hea/.dat/.json`` (and overlays with ``--overlay``) into ``--out``, then scores the
folder with :func:`ecglens.score.scoring.score_folder` and writes ``score.md`` / ``score.json``
there (the per-layout/profile table and the worst ten pages).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import logging
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _one(image: str, out: str, overlay: bool) -> tuple[str, str | None, float]:
    import os

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from ecglens.core.errors import EcglensError
    from ecglens.digitize.pipeline import digitize_file, write_outputs

    start = time.perf_counter()
    try:
        for result in digitize_file(image):
            write_outputs(result, out, overlay=overlay, overwrite=True)
        return image, None, time.perf_counter() - start
    except EcglensError as exc:
        return image, str(exc), time.perf_counter() - start


def _score_chunk(truth_dir: str, read_dir: str) -> list[dict]:
    from ecglens.score.scoring import score_folder

    return score_folder(truth_dir, read_dir)["pages"]


def score_parallel(set_dir: Path, read_dir: Path, jobs: int, only: set[str] | None) -> dict:
    """:func:`ecglens.score.scoring.score_folder`, split over ``jobs`` processes (same scores)."""
    import tempfile

    from ecglens.score.scoring import _aggregate

    ids = sorted(p.name[: -len("_truth.hea")] for p in set_dir.glob("*_truth.hea"))
    if only:
        ids = [i for i in ids if i in only]
    n = max(1, jobs)
    with tempfile.TemporaryDirectory() as tmp:
        chunks = []
        for k in range(n):
            d = Path(tmp) / f"c{k}"
            d.mkdir()
            for page in ids[k::n]:
                for suffix in ("_truth.hea", "_truth.dat", "_truth.json"):
                    src = set_dir / f"{page}{suffix}"
                    if src.exists():
                        (d / src.name).symlink_to(src.resolve())
            if any(d.iterdir()):
                chunks.append(str(d))
        with concurrent.futures.ProcessPoolExecutor(max_workers=n) as pool:
            parts = list(pool.map(_score_chunk, chunks, [str(read_dir)] * len(chunks)))
    pages = sorted((p for part in parts for p in part), key=lambda p: p["id"])
    return {"pages": pages, "groups": _aggregate(pages), "shift": True}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("set_dir")
    parser.add_argument("--out", required=True)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--only", nargs="*", default=None, help="page ids to run")
    parser.add_argument("--overlay", action="store_true")
    parser.add_argument("--no-score", action="store_true")
    parser.add_argument("--score-only", action="store_true",
                        help="only score the records already in --out")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    set_dir, out = Path(args.set_dir), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    images = sorted(p for p in set_dir.iterdir() if p.suffix.lower() in {".png", ".jpg", ".pdf"}
                    and not p.stem.endswith("_overlay"))
    if args.only:
        images = [p for p in images if p.stem in set(args.only)]
    errors = {}
    seconds = {}
    start = time.perf_counter()
    if args.score_only:
        images = []
    with concurrent.futures.ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(_one, str(p), str(out), args.overlay) for p in images]
        for k, fut in enumerate(concurrent.futures.as_completed(futures), start=1):
            image, error, sec = fut.result()
            seconds[Path(image).stem] = sec
            if error:
                errors[Path(image).stem] = error
            sys.stderr.write(f"\r{k}/{len(images)} pages  {time.perf_counter() - start:6.0f} s")
    sys.stderr.write("\n")
    if not args.score_only:
        (out / "run.json").write_text(json.dumps({"errors": errors, "seconds": seconds},
                                                 indent=1))
    for page, error in sorted(errors.items()):
        print(f"error {page}: {error}")
    if args.no_score:
        return 0
    from ecglens.score.scoring import markdown_table

    result = score_parallel(set_dir, out, args.jobs,
                            set(args.only) if args.only else None)
    table = markdown_table(result)
    print(table)
    (out / "score.md").write_text(table)
    (out / "score.json").write_text(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
