"""Digitize and score every data family in one command (the README's accuracy table).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/families.py --families eik photos real --jobs 1
    python benchmarks/families.py --families eik --eik-part all
    python benchmarks/families.py --families own --own-set benchmarks/out/seed0 --own-every 4

Families (``--data`` is ``../shared/data``):

* ``own``: a set folder made by ``benchmarks/make_set.py`` (``<id>.png`` + ``<id>_truth.hea``
  and ``_truth.json``); ``--own-every N`` reads every N-th page only.
* ``eik``: ECG-Image-Kit synthetic pages (``ecg_image_kit/synthetic``), split by record:
  ``strat_fold`` 1–8 is the ``tune`` part, 9 the ``val`` part (never tuned on; the default).
  Reported per variant and overall, with how often the layout and the gain were read right.
* ``photos``: Paper2Pulse phone photos (``real_photos/paper2pulse``): both scores over the
  photos with truth, the refused count over all of them. Never tune on these truths.
* ``real``: real images without truth (``ecg_image_kit/real_images`` and ``real_images``):
  read / refused counts and a contact sheet of the overlays for grading by eye.

Both scores come from :mod:`ecglens.score`: the Challenge-2024 SNR (mean over printed leads)
and the Kaggle-2025 dB (10·log10 of the mean page ratio). A refused page scores 0 dB per lead
(2024) and reads as all 0 mV (Kaggle). Outputs go to ``--out`` (``benchmarks/out/families``):
``<family>/read/`` (records, page JSONs, overlays, ``<stem>.refused.json`` for refused
pages), ``<family>/scores/`` (per-page scores, reused while the read is unchanged),
``<family>/sheet.jpg`` (photos, real), ``families.md`` and ``families.json``. A page
whose outputs exist is not read again unless ``--fresh``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import dataclasses
import json
import logging
import math
import os
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
FAMILIES = ("own", "eik", "photos", "real")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".pdf"}

EIK_TUNE_FOLDS = frozenset(range(1, 9))
"""ECG-Image-Kit pages of PTB-XL ``strat_fold`` 1–8: the part a change may be tuned on."""
EIK_VAL_FOLDS = frozenset({9})
"""``strat_fold`` 9: the validation part, never tuned on (fold 10 is not in the data set)."""

PAPER_GAIN_MM_MV = 10.0
PAPER_SPEED_MM_S = 25.0
"""Every ECG-Image-Kit page and every Paper2Pulse photo is printed at 10 mm/mV, 25 mm/s
(their READMEs)."""

PHOTO_LAYOUT = "3x4+1"
"""Paper2Pulse photos are 3x4 pages with a full-length lead II strip (its README)."""

SHEET_TILE = (400, 260)
SHEET_COLUMNS = 6
SHEET_MAX_BYTES = 950_000
"""Contact sheet: 400 × 260 px tiles, 6 a row, JPEG under 1 MB (as ``real_images_digitize``)."""


def eik_layout_name(eik_layout: str) -> str | None:
    """The ecglens layout an ECG-Image-Kit layout is, or None where ecglens has no template.

    ``3x4+1 (<lead> strip)`` is ecglens ``3x4+1``, ``6x2+1 (…)`` (rows V1|V4, I|aVR, …)
    ``6x2+1`` and ``12x1+1 (…)`` (rows V4, V1, aVR, …) ``12x1+1``, whatever the strip's lead
    (a template's strip prints the lead whose name is read on it; the layout check compares
    names only).
    """
    name = eik_layout.strip().split(" ")[0]
    return name if name in ("3x4+1", "6x2+1", "12x1+1") else None


@dataclasses.dataclass(frozen=True)
class Page:
    """One image to read: where it is, its truth record (if any) and what it really is."""

    family: str
    part: str
    group: str
    stem: str
    image: str
    truth: str | None
    geometry: dict[str, Any]


# ---------------------------------------------------------------------------- page lists
def own_pages(set_dir: Path, every: int) -> list[Page]:
    """Pages of a ``make_set.py`` folder (every ``every``-th in id order)."""
    pages = []
    for header in sorted(set_dir.glob("*_truth.hea"))[:: max(1, every)]:
        stem = header.name[: -len("_truth.hea")]
        image = next((set_dir / f"{stem}{s}" for s in (".png", ".jpg", ".pdf")
                      if (set_dir / f"{stem}{s}").exists()), None)
        if image is None:
            continue
        geometry_path = set_dir / f"{stem}_truth.json"
        geometry = json.loads(geometry_path.read_text()) if geometry_path.exists() else {}
        pages.append(Page("own", set_dir.name, str(geometry.get("profile", "?")), stem,
                          str(image), str(header), geometry))
    return pages


def eik_pages(root: Path, part: str) -> list[Page]:
    """ECG-Image-Kit synthetic pages of the ``tune`` / ``val`` / ``all`` part."""
    folds = {"tune": EIK_TUNE_FOLDS, "val": EIK_VAL_FOLDS,
             "all": EIK_TUNE_FOLDS | EIK_VAL_FOLDS}[part]
    pages = []
    with open(root / "pages.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            fold = int(row["strat_fold"])
            if fold not in folds:
                continue
            geometry = {"layout": eik_layout_name(row["layout"]), "eik_layout": row["layout"],
                        "profile": row["variant"], "gain_mm_mv": PAPER_GAIN_MM_MV,
                        "speed_mm_s": PAPER_SPEED_MM_S, "source_record": row["ecg_id"]}
            pages.append(Page("eik", "val" if fold in EIK_VAL_FOLDS else "tune", row["variant"],
                              row["page"], str(root / "images" / f"{row['page']}.jpg"),
                              str(root / "truth" / f"{row['page']}.hea"), geometry))
    return pages


def photo_pages(root: Path) -> list[Page]:
    """Paper2Pulse photos; those with ``truth`` = 1 carry their truth record."""
    pages = []
    with open(root / "photos.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            stem = row["record"]
            truth = root / "truth" / f"{stem}.hea"
            has_truth = row["truth"] == "1" and truth.exists()
            geometry = {"layout": PHOTO_LAYOUT, "profile": "photo",
                        "gain_mm_mv": PAPER_GAIN_MM_MV, "speed_mm_s": PAPER_SPEED_MM_S}
            pages.append(Page("photos", "truth" if has_truth else "no truth", "photo", stem,
                              str(root / "images" / f"{stem}.jpg"),
                              str(truth) if has_truth else None, geometry))
    return pages


def real_pages(data: Path) -> list[Page]:
    """Real images without truth (ECG-Image-Kit's real samples and ``real_images``)."""
    kit = sorted(p for p in (data / "ecg_image_kit" / "real_images").iterdir()
                 if p.suffix.lower() in IMAGE_SUFFIXES)
    others = sorted(p for p in (data / "real_images").rglob("*")
                    if p.suffix.lower() in IMAGE_SUFFIXES)
    return ([Page("real", "ecg_image_kit", "real", p.stem, str(p), None, {}) for p in kit]
            + [Page("real", p.parent.name, "real", p.stem, str(p), None, {}) for p in others])


# ---------------------------------------------------------------------------- reading
def read_dir_of(out: Path, family: str) -> Path:
    """Where a family's read records go."""
    return out / family / "read"


def is_done(read_dir: Path, stem: str) -> bool:
    """True if the page was read (``.hea``) or refused (``.refused.json``) before."""
    return (read_dir / f"{stem}.hea").exists() or (read_dir / f"{stem}.refused.json").exists()


def digitize_one(image: str, read_dir: str, stem: str, overlay: bool
                 ) -> tuple[str, str, str | None, float]:
    """Read one image into ``read_dir/<stem>.*``; returns (stem, ok|refused|crash, reason, s)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from ecglens.core.errors import EcglensError
    from ecglens.digitize.pipeline import digitize_file, write_outputs

    out = Path(read_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    status, reason = "ok", None
    try:
        results = digitize_file(image)
        for result in results[:1]:           # one page per image in every family
            write_outputs(result, out, overlay=overlay, stem=stem, overwrite=True)
    except EcglensError as exc:
        status, reason = "refused", str(exc)
    except Exception as exc:  # a crash is recorded, not fatal to the whole run
        status, reason = "crash", f"{type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - start
    marker = out / f"{stem}.refused.json"
    if status == "ok":
        marker.unlink(missing_ok=True)
    else:
        for suffix in (".hea", ".dat", ".json", "_overlay.png"):
            (out / f"{stem}{suffix}").unlink(missing_ok=True)
        marker.write_text(json.dumps({"status": status, "reason": reason,
                                      "seconds": round(seconds, 3)}, indent=1))
    return stem, status, reason, seconds


def run_reading(pages: list[Page], out: Path, jobs: int, fresh: bool, overlay_all: bool) -> None:
    """Read every page not read before (all with ``fresh``), one progress line per page."""
    todo = [p for p in pages if fresh or not is_done(read_dir_of(out, p.family), p.stem)]
    print(f"{len(pages)} pages, {len(pages) - len(todo)} already read, {len(todo)} to read",
          file=sys.stderr)
    if not todo:
        return
    start = time.perf_counter()
    with concurrent.futures.ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(digitize_one, p.image, str(read_dir_of(out, p.family)), p.stem,
                               overlay_all or p.family in ("photos", "real")): p for p in todo}
        for k, future in enumerate(concurrent.futures.as_completed(futures), start=1):
            page = futures[future]
            stem, status, reason, seconds = future.result()
            note = f"  {reason[:90]}" if reason else ""
            print(f"[{page.family}] {k}/{len(todo)} {stem} {status} {seconds:.1f} s "
                  f"(total {time.perf_counter() - start:.0f} s){note}", file=sys.stderr,
                  flush=True)


# ---------------------------------------------------------------------------- scoring
def read_signature(read_dir: Path, stem: str) -> str:
    """What the page's scores depend on: its read record or refusal (name, mtime, size)."""
    for suffix in (".hea", ".refused.json"):
        path = read_dir / f"{stem}{suffix}"
        if path.exists():
            stat = path.stat()
            return f"{suffix}:{stat.st_mtime_ns}:{stat.st_size}"
    return "unread"


def score_one(page: Page, read_dir: str) -> dict[str, Any]:
    """Both scores of one page with truth (see :func:`ecglens.score.scoring.score_page`).

    Kept in ``<family>/scores/<stem>.json`` and reused while the read record, the truth and
    the geometry are unchanged (the 2024 alignment takes seconds per page).
    """
    from ecglens.score.scoring import score_page

    folder = Path(read_dir)
    key = {"signature": read_signature(folder, page.stem), "truth": page.truth,
           "geometry": page.geometry}
    cache = folder.parent / "scores" / f"{page.stem}.json"
    if cache.exists():
        try:
            cached = json.loads(cache.read_text())
            if cached.get("key") == json.loads(json.dumps(key)):
                return dict(cached["result"])
        except (OSError, json.JSONDecodeError, KeyError):
            pass
    reason = _refusal(folder, page.stem)
    result = score_page(page.stem, page.truth or "", read_dir, page.geometry, error=reason)
    result.update({"family": page.family, "part": page.part, "group": page.group,
                   "eik_layout": page.geometry.get("eik_layout")})
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"key": key, "result": result}, default=str))
    return result


