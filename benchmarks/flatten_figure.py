"""The picture in docs/digitize.md ("Flatten"): the lower right of a Paper2Pulse photo,
deskewed with the homography only and with the flattening.

Usage::

    python benchmarks/flatten_figure.py   # writes docs/flatten_before_after.jpg
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO.parent) not in sys.path:
    sys.path.insert(0, str(REPO.parent))

PHOTO = REPO.parent / "shared" / "data" / "real_photos" / "paper2pulse" / "images" / "01027_hr.jpg"
OUT = REPO / "docs" / "flatten_before_after.jpg"


def main() -> int:
    import cv2
    import numpy as np

    from ecglens.digitize import deskew as deskew_stage
    from ecglens.digitize.grid import find_grid

    image = cv2.cvtColor(cv2.imread(str(PHOTO), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    grid = find_grid(image)
    pages = []
    for flatten in ("0", "1"):
        os.environ["ECGLENS_FLATTEN"] = flatten
        pages.append(deskew_stage.deskew(image, grid).image)
    h, w = pages[0].shape[:2]
    crops = [cv2.resize(p[int(0.55 * h):int(0.95 * h), int(0.55 * w):int(0.93 * w)], None,
                        fx=0.62, fy=0.62, interpolation=cv2.INTER_AREA) for p in pages]
    gap = np.full((crops[0].shape[0], 12, 3), 255, np.uint8)
    figure = np.hstack([crops[0], gap, crops[1]])
    bar = np.full((34, figure.shape[1], 3), 255, np.uint8)
    for x, text in ((8, "homography only"), (crops[0].shape[1] + 20, "homography + flattening")):
        cv2.putText(bar, text, (x, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 2, cv2.LINE_AA)
    figure = np.vstack([bar, figure])
    cv2.imwrite(str(OUT), cv2.cvtColor(figure, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
