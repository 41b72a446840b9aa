"""Run the geometry stages on every real ECG image and draw a contact sheet for checking by eye.

Usage::

    .venv/bin/python benchmarks/geometry_real_images.py --out benchmarks/out/geometry_real

For each image in ``../shared/data/ecg_image_kit/real_images`` and ``../shared/data/real_images``
it runs ``find_grid`` → ``deskew`` → ``find_ink`` and writes ``real_images.csv`` (grid found,
px/mm per axis, rotation, colour, perspective, dpi from ``ecg-samples-metadata.csv``, CPU
time) and ``contact_sheet.png``: each deskewed page with the measured 5 mm lattice drawn in
cyan (its phase fitted on the page), so a wrong px/mm or rotation shows as lines drifting off
the printed grid.
"""

from __future__ import annotations

import argparse
import csv
import math
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]

from ecglens.core.errors import InputError  # noqa: E402
from ecglens.digitize.deskew import deskew  # noqa: E402
from ecglens.digitize.grid import _evidence_maps, find_grid  # noqa: E402
from ecglens.digitize.ink import find_ink  # noqa: E402
from ecglens.digitize.load import load_pages  # noqa: E402


def _phase(profile: np.ndarray, period: float) -> float:
    x = np.arange(profile.size)
    c = np.sum((profile - profile.mean()) * np.exp(-2j * np.pi * x / period))
    return float((-np.angle(c) / (2 * np.pi)) % 1.0 * period)


def _draw_lattice(image: np.ndarray, ppm_x: float, ppm_y: float) -> np.ndarray:
    """Deskewed page with the measured 5 mm lattice (phase fitted) drawn over it."""
    maps = _evidence_maps(image)
    g = maps.colour if maps.colour.mean() > 0.3 * maps.grey.mean() else maps.grey
    out = image.copy()
    h, w = out.shape[:2]
    thick = max(1, round(w / 1200))
    for axis, ppm in ((0, ppm_x), (1, ppm_y)):
        period = 5.0 * ppm
        prof = g.sum(axis=axis)
        off = _phase(prof, period)
        n = int((w if axis == 0 else h) / period) + 1
        for k in range(n):
            p = round(off + k * period)
            if axis == 0:
                cv2.line(out, (p, 0), (p, h - 1), (0, 200, 255), thick)
            else:
                cv2.line(out, (0, p), (w - 1, p), (0, 200, 255), thick)
    return out


def _images(shared: Path) -> list[Path]:
    kit = sorted(p for p in (shared / "ecg_image_kit" / "real_images").glob("ecg*.*")
                 if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp"))
    other = sorted((shared / "real_images").rglob("*.png"))
    return kit + other


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "geometry_real")
    ap.add_argument("--thumb", type=int, default=420)
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    meta_dpi = {}
    meta = args.shared / "ecg_image_kit" / "real_images" / "ecg-samples-metadata.csv"
    if meta.exists():
        with open(meta) as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                meta_dpi[Path(row["fname"]).stem] = float(row["dpi"])
    rows, thumbs = [], []
    for path in _images(args.shared):
        try:
            page = load_pages(path)[0]
        except InputError as exc:
            rows.append({"file": path.name, "error": str(exc)})
            continue
        t0 = time.process_time()
        grid = find_grid(page.image, page.dpi_prior)
        t1 = time.process_time()
        desk = deskew(page.image, grid) if grid.found else None
        t2 = time.process_time()
        ink = find_ink(desk.image if desk else page.image, desk.grid if desk else grid)
        t3 = time.process_time()
        g = desk.grid if desk else grid
        dpi = meta_dpi.get(path.stem)
        rows.append({
            "file": path.name, "size": f"{page.image.shape[1]}x{page.image.shape[0]}",
            "found": grid.found, "px_per_mm_x": round(grid.px_per_mm_x, 3),
            "px_per_mm_y": round(grid.px_per_mm_y, 3), "dpi_equiv": round(
                25.4 * grid.px_per_mm, 1) if grid.found else float("nan"),
            "meta_dpi": dpi, "rotation_deg": round(grid.rotation_deg, 3),
            "colour": grid.grid_colour, "confidence": round(grid.confidence, 2),
            "perspective": bool(desk and desk.perspective_corrected),
            "ink_pct": round(100 * float(ink.mask.mean()), 2),
            "t_grid": round(t1 - t0, 3), "t_deskew": round(t2 - t1, 3), "t_ink": round(t3 - t2, 3),
            "reason": grid.reason,
        })
        shown = _draw_lattice(desk.image, g.px_per_mm_x, g.px_per_mm_y) if desk else page.image
        s = args.thumb / max(shown.shape[:2])
        size = (max(1, round(shown.shape[1] * s)), max(1, round(shown.shape[0] * s)))
        th = cv2.resize(shown, size, interpolation=cv2.INTER_AREA)
        tile = np.full((args.thumb + 22, args.thumb, 3), 255, np.uint8)
        tile[22:22 + th.shape[0], :th.shape[1]] = th
        scale = f"{grid.px_per_mm:.2f}" if grid.found else "no grid"
        label = (f"{path.stem} {scale} "
                 f"{grid.rotation_deg:+.2f} {'P' if desk and desk.perspective_corrected else ''}")
        cv2.putText(tile, label, (2, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
        thumbs.append(tile)
    with open(args.out / "real_images.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=sorted({k for r in rows for k in r}))
        w.writeheader()
        w.writerows(rows)
    cols = 6
    n_rows = math.ceil(len(thumbs) / cols)
    sheet = np.full((n_rows * (args.thumb + 22), cols * args.thumb, 3), 255, np.uint8)
    for i, t in enumerate(thumbs):
        r, c = divmod(i, cols)
        sheet[r * t.shape[0]:(r + 1) * t.shape[0], c * args.thumb:(c + 1) * args.thumb] = t
    cv2.imwrite(str(args.out / "contact_sheet.png"), sheet[:, :, ::-1])
    for r in rows:
        print({k: r.get(k) for k in ("file", "found", "px_per_mm_x", "px_per_mm_y", "dpi_equiv",
                                     "meta_dpi", "rotation_deg", "colour", "perspective",
                                     "t_grid")})
    found = sum(1 for r in rows if r.get("found"))
    print(f"grid found on {found}/{len(rows)} images")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
