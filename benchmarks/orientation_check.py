"""The orientation stage and the final ECG check, measured on every family of pages.

Usage::

    python benchmarks/make_set.py --out benchmarks/out/orient_set --n 120 \
        --profiles clean scan --seed 0
    python benchmarks/orientation_check.py --set benchmarks/out/orient_set \
        --out benchmarks/out/orientation_check --jobs 2
    python benchmarks/orientation_check.py --step own=2 eik=3 --jobs 2     # a sample
    python benchmarks/orientation_check.py --summarise-only    # summary.md from the .jsonl

Families: ``own`` (the set ``make_set.py`` made, with truth), ``eik`` (ECG-Image-Kit
synthetic pages, with truth), ``photos`` (paper2pulse phone photos, 20 with truth), ``real``
(the 53 real images, no truth).

Every page is read with the ECG check measured but not enforced
(``digitize_image(..., check=False)``); ``summary.md`` judges the measures with this
checkout's thresholds (:meth:`ecglens.digitize.ecg_check.ReadingCheck.from_json`), as the
pipeline does, so ``--summarise-only`` shows what other thresholds would refuse.

1. **Pages as given** (every page, or every N-th with ``--step``): the orientation decision
   and its evidence, the check's measures and verdict, layout, gain, speed, and the mean SNR
   and median r against the truth where there is one. A page a person reads correctly is one
   whose read matches its truth (SNR and r); the check must refuse none.
2. **Turned pages** (``--turned`` per family, evenly spaced over the pages read upright in
   part 1): each turned by 90°, 180° and 270°. *right*: the orientation stage named the turn,
   the layout, gain and speed are the upright read's and the record correlates with it
   (median r over the leads > 0.9); *refused*: the error names the rotation; *check*: refused
   by the ECG check; *error*: refused for another reason; *wrong*: read, but not as upright.
3. **Not ECGs**: a page of text, random lines on an ECG grid, smooth waves, photos and a
   line drawing; each must be refused.

Writes ``pages.jsonl``, ``turned.jsonl``, ``not_ecg.jsonl`` and ``summary.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import json
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
FAMILIES = ("own", "eik", "photos", "real")
TURNS_DEG = (90, 180, 270)
SAME_READ_R = 0.9
"""Median correlation over the leads of a turned page's read with the upright read, above
which the turned page counts as read as well."""


def family_pages(name: str, set_dir: Path, data: Path) -> list[tuple[Path, Path | None]]:
    """``(image, truth header or None)`` for every page of a family."""
    if name == "own":
        return [(p, p.with_name(p.stem + "_truth.hea")) for p in sorted(set_dir.glob("*.png"))
                if not p.stem.endswith("_overlay")]
    if name == "eik":
        root = data / "ecg_image_kit" / "synthetic"
        return [(p, root / "truth" / f"{p.stem}.hea")
                for p in sorted((root / "images").glob("*.jpg"))]
    if name == "photos":
        root = data / "real_photos" / "paper2pulse"
        pages = []
        for p in sorted((root / "images").glob("*.jpg")):
            truth = root / "truth" / f"{p.stem}.hea"
            pages.append((p, truth if truth.exists() else None))
        return pages
    if name == "real":
        images = sorted(p for p in (data / "ecg_image_kit" / "real_images").iterdir()
                        if p.suffix.lower() in {".png", ".jpg", ".jpeg", ".bmp"})
        images.append(data / "real_images" / "tereshchenkolab_paper-ecg" / "fullScan.png")
        return [(p, None) for p in images]
    raise ValueError(f"unknown family {name}")


def _score(truth: Any, record: Any) -> tuple[float, float]:
    from ecglens.score.metrics import score_record

    scores = score_record(truth, record)
    snr = [s.snr_db for s in scores.values() if math.isfinite(s.snr_db)]
    r = [s.pearson_r for s in scores.values() if math.isfinite(s.pearson_r)]
    return (float(np.mean(snr)) if snr else float("nan"),
            float(np.median(r)) if r else float("nan"))


def _agreement(a: Any, b: Any) -> float:
    """Median over the leads of the correlation of two reads of one page."""
    rs = []
    for k in range(min(a.signal.shape[1], b.signal.shape[1])):
        x, y = a.signal[:, k], b.signal[:, k]
        n = min(len(x), len(y))
        ok = np.isfinite(x[:n]) & np.isfinite(y[:n])
        if ok.sum() > 50 and np.std(x[:n][ok]) > 0 and np.std(y[:n][ok]) > 0:
            rs.append(float(np.corrcoef(x[:n][ok], y[:n][ok])[0, 1]))
    return float(np.median(rs)) if rs else float("nan")


def _read(image: np.ndarray, source: str, dpi: float | None, check: bool) -> Any:
    from ecglens.digitize.pipeline import digitize_image

    return digitize_image(image, source=source, dpi_prior=dpi, check=check)


def read_as_given(family: str, path: str, truth: str | None) -> dict[str, Any]:
    """Part 1 for one page."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from ecglens.core.errors import EcglensError
    from ecglens.core.io import read_record
    from ecglens.digitize.load import iter_pages

    start = time.perf_counter()
    out: dict[str, Any] = {"family": family, "page": Path(path).name}
    page = next(iter(iter_pages(path)))
    try:
        result = _read(page.image, path, page.dpi_prior, check=False)
    except EcglensError as exc:
        out.update(error=exc.reason, seconds=round(time.perf_counter() - start, 2))
        return out
    out.update(orientation=result.orientation.to_json(), check=result.ecg_check.to_json(),
               layout=result.layout.name,
               gain=result.calibration.gain_mm_mv, speed=result.calibration.speed_mm_s,
               orient_s=round(result.timings_s.get("orient", 0.0), 3),
               check_s=round(result.timings_s.get("check", 0.0), 3))
    if truth:
        out["snr_db"], out["r"] = (round(v, 3) for v in _score(read_record(truth),
                                                               result.record))
    out["seconds"] = round(time.perf_counter() - start, 2)
    return out