def _refusal(read_dir: Path, stem: str) -> str | None:
    marker = read_dir / f"{stem}.refused.json"
    if not marker.exists():
        return None
    data = json.loads(marker.read_text())
    return f"{data.get('status')}: {data.get('reason')}"


def _read_meta(read_dir: Path, stem: str) -> dict[str, Any]:
    path = read_dir / f"{stem}.json"
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except (OSError, json.JSONDecodeError):
        return {}


def _seconds(read_dir: Path, stem: str) -> float | None:
    meta = _read_meta(read_dir, stem)
    if meta.get("timings_s"):
        return float(sum(v for v in meta["timings_s"].values() if v is not None))
    marker = read_dir / f"{stem}.refused.json"
    if marker.exists():
        return float(json.loads(marker.read_text()).get("seconds") or 0.0)
    return None


def _rate(flags: list[bool]) -> str:
    return f"{sum(flags)}/{len(flags)}" if flags else "–"


def summarise(rows: list[dict[str, Any]], label: dict[str, str]) -> dict[str, Any]:
    """One table row: counts, mean 2024 SNR over leads, Kaggle dB, layout/gain/speed right."""
    import numpy as np

    from ecglens.score.scoring import kaggle_set_db

    scored = [r for r in rows if "leads" in r]
    snr = [lead["snr_db"] for r in scored for lead in r["leads"].values()
           if lead["snr_db"] is not None]
    layout = [r["checks"]["layout"]["right"] for r in scored
              if r["checks"]["layout"]["truth"] is not None]
    seconds = [r["seconds"] for r in rows if r.get("seconds") is not None]
    return {
        **label, "pages": len(rows), "read": sum(r["status"] == "ok" for r in rows),
        "refused": sum(r["status"] == "refused" for r in rows),
        "crashed": sum(r["status"] == "crash" for r in rows),
        "unread": sum(r["status"] == "unread" for r in rows),
        "scored": len(scored),
        "snr_2024_db": float(np.mean(snr)) if snr else float("nan"),
        "kaggle_2025_db": kaggle_set_db(scored) if scored else float("nan"),
        "layout_right": _rate(layout),
        "gain_right": _rate([r["checks"]["gain_mm_mv"]["right"] for r in scored]),
        "speed_right": _rate([r["checks"]["speed_mm_s"]["right"] for r in scored]),
        "median_s": float(np.median(seconds)) if seconds else float("nan"),
    }


