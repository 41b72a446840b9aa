"""Trace-direction evidence per family: the page score of :mod:`ecglens.digitize.trace_direction`
on every page as given (all upright, bar the odd real photo), which is also minus its score
turned by 180° (the network is antisymmetric and the centre line is read the same way turned).

Usage::

    python benchmarks/trace_direction_check.py --out benchmarks/out/trace_direction_check \
        --families own eik photos real --own-set benchmarks/out/seed0 --jobs 1

Writes ``pages.jsonl`` (one row per page; resumable) and ``summary.md``: per family and part
(ECG-Image-Kit split by record: folds 1–8 "tune", fold 9 "validation"), how many pages have a
score beyond ±T for a few thresholds T (beyond +T: an upside-down copy would be turned right;
below −T: the upright page would be turned wrong).
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from orientation_check import _run, family_pages  # noqa: E402

THRESHOLDS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5)


def _eik_folds(data: Path) -> dict[str, int]:
    with open(data / "ecg_image_kit" / "synthetic" / "pages.csv") as f:
        return {row["page"]: int(row["strat_fold"]) for row in csv.DictReader(f)}


def score_page(family: str, image_path: str, windows_dir: str) -> dict[str, Any]:
    """The page's direction score and window count (an error string where it fails); its
    windows are kept in ``windows_dir`` so that another model can be judged without reading
    the pages again (``--rescore``)."""
    import os

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from ecglens.digitize.layout_detect import find_rows
    from ecglens.digitize.load import iter_pages
    from ecglens.digitize.pipeline import page_ink
    from ecglens.digitize.trace_direction import (
        page_direction,
        row_centre_line,
        row_windows,
    )

    start = time.perf_counter()
    row: dict[str, Any] = {"family": family, "page": Path(image_path).name}
    try:
        page = next(iter_pages(image_path))
        ink = page_ink(page.image, page.dpi_prior)
        rows = find_rows(ink.darkness, ink.px_per_mm_y)
        pitch = rows.pitch_px if math.isfinite(rows.pitch_px) else 40.0 * ink.px_per_mm_y
        windows = [w for r in rows.rows for w in row_windows(
            row_centre_line(ink.darkness, r.centre_px, r.x_first_px, r.x_last_px, pitch),
            ink.px_per_mm_x)]
        np.save(Path(windows_dir) / f"{family}__{Path(image_path).stem}.npy",
                np.asarray(windows, dtype=np.float32).reshape(-1, 250))
        clock = time.perf_counter()
        score, n = page_direction(ink.darkness, [(r.centre_px, r.x_first_px, r.x_last_px)
                                                 for r in rows.rows], pitch, ink.px_per_mm_x)
        row.update(score=None if math.isnan(score) else round(score, 4), windows=n,
                   rows=len(rows.rows), direction_s=round(time.perf_counter() - clock, 3))
    except Exception as exc:  # a page that cannot be read is counted, not fatal
        row["error"] = f"{type(exc).__name__}: {exc}"
    row["seconds"] = round(time.perf_counter() - start, 2)
    return row


def decide_page(family: str, image_path: str) -> dict[str, Any]:
    """The orientation stage's decision on the page as given and turned by 90°, 180° and
    270° (the ink darkness turned, so the page is read once)."""
    import os

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from ecglens.digitize.load import iter_pages
    from ecglens.digitize.orient import find_orientation
    from ecglens.digitize.pipeline import page_ink

    row: dict[str, Any] = {"family": family, "page": Path(image_path).name}
    try:
        page = next(iter_pages(image_path))
        ink = page_ink(page.image, page.dpi_prior)
        for turn in (0, 90, 180, 270):
            dark = np.ascontiguousarray(np.rot90(ink.darkness, turn // 90))
            sx, sy = ((ink.px_per_mm_x, ink.px_per_mm_y) if turn % 180 == 0
                      else (ink.px_per_mm_y, ink.px_per_mm_x))
            o = find_orientation(dark, sx, sy, gather_all=True)
            row[str(turn)] = o.to_json()
    except Exception as exc:  # a page that cannot be read is counted, not fatal
        row["error"] = f"{type(exc).__name__}: {exc}"
    return row


def summarise_decisions(rows: list[dict[str, Any]], folds: dict[str, int]) -> str:
    """Per family and turn: pages turned right, left as given unconfirmed, refused, wrong.
    The page as given is taken as upright (a page as given that the stage turns is listed)."""
    from ecglens.digitize.orient import decide

    def decision(evidence: dict[str, Any]) -> dict[str, Any]:
        """This checkout's decision from the evidence kept (gathered in full)."""
        def counts(values: list[int | None] | None) -> dict[int, int] | None:
            return None if values is None else {r: v or 0 for r, v in zip(
                (0, 90, 180, 270), values, strict=True)}

        direction = tuple(None if d is None else (float(d[0]), int(d[1]))
                          for d in evidence["direction"])
        o = decide(evidence["rows_across"], evidence["rows_down"],
                   counts(evidence["pulses"]) or {}, counts(evidence["lead_names"]),
                   direction)  # type: ignore[arg-type]
        return {"rotation": o.rotation_deg, "refused": bool(o.refused),
                "confirmed": o.confirmed, "why": o.reason.split(":")[0]}

    groups: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for r in rows:
        name = r["family"]
        if name == "eik":
            name += " validation" if folds.get(Path(r["page"]).stem) == 9 else " tune"
        if "error" not in r:
            r = {**r, **{t: decision(r[t]) for t in ("0", "90", "180", "270")}}
        groups[name].append(r)
    lines = ["# Orientation decisions per family (page as given = upright)", "",
             "| family | turn | pages | right, confirmed | right by trace direction "
             "| as given, not confirmed | refused | wrong |", "|---|---|---|---|---|---|---|---|"]
    wrong_list = []
    for name in sorted(groups):
        ok = [r for r in groups[name] if "error" not in r]
        for turn in (0, 90, 180, 270):
            d = [r[str(turn)] for r in ok]
            right = [x for x in d if x["rotation"] == turn and not x["refused"]]
            conf = sum(x["confirmed"] for x in right)
            by_dir = sum(x["why"] == "trace direction" for x in right)
            unconf = sum(1 for x in d if x["rotation"] == 0 and turn != 0 and not x["refused"]
                         and not x["confirmed"])
            unconf += sum(1 for x in right if not x["confirmed"])
            refused = sum(x["refused"] for x in d)
            wrong = [r for r in ok if r[str(turn)]["rotation"] != turn
                     and not r[str(turn)]["refused"] and (r[str(turn)]["confirmed"]
                                                          or r[str(turn)]["rotation"] != 0)]
            wrong_list += [f"{name} {r['page']} turned {turn}: read as turned by "
                           f"{r[str(turn)]['rotation']} ({r[str(turn)]['why']})" for r in wrong]
            lines.append(f"| {name} | {turn} | {len(d)} | {conf} | {by_dir} | {unconf} | "
                         f"{refused} | {len(wrong)} |")
    return "\n".join(lines + ["", "Wrong:", ""] + [f"- {w}" for w in wrong_list]) + "\n"


