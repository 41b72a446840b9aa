"""Accuracy and speed of the geometry stages (grid, deskew, ink) on renders with known truth.

Usage::

    .venv/bin/python benchmarks/bench_geometry.py --set benchmarks/out/set \
        --out benchmarks/out/geometry [--photos 20] [--limit N]

Reads ``<set>/index.csv`` and each ``<id>.png`` + ``<id>_truth.json`` (written by
``benchmarks/make_set.py``); optionally renders ``--photos`` extra pages with the ``photo``
distortion profile. Writes ``<out>/geometry.csv`` (one row per page) and prints error
statistics per profile and grid colour, and CPU time per stage (single thread).

Truth: the renderer's geometry gives px/mm per axis and the rotation at the grid centre; its
``rotation_deg`` is clockwise-positive, ecglens's is counter-clockwise-positive.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]

from ecglens.digitize.deskew import deskew, local_scale  # noqa: E402
from ecglens.digitize.grid import find_grid  # noqa: E402
from ecglens.digitize.ink import find_ink  # noqa: E402


def _evaluate(image: np.ndarray, geo: dict, meta: dict) -> dict:
    t0 = time.process_time()
    grid = find_grid(image)
    t1 = time.process_time()
    desk = deskew(image, grid)
    t2 = time.process_time()
    find_ink(desk.image, desk.grid)
    t3 = time.process_time()
    tx, ty = float(geo["px_per_mm_x"]), float(geo["px_per_mm_y"])
    trot = -float(geo.get("rotation_deg", 0.0))
    row = dict(meta)
    row.update(found=grid.found, colour=grid.grid_colour, conf=round(grid.confidence, 3),
               perspective=desk.perspective_corrected, truth_ppm_x=tx, truth_ppm_y=ty,
               truth_rot=trot, t_grid=t1 - t0, t_deskew=t2 - t1, t_ink=t3 - t2,
               width=image.shape[1], height=image.shape[0], reason=grid.reason)
    if not grid.found:
        row.update(ppm_x=float("nan"), ppm_y=float("nan"), rot=float("nan"),
                   err_ppm_x=float("nan"), err_ppm_y=float("nan"), err_rot=float("nan"))
        return row
    if desk.perspective_corrected:
        gx0, gy0, gx1, gy1 = geo["grid_box"]
        centre = np.array([(gx0 + gx1) / 2, (gy0 + gy1) / 2])
        px, py, rot = local_scale(desk.matrix, desk.grid.px_per_mm_x, desk.grid.px_per_mm_y,
                                   centre)
    else:
        px, py, rot = grid.px_per_mm_x, grid.px_per_mm_y, grid.rotation_deg
    row.update(ppm_x=px, ppm_y=py, rot=rot, err_ppm_x=100 * (px / tx - 1),
               err_ppm_y=100 * (py / ty - 1), err_rot=rot - trot,
               out_square=desk.grid.px_per_mm_x / desk.grid.px_per_mm_y - 1,
               out_bend=abs(desk.grid.rotation_h_deg - desk.grid.rotation_v_deg))
    return row


def _pages_from_set(set_dir: Path, limit: int | None):
    with open(set_dir / "index.csv") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows[:limit]:
        img = cv2.imread(str(set_dir / f"{r['id']}.png"), cv2.IMREAD_COLOR)[:, :, ::-1]
        geo = json.loads((set_dir / f"{r['id']}_truth.json").read_text())
        yield np.ascontiguousarray(img), geo, {"id": r["id"], "profile": r["profile"],
                                               "grid": r["grid"], "dpi": float(r["dpi"])}


def _photo_pages(n: int):
    from ecglens.core.io import read_record
    from ecglens.synth.distort import apply_profile
    from ecglens.synth.render import RenderSettings, render_page

    grids = ["red", "pink", "orange", "green", "blue", "grey", "bw"]
    rng = np.random.default_rng(7)
    for i in range(n):
        rec = read_record(REPO.parent / "shared" / "data" / "ludb" / "data" / str(1 + 7 * i))
        dpi = float(rng.uniform(150, 250))
        page = render_page(rec, RenderSettings(dpi=dpi, grid=grids[i % len(grids)]))
        page = apply_profile(page, "photo", seed=100 + i)
        yield page.image, page.geometry, {"id": f"photo{i:03d}", "profile": "photo",
                                          "grid": grids[i % len(grids)], "dpi": dpi}


def _summary(rows: list[dict]) -> None:
    def stats(sel: list[dict], label: str) -> None:
        found = [r for r in sel if r["found"]]
        if not sel:
            return
        ex = np.array([abs(r["err_ppm_x"]) for r in found] + [abs(r["err_ppm_y"]) for r in found])
        er = np.array([abs(r["err_rot"]) for r in found])
        msg = f"{label:<22} n={len(sel):4d} found={len(found):4d}"
        if len(found):
            msg += (f" |px/mm err| % median {np.median(ex):.3f} p95 {np.percentile(ex, 95):.3f}"
                    f" max {ex.max():.3f} (<0.3%: {100 * np.mean(ex < 0.3):.1f}%)"
                    f" |rot err| deg median {np.median(er):.4f} p95 {np.percentile(er, 95):.4f}"
                    f" max {er.max():.4f} (<0.05: {100 * np.mean(er < 0.05):.1f}%)")
        print(msg)

    for prof in sorted({r["profile"] for r in rows}):
        stats([r for r in rows if r["profile"] == prof], f"profile={prof}")
    for g in sorted({r["grid"] for r in rows}):
        stats([r for r in rows if r["grid"] == g and r["profile"] != "photo"], f"grid={g}")
    stats([r for r in rows if r["profile"] != "photo"], "all clean+scan")
    for lo, hi in ((100, 160), (160, 230), (230, 320)):
        sel = [r for r in rows if lo <= r["dpi"] < hi and r["profile"] != "photo"]
        if sel:
            t = np.array([[r["t_grid"], r["t_deskew"], r["t_ink"]] for r in sel])
            print(f"cpu s/page {lo}-{hi} dpi (n={len(sel)}): grid {np.median(t[:, 0]):.3f} "
                  f"deskew {np.median(t[:, 1]):.3f} ink {np.median(t[:, 2]):.3f} "
                  f"total median {np.median(t.sum(1)):.3f} p95 {np.percentile(t.sum(1), 95):.3f}")
    photos = [r for r in rows if r["profile"] == "photo" and r["found"]]
    if photos:
        persp = sum(bool(r["perspective"]) for r in photos)
        sq = np.array([abs(r["out_square"]) * 100 for r in photos])
        bend = np.array([r["out_bend"] for r in photos])
        print(f"photos: perspective corrected {persp}/{len(photos)}; deskewed grid |x/y-1| % "
              f"median {np.median(sq):.2f} max {sq.max():.2f}; families from square deg "
              f"median {np.median(bend):.3f} max {bend.max():.3f}")
    bad = [r for r in rows if not r["found"] or abs(r.get("err_ppm_x", 0)) > 0.3
           or abs(r.get("err_rot", 0)) > 0.05]
    for r in bad[:25]:
        print("  worst:", r["id"], r["profile"], r["grid"], r["dpi"], r["found"],
              f"{r['err_ppm_x']:.3f} {r['err_ppm_y']:.3f} {r['err_rot']:.4f}", r["reason"][:120])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--set", type=Path, default=REPO / "benchmarks" / "out" / "set")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "geometry")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--photos", type=int, default=0)
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    sources = []
    if (args.set / "index.csv").exists():
        sources.append(_pages_from_set(args.set, args.limit))
    if args.photos:
        sources.append(_photo_pages(args.photos))
    for src in sources:
        for image, geo, meta in src:
            rows.append(_evaluate(image, geo, meta))
    with open(args.out / "geometry.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=sorted({k for r in rows for k in r}))
        w.writeheader()
        w.writerows(rows)
    _summary(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