def page_rows(pages: list[Page], out: Path, jobs: int) -> list[dict[str, Any]]:
    """Per page: reading status and time, plus both scores where there is a truth."""
    scored: dict[tuple[str, str], dict[str, Any]] = {}
    with_truth = [p for p in pages if p.truth]
    dirs = [str(read_dir_of(out, p.family)) for p in with_truth]
    with concurrent.futures.ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
        for page, result in zip(with_truth, pool.map(score_one, with_truth, dirs), strict=True):
            scored[(page.family, page.stem)] = result
    rows = []
    for page in pages:
        read_dir = read_dir_of(out, page.family)
        if (read_dir / f"{page.stem}.hea").exists():
            status = "ok"
        elif (read_dir / f"{page.stem}.refused.json").exists():
            status = json.loads((read_dir / f"{page.stem}.refused.json").read_text())["status"]
        else:
            status = "unread"
        row = scored.get((page.family, page.stem), {"id": page.stem, "family": page.family,
                                                    "part": page.part, "group": page.group})
        meta = _read_meta(read_dir, page.stem)
        row.update({"family": page.family, "part": page.part, "group": page.group,
                    "status": status, "seconds": _seconds(read_dir, page.stem),
                    "read_layout": meta.get("layout"), "read_gain_mm_mv": meta.get("gain_mm_mv"),
                    "reason": _refusal(read_dir, page.stem)})
        rows.append(row)
    return rows


