"""Make a seeded, deterministic benchmark set of rendered paper ECGs with ground truth.

Usage::

    python benchmarks/make_set.py --out benchmarks/out/set --n 240 --profiles clean scan --seed 0
    python benchmarks/make_set.py --contact-sheet docs/renderer.png      # layouts x profiles

Each page is ``<id>.png`` plus ``<id>_truth.hea/.dat`` (what was printed, 500 Hz, NaN where not
printed) and ``<id>_truth.json`` (page geometry); ``index.csv`` lists every page. Records come
from ``../shared/data`` (LUDB ``ludb/data/N``, CinC ``cinc/*.hea``, PTB
``ptb/patient001/s0010_re``). Factors cycle in balanced, seed-shuffled blocks so that every
layout x profile pair, every gain x speed pair, every grid colour, font and label position
appears once ``--n`` reaches the size of that cycle (30 for all 6 layouts x 5 profiles).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import itertools
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]

from ecglens.core.layouts import LAYOUT_NAMES  # noqa: E402
from ecglens.synth.distort import PROFILE_NAMES, apply_profile, get_profile  # noqa: E402
from ecglens.synth.render import (  # noqa: E402
    FONT_NAMES,
    GRID_NAMES,
    LABEL_POSITIONS,
    RenderSettings,
    render_page,
    save_page,
)

log = logging.getLogger("make_set")

GAINS_MM_MV = (5.0, 10.0, 20.0)
SPEEDS_MM_S = (25.0, 50.0)
INDEX_COLUMNS = ("id", "source_record", "layout", "profile", "seed", "gain_mm_mv", "speed_mm_s",
                 "dpi", "grid", "rotation_deg", "font", "label_position", "paper", "start_s",
                 "width_px", "height_px", "image_dpi", "px_per_mm_x", "px_per_mm_y")
"""``dpi`` is the render (print/scan) resolution; ``image_dpi`` and px/mm describe the final
image (a fax is resampled to 204 x 196 or 204 x 98 dpi, a photo's scale varies over the page:
px/mm is taken at the grid centre)."""


def find_records(data: Path) -> list[Path]:
    """LUDB, CinC and PTB record paths (without suffix) under the shared data folder."""
    records = sorted((data / "ludb" / "data").glob("*.hea"), key=lambda p: int(p.stem)
                     if p.stem.isdigit() else 0)
    records += sorted((data / "cinc").glob("*.hea"))
    records += sorted((data / "ptb" / "patient001").glob("s0010_re.hea"))
    return [p.with_suffix("") for p in records]


def _cycle(values: list[Any], n: int, rng: np.random.Generator) -> list[Any]:
    """``n`` items: balanced blocks of ``values``, each block shuffled."""
    out: list[Any] = []
    while len(out) < n:
        block = list(values)
        order = rng.permutation(len(block))
        out.extend(block[k] for k in order)
    return out[:n]


def plan_pages(records: list[Path], n: int, profiles: list[str], seed: int,
               layouts: list[str] | None = None) -> list[dict[str, Any]]:
    """The deterministic list of page specs (one dict per page)."""
    rng = np.random.default_rng(seed)
    layouts = list(layouts or LAYOUT_NAMES)
    pairs = _cycle(list(itertools.product(layouts, profiles)), n, rng)
    gain_speed = _cycle(list(itertools.product(GAINS_MM_MV, SPEEDS_MM_S)), n, rng)
    grids = _cycle(list(GRID_NAMES), n, rng)
    fonts = _cycle(list(FONT_NAMES), n, rng)
    positions = _cycle(list(LABEL_POSITIONS), n, rng)
    papers = _cycle(["a4", "a4", "letter"], n, rng)
    record_order = _cycle(records, n, rng)
    pages = []
    for i in range(n):
        layout, profile = pairs[i]
        gain, speed = gain_speed[i]
        pages.append({
            "id": f"p{i:04d}", "record": str(record_order[i]), "layout": layout,
            "profile": profile, "seed": int(rng.integers(0, 2**31 - 1)), "gain_mm_mv": gain,
            "speed_mm_s": speed, "dpi": float(rng.integers(100, 301)), "grid": grids[i],
            "font": fonts[i], "label_position": positions[i], "paper": papers[i],
            "start_frac": float(rng.random()),
        })
    return pages


_RECORD_CACHE: dict[str, Any] = {}


def _load(path: str, ludb_scale: str = "physical") -> Any:
    """Read a source record. LUDB's header gains are per-lead min-max normalisations (every
    lead spans exactly 1 "mV"); with ``ludb_scale="physical"`` its integers are read at
    1 µV/unit instead (see ``analysis/ludb.py``), so pages show real ECG amplitudes."""
    from ecglens.core.io import read_record

    key = f"{path}|{ludb_scale}"
    if key not in _RECORD_CACHE:
        if ludb_scale == "physical" and Path(path).parent.name == "data" \
                and Path(path).parent.parent.name == "ludb":
            from ecglens.analysis.ludb import read_ludb_record

            _RECORD_CACHE[key] = read_ludb_record(path)
        else:
            _RECORD_CACHE[key] = read_record(path)
    return _RECORD_CACHE[key]


def make_page(spec: dict[str, Any], out_dir: str) -> dict[str, Any]:
    """Render, distort and save one page; returns its index row."""
    record = _load(spec["record"], spec.get("ludb_scale", "physical"))
    duration = 250.0 / spec["speed_mm_s"]
    spare = max(0.0, record.duration_s - duration)
    start_s = round(spec["start_frac"] * spare, 1)
    settings = RenderSettings(
        layout=spec["layout"], speed_mm_s=spec["speed_mm_s"], gain_mm_mv=spec["gain_mm_mv"],
        dpi=spec["dpi"], grid=spec["grid"], font=spec["font"],
        label_position=spec["label_position"], paper=spec["paper"], start_s=start_s,
        minor_grid="dots" if spec["seed"] % 4 == 0 else "lines",
        grid_extent="page" if spec["seed"] % 3 == 0 else "area",
        trace_width_mm=0.2 + 0.15 * ((spec["seed"] >> 3) % 3) / 2,
    )
    page = apply_profile(render_page(record, settings), spec["profile"], seed=spec["seed"])
    save_page(page, Path(out_dir) / f"{spec['id']}.png", compress_level=1)
    geo = page.geometry
    return {
        "id": spec["id"], "source_record": spec["record"], "layout": spec["layout"],
        "profile": spec["profile"], "seed": spec["seed"], "gain_mm_mv": spec["gain_mm_mv"],
        "speed_mm_s": spec["speed_mm_s"], "dpi": spec["dpi"],
        "grid": spec["grid"], "rotation_deg": round(float(geo.get("rotation_deg", 0.0)), 2),
        "font": spec["font"], "label_position": spec["label_position"], "paper": spec["paper"],
        "start_s": start_s, "width_px": geo["image_size"][0], "height_px": geo["image_size"][1],
        "image_dpi": round(float(geo["dpi"]), 1), "px_per_mm_x": round(geo["px_per_mm_x"], 4),
        "px_per_mm_y": round(geo["px_per_mm_y"], 4),
    }


def make_set(out_dir: Path, records: list[Path], n: int, profiles: list[str], seed: int,
             jobs: int = 1, ludb_scale: str = "physical") -> list[dict[str, Any]]:
    """Write ``n`` pages and ``index.csv`` into ``out_dir``; returns the index rows."""
    for name in profiles:
        get_profile(name)
    out_dir.mkdir(parents=True, exist_ok=True)
    specs = plan_pages(records, n, profiles, seed)
    for spec in specs:
        spec["ludb_scale"] = ludb_scale
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    if jobs <= 1:
        results = (make_page(spec, str(out_dir)) for spec in specs)
        for k, row in enumerate(results, start=1):
            rows.append(row)
            _progress(k, n, start)
    else:
        with concurrent.futures.ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(make_page, spec, str(out_dir)) for spec in specs]
            for k, future in enumerate(concurrent.futures.as_completed(futures), start=1):
                rows.append(future.result())
                _progress(k, n, start)
    rows.sort(key=lambda r: r["id"])
    with (out_dir / "index.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=INDEX_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    sys.stderr.write("\n")
    return rows


def _progress(k: int, n: int, start: float) -> None:
    elapsed = time.perf_counter() - start
    eta = elapsed / k * (n - k)
    sys.stderr.write(f"\r{k}/{n} pages  {elapsed:6.1f} s elapsed  ~{eta:5.0f} s left ")
    sys.stderr.flush()


def contact_sheet(records: list[Path], out: Path, seed: int = 0, thumb_w: int = 330) -> Path:
    """A sheet of every layout x profile (rows x columns), labelled thumbnails."""
    import cv2
    from PIL import Image

    profiles = list(PROFILE_NAMES)
    rng = np.random.default_rng(seed)
    grids = ["red", "pink", "orange", "green", "blue", "grey", "bw"]
    thumbs = []
    for r, layout in enumerate(LAYOUT_NAMES):
        row = []
        for c, profile in enumerate(profiles):
            record = _load(str(records[(r * len(profiles) + c) % len(records)]))
            settings = RenderSettings(layout=layout, dpi=150.0,
                                      grid=grids[(r + 2 * c) % len(grids)],
                                      font=FONT_NAMES[(r + c) % len(FONT_NAMES)],
                                      gain_mm_mv=5.0 if layout.startswith("12x1") else 10.0)
            page = apply_profile(render_page(record, settings), profile,
                                 seed=int(rng.integers(0, 1000)))
            img = page.image
            h = round(img.shape[0] * thumb_w / img.shape[1])
            img = cv2.resize(img, (thumb_w, h), interpolation=cv2.INTER_AREA)
            canvas = np.full((250, thumb_w, 3), 255, dtype=np.uint8)
            top = (250 - 18 - h) // 2 + 18
            if h > 250 - 18:
                img = cv2.resize(img, (round(thumb_w * (232 / h)), 232),
                                 interpolation=cv2.INTER_AREA)
                h = 232
                top = 18
            left = (thumb_w - img.shape[1]) // 2
            canvas[top:top + h, left:left + img.shape[1]] = img
            cv2.putText(canvas, f"{layout} / {profile}", (4, 13), cv2.FONT_HERSHEY_SIMPLEX,
                        0.42, (0, 0, 0), 1, cv2.LINE_AA)
            row.append(canvas)
        thumbs.append(np.hstack([np.pad(t, ((2, 2), (2, 2), (0, 0)), constant_values=200)
                                 for t in row]))
    sheet = np.vstack(thumbs)
    out.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(sheet)
    if out.suffix.lower() == ".png":
        image = image.quantize(colors=192, method=Image.Quantize.MEDIANCUT,
                               dither=Image.Dither.NONE)
        image.save(out, optimize=True)
    else:
        image.save(out, quality=82)
    return out


def _shared_data(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    return REPO.parent / "shared" / "data"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="benchmarks/out/set", help="output folder")
    parser.add_argument("--n", type=int, default=240, help="number of pages")
    parser.add_argument("--profiles", nargs="+", default=["clean", "scan"],
                        help=f"distortion profiles ({', '.join(PROFILE_NAMES)})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--data", default=None, help="shared data folder (default ../shared/data)")
    parser.add_argument("--ludb-scale", choices=["physical", "header"], default="physical",
                        help="LUDB amplitudes: 1 µV/unit (physical, default) or the header's "
                        "per-lead min-max gains (every lead spans 1 mV)")
    parser.add_argument("--contact-sheet", default=None, metavar="PATH",
                        help="write a layouts x profiles contact sheet to PATH and exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    data = _shared_data(args.data)
    records = find_records(data)
    if not records:
        parser.error(f"no records found under {data} (use --data)")
    if args.contact_sheet:
        path = contact_sheet(records, Path(args.contact_sheet), seed=args.seed)
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
        return 0
    start = time.perf_counter()
    rows = make_set(Path(args.out), records, args.n, args.profiles, args.seed, args.jobs,
                    ludb_scale=args.ludb_scale)
    print(f"wrote {len(rows)} pages to {args.out} in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
