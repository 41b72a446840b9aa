"""STEMI rules against LUDB's diagnoses (column ``Ischemia`` of ``ludb.csv``).

Truth: a record is STEMI if its Ischemia cell has a ``Stemi:`` line (records 7, 21, 24, 33, 55,
64, 69, 86); "Undefined ischemia/scar/supp.nstemi" is not STEMI. Sex and age come from the
headers. Thresholds are the published ones (nothing tuned on these records). Also scores the
confounder flags against LUDB's labels (complete LBBB, pacing, LVH).

Usage::

    .venv/bin/python benchmarks/stemi_ludb.py                 # 1 µV/unit (physical) scale
    .venv/bin/python benchmarks/stemi_ludb.py --scale header  # LUDB's per-lead min-max gains
    .venv/bin/python benchmarks/stemi_ludb.py --at j60        # exploratory: rules at J+60 ms

``--at j60`` re-applies the same rules to the ST level at J+60 ms instead of the J point. This
is NOT the published criterion and NOT what ``ecglens analyze`` does; it is reported only to
show how far LUDB's STEMI records are from the J-point criteria.

Writes ``benchmarks/out/stemi_ludb_<scale>[_j60].{json,md}``. Misses also list the ST level at
each lead's annotated J point (LUDB experts), to separate J-point detection from the criteria.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

from ecglens.analysis import delineate  # noqa: E402
from ecglens.analysis.ludb import LUDB_LEADS, read_fiducials, read_ludb_record  # noqa: E402
from ecglens.analysis.report import analyze_record  # noqa: E402
from ecglens.analysis.st import measure_st  # noqa: E402
from ecglens.analysis.stemi import evaluate_stemi  # noqa: E402
from ecglens.core import beats as beats_mod  # noqa: E402
from ecglens.core.filters import filter_record  # noqa: E402
from ecglens.core.io import read_record  # noqa: E402

TERRITORY_MAP = {"anterior wall": "anterior", "apical": "anterior", "septal": "septal",
                 "lateral wall": "lateral", "inferior wall": "inferior",
                 "posterior wall": "posterior"}


def truth_table(ludb: Path):  # -> pandas.DataFrame
    """ID, stemi (bool), territories (set), lbbb, paced, lvh from ludb.csv."""
    import pandas as pd

    df = pd.read_csv(ludb / "ludb.csv")
    rows = []
    for _, r in df.iterrows():
        isch = str(r["Ischemia"]) if isinstance(r["Ischemia"], str) else ""
        terr = set()
        for line in isch.splitlines():
            if line.strip().lower().startswith("stemi:"):
                where = line.split(":", 1)[1].strip().lower()
                terr.add(TERRITORY_MAP.get(where, where))
        cond = str(r["Conduction abnormalities"]) if isinstance(r["Conduction abnormalities"],
                                                                 str) else ""
        hyp = str(r["Hypertrophies"]) if isinstance(r["Hypertrophies"], str) else ""
        rows.append({"id": int(r["ID"]), "stemi": bool(terr), "territories": terr,
                     "lbbb": "Complete left bundle branch block" in cond,
                     "paced": isinstance(r["Cardiac pacing"], str),
                     "lvh": "Left ventricular hypertrophy" in hyp, "ischemia": isch})
    return pd.DataFrame(rows)


def st_at_annotated_j(ludb: Path, rid: int, record) -> str:
    """ST at J (mV) per lead measured at each lead's annotated J point (median over beats)."""
    rec = record.standard12()
    x = filter_record(rec)
    beats = beats_mod.detect_beats(x, rec.fs)
    med = delineate.median_beats(x, rec.fs, beats)
    fid = delineate.delineate_median(med, float(np.median(np.diff(beats.anchors))))
    parts = []
    for k, lead in enumerate(LUDB_LEADS):
        ann = read_fiducials(ludb, rid, lead)
        if ann["j_point"].size == 0:
            continue
        offs = [j - beats.anchors[np.argmin(np.abs(beats.anchors - j))] for j in ann["j_point"]]
        level = measure_st(med, fid, rec.leads, j_point=med.pre + float(np.median(offs)))[k]
        parts.append(f"{rec.leads[k]}{level.st_j_mv:+.2f}")
    return " ".join(parts)


def at_j60(rep):  # -> StemiResult
    """The same rules applied to ST at J+60 ms (exploratory)."""
    shifted = {lv.lead: dataclasses.replace(lv, st_j_mv=lv.st_j60_mv) for lv in rep.st}
    paced = next(r for r in rep.stemi.rules if r.name == "ventricular pacing")
    return evaluate_stemi(shifted, rep.amplitudes, rep.intervals, rep.sex, rep.age, paced)


