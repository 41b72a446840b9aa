"""How bent the grid of each page is before and after the deskew stage's flattening.

Usage::

    python benchmarks/flatten_check.py --out benchmarks/out/flatten_check.md
    python benchmarks/flatten_check.py --families photos eik --eik-every 4

For every page the grid stage and the deskew stage run as in ``ecglens digitize``; the grid's
displacement field (:func:`ecglens.digitize.flatten.measure_flattening`) is then measured
again on the deskewed page. *Before* is what the deskew stage measured on the page it rotated
or rectified; *after* is what is left on the page the rows are read from. Reported per page:
the 99th percentile of the grid's displacement (mm) and the 5-95 % spread of the local px/mm
along x (the time axis), and whether the page was resampled.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO.parent) not in sys.path:
    sys.path.insert(0, str(REPO.parent))


def _pages(data: Path, families: list[str], eik_every: int) -> list[tuple[str, Path]]:
    """The pages of ``families.py``'s families (ECG-Image-Kit: every ``eik_every``-th)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import families as fam

    pages = []
    if "photos" in families:
        pages += fam.photo_pages(data / "real_photos" / "paper2pulse")
    if "eik" in families:
        pages += fam.eik_pages(data / "ecg_image_kit" / "synthetic", "all")[::max(1, eik_every)]
    if "real" in families:
        pages += fam.real_pages(data)
    return [(p.family, Path(p.image)) for p in pages]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--families", nargs="+", default=["photos"],
                        choices=("photos", "eik", "real"))
    parser.add_argument("--eik-every", type=int, default=4)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "flatten_check.md"))
    args = parser.parse_args(argv)

    import cv2

    from ecglens.digitize.deskew import FLATTEN_INK_DARKNESS, deskew
    from ecglens.digitize.flatten import measure_flattening
    from ecglens.digitize.grid import find_grid, grid_evidence

    rows = ["| family | page | resampled | before: shift mm / px/mm spread x | "
            "after: shift mm / px/mm spread x | s |", "|---|---|---|---|---|---|"]
    totals: dict[str, list[tuple[float, float, float, float]]] = {}
    for family, path in _pages(Path(args.data), args.families, args.eik_every):
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            print(f"{path}: not an image", file=sys.stderr)
            continue
        image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        clock = time.perf_counter()
        grid = find_grid(image)
        desk = deskew(image, grid)
        seconds = time.perf_counter() - clock
        before = desk.flatten
        if before is None or before.shift_px is None:
            rows.append(f"| {family} | {path.stem} | no | – | – | {seconds:.2f} |")
            continue
        evidence, darkness = grid_evidence(desk.image)
        after = measure_flattening(evidence, float(desk.grid.px_per_mm_x),
                                   float(desk.grid.px_per_mm_y),
                                   ink=darkness > FLATTEN_INK_DARKNESS)
        after_txt = ("–" if after.shift_px is None else
                     f"{after.max_shift_mm:.2f} / {100 * after.scale_spread[0]:.1f} %")
        rows.append(f"| {family} | {path.stem} | {'yes' if before.applied else 'no'} | "
                    f"{before.max_shift_mm:.2f} / {100 * before.scale_spread[0]:.1f} % | "
                    f"{after_txt} | {seconds:.2f} |")
        if before.applied and after.shift_px is not None:
            totals.setdefault(family, []).append(
                (before.max_shift_mm, before.scale_spread[0], after.max_shift_mm,
                 after.scale_spread[0]))
        print(rows[-1], flush=True)
    import numpy as np

    summary = ["", "| family | pages resampled | median shift mm before → after | "
               "median px/mm spread x before → after |", "|---|---|---|---|"]
    for family, vals in totals.items():
        v = np.array(vals)
        summary.append(f"| {family} | {len(v)} | {np.median(v[:, 0]):.2f} → "
                       f"{np.median(v[:, 2]):.2f} | {100 * np.median(v[:, 1]):.1f} % → "
                       f"{100 * np.median(v[:, 3]):.1f} % |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(rows + summary) + "\n")
    print("\n".join(summary))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
