"""Multi-page PDF vs single images: the same rendered pages read both ways, scored alike.

    python benchmarks/pdf_check.py --n 12 --out benchmarks/out/pdf_check

Renders ``n`` clean pages (layouts cycled, 200 dpi) from LUDB (physical scale) and CinC, writes
them once as one multi-page PDF (``pages.pdf`` + ``pages_p<k>_truth.*``) and once as PNGs
(``png/pages_p<k>.png`` + truth), digitizes both with ``ecglens digitize`` and scores each
folder with ``ecglens score``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    from ecglens.analysis.ludb import read_ludb_record
    from ecglens.core.io import read_record
    from ecglens.core.layouts import LAYOUT_NAMES
    from ecglens.synth.render import RenderSettings, render_page, save_page, save_pdf

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=12)
    parser.add_argument("--out", default="benchmarks/out/pdf_check")
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    args = parser.parse_args()
    data, out = Path(args.data), Path(args.out)
    (out / "png").mkdir(parents=True, exist_ok=True)
    sources = [data / "ludb" / "data" / str(k) for k in (1, 12, 40, 77, 101, 150)]
    sources += sorted((data / "cinc").glob("*.hea"))[:6]
    pages = []
    for k in range(args.n):
        src = sources[k % len(sources)]
        record = (read_ludb_record(src) if src.parent.name == "data" else read_record(src))
        settings = RenderSettings(layout=LAYOUT_NAMES[k % len(LAYOUT_NAMES)], dpi=200.0)
        page = render_page(record, settings)
        pages.append(page)
        save_page(page, out / "png" / f"pages_p{k + 1}.png")
    save_pdf(pages, out / "pages.pdf")
    ecglens = [sys.executable, str(REPO / "cli.py")]
    subprocess.run([*ecglens, "-q", "digitize", str(out / "pages.pdf"),
                    "-o", str(out / "read_pdf")], check=False)
    subprocess.run([*ecglens, "-q", "digitize", str(out / "png"), "-o", str(out / "read_png")],
                   check=False)
    for name, truth in (("pdf", out), ("png", out / "png")):
        print(f"## read from {name}")
        subprocess.run([*ecglens, "-q", "score", str(truth), str(out / f"read_{name}")],
                       check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
