"""Digitize every real ECG image in shared/data and build a contact sheet of the overlays.

Usage::

    python benchmarks/real_images_digitize.py --out benchmarks/out/real_read \
        --sheet docs/real_images.jpg

Reads ``shared/data/ecg_image_kit/real_images/*`` and
``shared/data/real_images/tereshchenkolab_paper-ecg/fullScan.png``; writes the usual outputs
per image into ``--out`` plus ``summary.json`` (layout, gain, speed, warnings or the error),
and a JPEG contact sheet (< 1 MB) of the overlays (or of the input with the error printed).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/out/real_read")
    parser.add_argument("--sheet", default="docs/real_images.jpg")
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)

    import cv2
    import numpy as np
    from PIL import Image

    from ecglens.core.errors import EcglensError
    from ecglens.digitize.load import load_pages
    from ecglens.digitize.overlay import draw_overlay
    from ecglens.digitize.pipeline import digitize_file, write_outputs

    data = Path(args.data)
    images = sorted(p for p in (data / "ecg_image_kit" / "real_images").iterdir()
                    if p.suffix.lower() in {".png", ".jpg", ".jpeg", ".bmp"})
    images.append(data / "real_images" / "tereshchenkolab_paper-ecg" / "fullScan.png")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = {}
    thumbs = []
    tw, th = 400, 260
    for k, path in enumerate(images, start=1):
        sys.stderr.write(f"\r{k}/{len(images)} {path.name}   ")
        try:
            result = digitize_file(path)[0]
            write_outputs(result, out, overwrite=True)
            pic = draw_overlay(result, width_px=tw * 2)
            conf = [c for c in result.record.confidence if c > 0]
            summary[path.name] = {
                "layout": result.layout.name, "gain_mm_mv": result.calibration.gain_mm_mv,
                "speed_mm_s": result.calibration.speed_mm_s,
                "calibration": result.calibration.source,
                "grid_found": bool(result.grid.found),
                "px_per_mm": round(float(result.grid.px_per_mm_x), 3),
                "rows": len(result.rows.rows), "pulses": len(result.calibration.pulses),
                "mean_confidence": round(float(np.mean(conf)) if conf else 0.0, 3),
                "warnings": list(result.warnings)}
            caption = (f"{path.name}: {result.layout.name} {result.calibration.gain_mm_mv:g}mm/mV "
                       f"{result.calibration.speed_mm_s:g}mm/s")
        except EcglensError as exc:
            summary[path.name] = {"error": exc.reason}
            try:
                pic = load_pages(path)[0].image
            except EcglensError:
                pic = np.full((th, tw, 3), 200, np.uint8)
            caption = f"{path.name}: ERROR {exc.reason}"
        h, w = pic.shape[:2]
        scale = min(tw / w, (th - 30) / h)
        small = cv2.resize(pic, (max(1, int(w * scale)), max(1, int(h * scale))),
                           interpolation=cv2.INTER_AREA)
        tile = np.full((th, tw, 3), 255, np.uint8)
        tile[30:30 + small.shape[0], :small.shape[1]] = small
        for j, line in enumerate(textwrap.wrap(caption, 62)[:2]):
            cv2.putText(tile, line, (3, 12 + 13 * j), cv2.FONT_HERSHEY_SIMPLEX, 0.36, (0, 0, 0),
                        1, cv2.LINE_AA)
        thumbs.append(tile)
    sys.stderr.write("\n")
    cols = 6
    while len(thumbs) % cols:
        thumbs.append(np.full((th, tw, 3), 255, np.uint8))
    grid = np.vstack([np.hstack(thumbs[r * cols:(r + 1) * cols])
                      for r in range(len(thumbs) // cols)])
    sheet = Path(args.sheet)
    sheet.parent.mkdir(parents=True, exist_ok=True)
    quality = 80
    while True:
        Image.fromarray(grid).save(sheet, quality=quality, optimize=True)
        if sheet.stat().st_size < 950_000 or quality <= 40:
            break
        quality -= 10
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    ok = sum("error" not in v for v in summary.values())
    print(f"{ok} of {len(images)} images read; sheet {sheet} ({sheet.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