def table_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Summary rows: per family and part, per group (variant) inside, then the family total."""
    out = []
    for family in FAMILIES:
        members = [r for r in rows if r["family"] == family]
        if not members:
            continue
        parts = sorted({r["part"] for r in members})
        for part in parts:
            in_part = [r for r in members if r["part"] == part]
            groups = sorted({r["group"] for r in in_part})
            if len(groups) > 1:
                for group in groups:
                    out.append(summarise([r for r in in_part if r["group"] == group],
                                         {"family": family, "part": part, "group": group}))
            out.append(summarise(in_part, {"family": family, "part": part, "group": "all"}))
        if len(parts) > 1:
            out.append(summarise(members, {"family": family, "part": "all", "group": "all"}))
    return out


def markdown(summary: list[dict[str, Any]], sheets: dict[str, str]) -> str:
    """The families table (markdown)."""
    def number(value: float) -> str:
        return "–" if not math.isfinite(value) else f"{value:.2f}"

    lines = ["| family | part | group | pages | read | refused | 2024 SNR dB | Kaggle-2025 dB | "
             "layout right | gain right | speed right | median s/page |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in summary:
        refused = str(s["refused"]) + (f" (+{s['crashed']} crashed)" if s["crashed"] else "")
        if s["unread"]:
            refused += f" ({s['unread']} not read yet)"
        scored = s["scored"] > 0
        lines.append(
            f"| {s['family']} | {s['part']} | {s['group']} | {s['pages']} | {s['read']} | "
            f"{refused} | {number(s['snr_2024_db']) if scored else '–'} | "
            f"{number(s['kaggle_2025_db']) if scored else '–'} | "
            f"{s['layout_right'] if scored else '–'} | {s['gain_right'] if scored else '–'} | "
            f"{s['speed_right'] if scored else '–'} | {number(s['median_s'])} |")
    if sheets:
        lines += ["", "Contact sheets (overlays, for grading by eye): "
                  + ", ".join(f"{k}: `{v}`" for k, v in sheets.items())]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- contact sheet
def contact_sheet(pages: list[Page], out: Path, sheet: Path) -> Path:
    """A JPEG (< 1 MB) of every page's overlay, or of the input with the refusal printed."""
    import cv2
    import numpy as np
    from PIL import Image

    tw, th = SHEET_TILE
    tiles = []
    for page in pages:
        read_dir = read_dir_of(out, page.family)
        overlay = read_dir / f"{page.stem}_overlay.png"
        meta = _read_meta(read_dir, page.stem)
        pic = None
        if overlay.exists():
            pic = cv2.imread(str(overlay), cv2.IMREAD_COLOR)
            caption = (f"{page.stem}: {meta.get('layout')} {meta.get('gain_mm_mv')}mm/mV "
                       f"{meta.get('speed_mm_s')}mm/s")
        else:
            reason = _refusal(read_dir, page.stem) or "not read"
            caption = f"{page.stem}: {reason.replace(page.image + ': ', '')}"
        if pic is None:
            pic = cv2.imread(page.image, cv2.IMREAD_COLOR)
        if pic is None:
            pic = np.full((th, tw, 3), 200, np.uint8)
        pic = cv2.cvtColor(pic, cv2.COLOR_BGR2RGB)
        h, w = pic.shape[:2]
        scale = min(tw / w, (th - 30) / h)
        small = cv2.resize(pic, (max(1, int(w * scale)), max(1, int(h * scale))),
                           interpolation=cv2.INTER_AREA)
        tile = np.full((th, tw, 3), 255, np.uint8)
        tile[30:30 + small.shape[0], :small.shape[1]] = small
        for j, line in enumerate(textwrap.wrap(caption, 62)[:2]):
            cv2.putText(tile, line, (3, 12 + 13 * j), cv2.FONT_HERSHEY_SIMPLEX, 0.36, (0, 0, 0),
                        1, cv2.LINE_AA)
        tiles.append(tile)
    while len(tiles) % SHEET_COLUMNS:
        tiles.append(np.full((th, tw, 3), 255, np.uint8))
    grid = np.vstack([np.hstack(tiles[r * SHEET_COLUMNS:(r + 1) * SHEET_COLUMNS])
                      for r in range(len(tiles) // SHEET_COLUMNS)])
    sheet.parent.mkdir(parents=True, exist_ok=True)
    quality = 80
    while True:
        Image.fromarray(grid).save(sheet, quality=quality, optimize=True)
        if sheet.stat().st_size < SHEET_MAX_BYTES or quality <= 40:
            return sheet
        quality -= 10


# ---------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES))
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "families"))
    parser.add_argument("--own-set", default=str(REPO / "benchmarks" / "out" / "seed0"),
                        help="a set folder from benchmarks/make_set.py")
    parser.add_argument("--own-every", type=int, default=1, help="read every N-th own page")
    parser.add_argument("--eik-part", choices=("tune", "val", "all"), default="val",
                        help="ECG-Image-Kit records of strat_fold 1-8 (tune), 9 (val) or both")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--fresh", action="store_true", help="read pages already read again")
    parser.add_argument("--overlay", action="store_true",
                        help="also write overlays for the own and eik pages")
    parser.add_argument("--score-only", action="store_true", help="score what is already read")
    parser.add_argument("--eik-variants", nargs="+", default=None,
                        choices=("clean", "scan", "wrinkles", "layout"),
                        help="only ECG-Image-Kit pages of these variants")
    parser.add_argument("--limit", type=int, default=None,
                        help="only the first N pages of each family (a quick check)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    data, out = Path(args.data), Path(args.out)

    pages: list[Page] = []
    for family in FAMILIES:        # fixed order: the table reads the same whatever was asked
        if family not in args.families:
            continue
        if family == "own":
            found = own_pages(Path(args.own_set), args.own_every)
        elif family == "eik":
            found = eik_pages(data / "ecg_image_kit" / "synthetic", args.eik_part)
        elif family == "photos":
            found = photo_pages(data / "real_photos" / "paper2pulse")
        else:
            found = real_pages(data)
        if family == "eik" and args.eik_variants is not None:
            found = [p for p in found if p.group in args.eik_variants]
        pages += found[: args.limit]
    if not args.score_only:
        run_reading(pages, out, args.jobs, args.fresh, args.overlay)

    rows = page_rows(pages, out, args.jobs)
    summary = table_rows(rows)
    sheets = {}
    for family in ("photos", "real"):
        members = [p for p in pages if p.family == family]
        if members:
            sheet = contact_sheet(members, out, out / family / "sheet.jpg")
            sheets[family] = os.path.relpath(sheet)
    table = markdown(summary, sheets)
    print(table)
    out.mkdir(parents=True, exist_ok=True)
    (out / "families.md").write_text(table)
    import ecglens

    settings = {"families": args.families, "eik_part": args.eik_part,
                "own_set": args.own_set, "own_every": args.own_every,
                "ecglens": str(Path(ecglens.__file__).parent)}
    (out / "families.json").write_text(json.dumps(
        {"settings": settings, "summary": summary, "pages": rows, "sheets": sheets},
        indent=1, default=str))
    print(f"wrote {out / 'families.md'} and {out / 'families.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