def _fmt_st(rep) -> str:
    return " ".join(f"{lv.lead}{lv.st_j_mv:+.2f}" for lv in rep.st if lv.measured)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ludb", type=Path, default=REPO.parent / "shared" / "data" / "ludb")
    parser.add_argument("--scale", choices=["uv", "header"], default="uv")
    parser.add_argument("--at", choices=["j", "j60"], default="j")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    truth = truth_table(args.ludb)
    reader = read_ludb_record if args.scale == "uv" else read_record
    records = []
    t0 = time.time()
    for _, row in truth.iterrows():
        record = reader(args.ludb / "data" / str(row.id))
        rep = analyze_record(record)
        s = rep.stemi
        if args.at == "j60" and s is not None:
            s = at_j60(rep)
        records.append({
            "id": int(row.id), "truth": bool(row.stemi),
            "truth_territories": sorted(row.territories),
            "measurable": rep.measurable, "detected": None if s is None else s.detected,
            "territories": [] if s is None else list(s.territories),
            "leads": [] if s is None else list(s.leads),
            "equivalents": [] if s is None else list(s.equivalents),
            "confounders": [] if s is None else list(s.confounders),
            "confidence": None if s is None else s.confidence,
            "statement": "" if s is None else s.statement, "st": _fmt_st(rep),
            "st_at_annotated_j": st_at_annotated_j(args.ludb, int(row.id), record)
            if row.stemi else "",
            "label_lbbb": bool(row.lbbb), "label_paced": bool(row.paced),
            "label_lvh": bool(row.lvh), "ischemia": row.ischemia})
    seconds = time.time() - t0
    pos = [r for r in records if r["truth"]]
    neg = [r for r in records if not r["truth"]]
    tp = [r for r in pos if r["detected"]]
    fp = [r for r in neg if r["detected"]]
    fp_eq = [r for r in neg if r["detected"] or r["equivalents"]]
    tp_eq = [r for r in pos if r["detected"] or r["equivalents"]]
    sens, spec = len(tp) / len(pos), 1 - len(fp) / len(neg)

    def flag_stats(label: str, name: str) -> str:
        lab = [r for r in records if r[f"label_{label}"]]
        found = [r for r in lab if name in r["confounders"]]
        extra = [r for r in records if not r[f"label_{label}"] and name in r["confounders"]]
        return (f"{name}: flagged {len(found)}/{len(lab)} labelled records "
                f"(ids {[r['id'] for r in found]}), {len(extra)} flagged without the label "
                f"(ids {[r['id'] for r in extra]})")

    terr_rows = []
    for r in tp:
        truth_t, pred_t = set(r["truth_territories"]), set(r["territories"])
        terr_rows.append(f"| {r['id']} | {', '.join(sorted(truth_t))} | "
                         f"{', '.join(sorted(pred_t)) or '–'} | "
                         f"{len(truth_t & pred_t)}/{len(truth_t)} |")
    lines = [f"# STEMI vs LUDB ({args.scale} scale, ST at {args.at}), {len(records)} records, "
             f"{seconds:.0f} s", "",
             f"- sensitivity {len(tp)}/{len(pos)} = {sens:.1%}",
             f"- specificity {len(neg) - len(fp)}/{len(neg)} = {spec:.1%}",
             f"- counting STEMI-equivalent flags as positive: sensitivity {len(tp_eq)}/{len(pos)}, "
             f"specificity {len(neg) - len(fp_eq)}/{len(neg)}",
             f"- not measurable: {[r['id'] for r in records if not r['measurable']]}",
             f"- {flag_stats('lbbb', 'LBBB')}", f"- {flag_stats('paced', 'ventricular pacing')}",
             f"- {flag_stats('lvh', 'LVH')}", "",
             "## Territory agreement (true positives)", "",
             "| id | LUDB | ecglens | agree |", "|---|---|---|---|", *terr_rows, "",
             "## Misses (LUDB STEMI, not called)", "",
             "| id | LUDB ischemia | confounders | equivalents | ST at J (mV) "
             "| ST at annotated J (mV) | statement |",
             "|---|---|---|---|---|---|---|"]
    for r in pos:
        if not r["detected"]:
            lines.append(f"| {r['id']} | {r['ischemia'].replace(chr(10), '; ')} | "
                         f"{', '.join(r['confounders']) or '–'} | "
                         f"{', '.join(r['equivalents']) or '–'} | {r['st']} | "
                         f"{r['st_at_annotated_j']} | {r['statement']} |")
    lines += ["", "## False alarms (called STEMI, LUDB not STEMI)", "",
              "| id | LUDB ischemia | territories | leads | confounders | ST at J (mV) |",
              "|---|---|---|---|---|---|"]
    for r in fp:
        lines.append(f"| {r['id']} | {r['ischemia'].replace(chr(10), '; ') or '–'} | "
                     f"{', '.join(r['territories'])} | {', '.join(r['leads'])} | "
                     f"{', '.join(r['confounders']) or '–'} | {r['st']} |")
    lines += ["", "## STEMI-equivalent flags on non-STEMI records", ""]
    for r in neg:
        if r["equivalents"] and not r["detected"]:
            lines.append(f"- {r['id']}: {', '.join(r['equivalents'])}")
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"stemi_ludb_{args.scale}{'_j60' if args.at == 'j60' else ''}"
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    stem.with_suffix(".json").write_text(json.dumps(
        {"sensitivity": sens, "specificity": spec, "records": records}, indent=1,
        default=lambda o: None if isinstance(o, float) and not math.isfinite(o) else str(o)))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