def summarise(pages: list[dict[str, Any]], folds: dict[str, int]) -> str:
    groups: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for p in pages:
        name = p["family"]
        if name == "eik":
            name += " validation" if folds.get(Path(p["page"]).stem) == 9 else " tune"
        groups[name].append(p)
    head = " | ".join(f"> +{t} / < -{t}" for t in THRESHOLDS)
    lines = ["# Trace direction per family (pages as given: upright)", "",
             f"| family | pages | scored | median score | {head} |",
             "|---|---|---|---|" + "---|" * len(THRESHOLDS)]
    for name in sorted(groups):
        rows = groups[name]
        scores = np.array([p["score"] for p in rows if p.get("score") is not None])
        cells = [f"{int((scores > t).sum())} / {int((scores < -t).sum())}" for t in THRESHOLDS]
        med = f"{np.median(scores):.2f}" if scores.size else "-"
        lines.append(f"| {name} | {len(rows)} | {scores.size} | {med} | {' | '.join(cells)} |")
    lines += ["", "Lowest scores:", ""]
    for p in sorted((p for p in pages if p.get("score") is not None),
                    key=lambda p: p["score"])[:12]:
        lines.append(f"- {p['family']} {p['page']}: {p['score']:.2f} ({p['windows']} windows)")
    return "\n".join(lines) + "\n"


def _todo(a: argparse.Namespace, rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """``(family, image)`` of every page asked for that ``rows`` do not hold yet."""
    done = {(r["family"], r["page"]) for r in rows}
    return [(f, str(img)) for f in a.families
            for img, _ in family_pages(f, Path(a.own_set), Path(a.data))[::a.every]
            if (f, img.name) not in done]


def _decide_all(a: argparse.Namespace, out: Path) -> int:
    path = out / "decisions.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    rows += _run(decide_page, _todo(a, rows), a.jobs, path, "decisions", append=True)
    summary = summarise_decisions(rows, _eik_folds(Path(a.data)))
    (out / "decisions.md").write_text(summary)
    print(summary)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "trace_direction_check"))
    p.add_argument("--families", nargs="+", default=["own", "eik", "photos", "real"])
    p.add_argument("--own-set", default=str(REPO / "benchmarks" / "out" / "seed0"))
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    p.add_argument("--every", type=int, default=1, help="every Nth page of each family")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--decide", action="store_true",
                   help="the orientation stage's decisions at 0/90/180/270 deg instead")
    p.add_argument("--rescore", action="store_true",
                   help="score the kept windows with the current model; read no page")
    a = p.parse_args(argv)
    out = Path(a.out)
    (out / "windows").mkdir(parents=True, exist_ok=True)
    path = out / "pages.jsonl"
    pages = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    if a.decide:
        return _decide_all(a, out)
    if a.rescore:
        from ecglens.digitize.trace_direction import MAX_WINDOW_SCORE, window_scores

        for row in pages:
            kept = out / "windows" / f"{row['family']}__{Path(row['page']).stem}.npy"
            if "error" in row or not kept.exists():
                continue
            windows = np.load(kept)
            scores = np.clip(window_scores(list(windows)), -MAX_WINDOW_SCORE, MAX_WINDOW_SCORE)
            row["score"] = round(float(np.mean(scores)), 4) if len(windows) else None
        summary = summarise(pages, _eik_folds(Path(a.data)))
        (out / "summary.md").write_text(summary)
        print(summary)
        return 0
    jobs = [(*job, str(out / "windows")) for job in _todo(a, pages)]
    pages += _run(score_page, jobs, a.jobs, path, "pages", append=True)
    summary = summarise(pages, _eik_folds(Path(a.data)))
    (out / "summary.md").write_text(summary)
    print(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