def read_turned(family: str, path: str) -> list[dict[str, Any]]:
    """Part 2 for one page: its upright read and its reads turned by each of TURNS_DEG."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from ecglens.core.errors import EcglensError
    from ecglens.digitize.load import iter_pages

    page = next(iter(iter_pages(path)))
    upright = _read(page.image, path, page.dpi_prior, check=False)
    rows = []
    for turn in TURNS_DEG:
        # np.rot90 turns counter-clockwise: the page as given is turned by `turn`
        image = np.ascontiguousarray(np.rot90(page.image, turn // 90))
        out: dict[str, Any] = {"family": family, "page": Path(path).name, "turn": turn}
        try:
            result = _read(image, path, page.dpi_prior, check=False)
        except EcglensError as exc:
            out["error"] = exc.reason
            rows.append(out)
            continue
        same = (result.layout.name == upright.layout.name
                and result.calibration.gain_mm_mv == upright.calibration.gain_mm_mv
                and result.calibration.speed_mm_s == upright.calibration.speed_mm_s)
        out.update(rotation_deg=result.orientation.rotation_deg,
                   suspicion=result.orientation.suspicion,
                   reason=result.orientation.reason, check=result.ecg_check.to_json(),
                   same_settings=same, r=round(_agreement(upright.record, result.record), 3),
                   layout=result.layout.name, upright_layout=upright.layout.name)
        rows.append(out)
    return rows


def turned_outcome(row: dict[str, Any]) -> str:
    """*right*, *refused* (the rotation named), *check* (refused by the ECG check, judged
    with this checkout's thresholds), *error* (refused for another reason) or *wrong*."""
    from ecglens.digitize.ecg_check import ReadingCheck

    if "error" in row:
        return "refused" if "rotated by" in row["error"] else "error"
    if ReadingCheck.from_json(row["check"]).refused:
        # the pipeline's error then begins with the orientation stage's suspicion
        return "refused" if row.get("suspicion") else "check"
    right = (row["rotation_deg"] == row["turn"] and row["same_settings"]
             and row["r"] is not None and row["r"] > SAME_READ_R)
    return "right" if right else "wrong"


def not_ecg_images(seed: int = 0) -> dict[str, np.ndarray]:
    """Pages that are not ECGs: text, random lines on a grid, waves, photos, a drawing."""
    import cv2

    rng = np.random.default_rng(seed)
    h, w = 1600, 2200
    ppmm = 200 / 25.4

    def grid_page() -> np.ndarray:
        page = np.full((h, w, 3), 255, np.uint8)
        for k, x in enumerate(np.arange(0, w, ppmm)):
            page[:, int(x)] = (228, 96, 96) if k % 5 == 0 else (247, 178, 178)
        for k, y in enumerate(np.arange(0, h, ppmm)):
            page[int(y), :] = (228, 96, 96) if k % 5 == 0 else (247, 178, 178)
        return page

    images = {}
    text = np.full((h, w, 3), 255, np.uint8)
    words = ["patient", "report", "the", "of", "and", "rhythm", "normal", "signed", "date"]
    for top in range(80, h - 40, 45):
        line = " ".join(rng.choice(words, 12))
        cv2.putText(text, line, (60, top), cv2.FONT_HERSHEY_SIMPLEX, 1.1, (0, 0, 0), 2)
    images["text_page"] = text
    for name, smooth in (("random_lines", 3), ("random_walk", 15)):
        page = grid_page()
        for row in range(4):
            steps = rng.normal(0, 1, w)
            y = np.convolve(np.cumsum(steps) if name == "random_walk" else steps * 25,
                            np.ones(smooth) / smooth, mode="same")
            y = y - y.mean()
            ys = (300 + 330 * row + np.clip(y, -120, 120)).astype(np.int32)
            pts = np.stack([np.arange(100, w - 100), ys[100:w - 100]], axis=1)
            cv2.polylines(page, [pts.reshape(-1, 1, 2)], False, (0, 0, 0), 2, cv2.LINE_AA)
        images[name] = page
    waves = grid_page()
    for row in range(4):
        xs = np.arange(100, w - 100)
        ys = (300 + 330 * row + 60 * np.sin(2 * np.pi * xs / 200.0)).astype(np.int32)
        cv2.polylines(waves, [np.stack([xs, ys], 1).reshape(-1, 1, 2)], False, (0, 0, 0), 2,
                      cv2.LINE_AA)
    images["sine_waves"] = waves
    drawing = np.full((h, w, 3), 255, np.uint8)
    cv2.rectangle(drawing, (500, 700), (1500, 1400), (0, 0, 0), 4)
    cv2.line(drawing, (450, 720), (1000, 250), (0, 0, 0), 4)
    cv2.line(drawing, (1000, 250), (1550, 720), (0, 0, 0), 4)
    cv2.rectangle(drawing, (900, 1050), (1100, 1400), (0, 0, 0), 4)
    cv2.circle(drawing, (1800, 300), 150, (0, 0, 0), 4)
    cv2.line(drawing, (0, 1450), (w, 1450), (0, 0, 0), 4)
    images["house_drawing"] = drawing
    try:
        import skimage.data

        for name in ("astronaut", "coffee", "chelsea"):
            photo = getattr(skimage.data, name)()
            images[f"photo_{name}"] = cv2.resize(photo, None, fx=3, fy=3,
                                                 interpolation=cv2.INTER_CUBIC)
    except ImportError:   # no photos without scikit-image
        pass
    return images


def read_not_ecg(name: str, image: np.ndarray) -> dict[str, Any]:
    """Part 3 for one image."""
    from ecglens.core.errors import EcglensError

    try:
        result = _read(image, name, 200.0, check=False)
    except EcglensError as exc:
        return {"image": name, "error": exc.reason}
    return {"image": name, "layout": result.layout.name, "check": result.ecg_check.to_json()}


def summarise(pages: list[dict], turned: list[dict], not_ecg: list[dict]) -> str:
    """The markdown summary (the check's verdicts judged with this checkout's thresholds)."""
    from ecglens.digitize.ecg_check import ReadingCheck
    from ecglens.digitize.orient import CONFIRMED

    def verdict(row: dict[str, Any]) -> ReadingCheck:
        return ReadingCheck.from_json(row["check"])

    lines = ["# Orientation stage and ECG check, per family", "",
             "## Pages as given", "",
             "| family | pages | read | errors | orientation 0 | of them not confirmed | turned "
             "| refused as rotated | suspected 90/270 | check would refuse | of them with truth: "
             "mean SNR / r |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    by_family: dict[str, list[dict]] = collections.defaultdict(list)
    for p in pages:
        by_family[p["family"]].append(p)
    notes = []
    for family in FAMILIES:
        rows = by_family.get(family, [])
        if not rows:
            continue
        read = [p for p in rows if "error" not in p]
        rotated_refused = [p for p in rows if "rotated by" in p.get("error", "")]
        turned_pages = [p for p in read if p["orientation"]["rotation_deg"]]
        unconfirmed = [p for p in read if not p["orientation"]["rotation_deg"]
                       and p["orientation"]["confidence"] < CONFIRMED]
        suspected = [p for p in rows if "rotated by 90 or 270" in p.get("error", "")
                     or p.get("orientation", {}).get("suspicion")]
        refused = [p for p in read if verdict(p).refused]
        scored = [f"{p['page']} {p.get('snr_db', float('nan')):.1f} dB / "
                  f"{p.get('r', float('nan')):.2f}" for p in refused if "snr_db" in p]
        lines.append(f"| {family} | {len(rows)} | {len(read)} | {len(rows) - len(read)} | "
                     f"{len(read) - len(turned_pages)} | {len(unconfirmed)} | "
                     f"{len(turned_pages)} | "
                     f"{len(rotated_refused)} | {len(suspected)} | {len(refused)} | "
                     f"{'; '.join(scored) or '-'} |")
        for p in turned_pages:
            notes.append(f"- {family} {p['page']}: turned by "
                         f"{p['orientation']['rotation_deg']} deg "
                         f"({p['orientation']['reason']})")
        for p in rotated_refused:
            notes.append(f"- {family} {p['page']}: refused: {p['error']}")
        for p in refused:
            notes.append(f"- {family} {p['page']}: check would refuse: "
                         f"{'; '.join(verdict(p).failures)}")
    lines += ["", *notes, ""]
    measures = ["beats", "rate_bpm", "beat_correlation", "rhythm_agreement", "einthoven",
                "read_share"]
    lines += ["## Check measures on pages read (min / 5th pct / median / 95th pct / max)", "",
              "| family | " + " | ".join(measures) + " |", "|---|" + "---|" * len(measures)]
    for family in FAMILIES:
        read = [p for p in by_family.get(family, []) if "error" not in p]
        if not read:
            continue
        cells = []
        for m in measures:
            v = np.array([p["check"][m] for p in read if p["check"][m] is not None], float)
            cells.append("-" if not len(v) else " / ".join(
                f"{x:.2f}" for x in (v.min(), *np.percentile(v, [5, 50, 95]), v.max())))
        lines.append(f"| {family} | " + " | ".join(cells) + " |")
    lines += ["", "## Turned pages", "", "| family | turn | pages | right | refused (rotation "
              "named) | refused by the check | refused (other) | wrong |",
              "|---|---|---|---|---|---|---|---|"]
    counts: dict[tuple[str, int], collections.Counter] = collections.defaultdict(
        collections.Counter)
    for t in turned:
        counts[(t["family"], t["turn"])][turned_outcome(t)] += 1
    for (family, turn), c in sorted(counts.items()):
        lines.append(f"| {family} | {turn} | {sum(c.values())} | {c['right']} | {c['refused']} "
                     f"| {c['check']} | {c['error']} | {c['wrong']} |")
    lines.append("")
    for t in turned:
        outcome = turned_outcome(t)
        if outcome != "right":
            why = (t.get("error") or "; ".join(ReadingCheck.from_json(t["check"]).failures)
                   if outcome in ("refused", "error", "check") else
                   f"orientation {t['rotation_deg']} ({t['reason']}), layout {t['layout']} "
                   f"(upright {t['upright_layout']}), r {t['r']}")
            lines.append(f"- {t['family']} {t['page']} turned {t['turn']}: {outcome}: {why}")
    lines += ["", "## Not ECGs", "", "| image | refused | reason |", "|---|---|---|"]
    for n in not_ecg:
        reason = n.get("error") or verdict(n).reason or f"read as {n['layout']}, {n['check']}"
        is_refused = "error" in n or verdict(n).refused
        lines.append(f"| {n['image']} | {is_refused} | {reason} |")
    return "\n".join(lines) + "\n"


def _load(path: Path) -> list[dict[str, Any]]:
    """The rows of a JSON-lines file."""
    return [json.loads(line) for line in path.read_text().splitlines()]


def _run(function: Any, jobs: list[tuple], n_jobs: int, path: Path | None, name: str,
         append: bool = False) -> list[Any]:
    """``function(*job)`` for every job over ``n_jobs`` processes, in order; each result
    written to ``path`` (JSON lines, added to it with ``append``) as it comes."""
    if not jobs:
        return []
    start = time.perf_counter()
    results = []
    with concurrent.futures.ProcessPoolExecutor(max(1, n_jobs)) as pool:
        fh = path.open("a" if append else "w") if path else None
        for k, row in enumerate(pool.map(function, *zip(*jobs, strict=True)), 1):
            results.append(row)
            if fh:
                fh.write(json.dumps(row) + "\n")
                fh.flush()
            sys.stderr.write(f"\r{name} {k}/{len(jobs)} {time.perf_counter() - start:6.0f} s")
        if fh:
            fh.close()
    sys.stderr.write("\n")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default="benchmarks/out/orient_set",
                        help="the own renderer's set (make_set.py)")
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--out", default="benchmarks/out/orientation_check")
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--step", nargs="*", default=[], metavar="FAMILY=N",
                        help="read every N-th page of FAMILY (default: every page)")
    parser.add_argument("--turned", type=int, default=10, help="pages per family turned")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--resume", action="store_true",
                        help="keep the pages of pages.jsonl from an interrupted run")
    parser.add_argument("--summarise-only", action="store_true",
                        help="only write summary.md again from the .jsonl of an earlier run")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    steps = {family: int(n) for family, n in (item.split("=") for item in args.step)}
    jobs = []
    for family in args.families:
        every = steps.get(family, 1)
        for image, truth in family_pages(family, Path(args.set), Path(args.data))[::every]:
            jobs.append((family, str(image), str(truth) if truth else None))
    if args.summarise_only:
        summary = summarise(*(_load(out / name) for name in ("pages.jsonl", "turned.jsonl",
                                                             "not_ecg.jsonl")))
        (out / "summary.md").write_text(summary)
        print(summary)
        return 0
    pages = _load(out / "pages.jsonl") if args.resume and (out / "pages.jsonl").exists() else []
    done = {(p["family"], p["page"]) for p in pages}
    todo = [job for job in jobs if (job[0], Path(job[1]).name) not in done]
    pages += _run(read_as_given, todo, args.jobs, out / "pages.jsonl", "pages",
                  append=args.resume)
    # the turned sample: pages read as given, upright, evenly spaced over each family
    upright = {(p["family"], p["page"]) for p in pages
               if "error" not in p and p["orientation"]["rotation_deg"] == 0}
    sample = []
    for family in args.families:
        read = [(f, path) for f, path, _ in jobs
                if f == family and (f, Path(path).name) in upright]
        if read and args.turned:
            picks = np.unique(np.linspace(0, len(read) - 1, min(args.turned, len(read)))
                              .round().astype(int))
            sample += [read[i] for i in picks]
    turned = [row for rows in _run(read_turned, sample, args.jobs, None, "turned")
              for row in rows]
    (out / "turned.jsonl").write_text("".join(json.dumps(t) + "\n" for t in turned))
    not_ecg = [read_not_ecg(name, image) for name, image in not_ecg_images().items()]
    (out / "not_ecg.jsonl").write_text("".join(json.dumps(n) + "\n" for n in not_ecg))
    summary = summarise(pages, turned, not_ecg)
    (out / "summary.md").write_text(summary)
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
