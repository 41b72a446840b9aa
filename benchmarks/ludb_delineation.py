"""LUDB delineation benchmark: ecglens vs NeuroKit2 (dwt, cwt, peak), and ST level at J.

Protocol (anchors §6): for every annotated fiducial of every lead, the nearest prediction within
±150 ms is a match (error = prediction − truth); predictions outside the annotated span
(± 150 ms) are dropped, because LUDB annotates only the middle of each record. Errors are
**per beat**: ecglens places each beat's fiducials at the beat's anchor plus the median-beat
offsets (QRS onset and J point are global over the 12 leads, T end per lead); NeuroKit2 is run on
each lead separately (``ecg_clean`` → ``ecg_peaks`` → ``ecg_delineate``).

ST level: per lead, ST at our J point vs ST at the annotated J point of that lead (the median
annotated QRS offset relative to our beat anchors), same median beat and PR baseline.
Records are read at 1 µV per unit (see :mod:`analysis.ludb`).

Usage::

    .venv/bin/python benchmarks/ludb_delineation.py            # all 200 records, ~5 min
    .venv/bin/python benchmarks/ludb_delineation.py --no-neurokit --records 1-40
    .venv/bin/python benchmarks/ludb_delineation.py --figure docs/analysis_median_beats.png

Writes ``benchmarks/out/ludb_delineation.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

from ecglens.analysis import delineate  # noqa: E402
from ecglens.analysis.ludb import LUDB_LEADS, match_fiducials, read_fiducials, read_ludb_record  # noqa: E402
from ecglens.analysis.st import measure_st  # noqa: E402
from ecglens.core import beats as beats_mod  # noqa: E402
from ecglens.core.filters import filter_record  # noqa: E402

FIDUCIALS = ("qrs_onset", "j_point", "t_end", "p_onset")
NK_KEYS = {"qrs_onset": "ECG_R_Onsets", "j_point": "ECG_R_Offsets", "t_end": "ECG_T_Offsets",
           "p_onset": "ECG_P_Onsets"}
TUNING_IDS = set(range(1, 201, 5))  # k_onset/k_offset were chosen on these 40 records


def parse_ids(text: str) -> list[int]:
    """``1-200`` or ``1,5,9`` → list of ints."""
    if "-" in text:
        a, b = text.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(t) for t in text.split(",")]


def ecglens_predictions(record, fs):  # -> (dict lead -> dict fid -> samples, med, fid, beats, x)
    """Per-beat fiducial samples per lead from ecglens."""
    x = filter_record(record)
    beats = beats_mod.detect_beats(x, fs)
    med = delineate.median_beats(x, fs, beats)
    rr = float(np.median(np.diff(beats.anchors))) if beats.n > 1 else np.nan
    fid = delineate.delineate_median(med, rr)
    out = {}
    for k, _lead in enumerate(record.leads):
        t_end = fid.t_end_lead[k] if np.isfinite(fid.t_end_lead[k]) else fid.t_end
        out[k] = {name: beats.anchors + (off - med.pre) for name, off in
                  (("qrs_onset", fid.qrs_onset), ("j_point", fid.j_point),
                   ("t_end", t_end), ("p_onset", fid.p_onset))}
    return out, med, fid, beats


def neurokit_predictions(signal, fs, method):  # -> dict fid -> samples
    """NeuroKit2 fiducials of one lead (empty arrays on failure)."""
    import neurokit2 as nk

    try:
        clean = nk.ecg_clean(signal, sampling_rate=int(fs))
        _, info = nk.ecg_peaks(clean, sampling_rate=int(fs))
        _, waves = nk.ecg_delineate(clean, info["ECG_R_Peaks"], sampling_rate=int(fs),
                                    method=method)
    except Exception as exc:  # NeuroKit raises many kinds on odd beats
        logging.debug("neurokit %s failed: %s", method, exc)
        return {name: np.array([]) for name in FIDUCIALS}
    return {name: np.asarray(waves.get(key, []), dtype=float) for name, key in NK_KEYS.items()}


def summarise(errors: list[float], missed: int, extra: int) -> dict[str, float]:
    """Median/P90 absolute error, bias and Se/PPV of one method × fiducial."""
    e = np.asarray(errors)
    tp = len(e)
    out = {"n_matched": tp, "missed": missed, "extra": extra,
           "sensitivity": tp / (tp + missed) if tp + missed else np.nan,
           "ppv": tp / (tp + extra) if tp + extra else np.nan}
    if tp:
        out.update({"median_abs_ms": float(np.median(np.abs(e))),
                    "p90_abs_ms": float(np.percentile(np.abs(e), 90)),
                    "mean_ms": float(np.mean(e)), "sd_ms": float(np.std(e))})
    return out


def figure(ludb: Path, record_id: int, path: Path) -> None:
    """Median beats of one record with ecglens' and the experts' fiducials (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    record = read_ludb_record(ludb / "data" / str(record_id)).standard12()
    fs = record.fs
    _, med, fid, beats = ecglens_predictions(record, fs)
    ms = (np.arange(med.beats.shape[0]) - fid.qrs_onset) / fs * 1000.0
    fig, axes = plt.subplots(3, 4, figsize=(12, 7), sharex=True)
    for k, ax in enumerate(axes.flat):
        ann = read_fiducials(ludb, record_id, LUDB_LEADS[k])
        ax.plot(ms, med.beats[:, k] - fid.iso_mv[k], color="black", lw=1)
        ax.axhline(0, color="0.7", lw=0.5)
        for off, colour in ((fid.qrs_onset, "tab:green"), (fid.j_point, "tab:red"),
                            (fid.j_point + 0.06 * fs, "tab:orange"),
                            (fid.t_end_lead[k], "tab:blue")):
            if np.isfinite(off):
                ax.axvline((off - fid.qrs_onset) / fs * 1000.0, color=colour, lw=1)
        y_lo, y_hi = ax.get_ylim()
        for name in ("qrs_onset", "j_point", "t_end"):
            for t in ann[name]:
                a = beats.anchors[np.argmin(np.abs(beats.anchors - t))]
                x = (t - a + med.pre - fid.qrs_onset) / fs * 1000.0
                ax.plot([x], [y_lo], marker="^", color="tab:purple", ms=4, alpha=0.6)
        ax.set_ylim(y_lo - 0.05 * (y_hi - y_lo), y_hi)
        ax.set_title(record.leads[k], fontsize=9)
        ax.set_xlim(-250, 550)
    fig.suptitle(f"LUDB {record_id}: median beats vs PR level (mV); lines = ecglens QRS onset "
                 "(green), J (red), J+60 ms (orange), T end (blue); ▲ = expert fiducials per beat",
                 fontsize=9)
    fig.supxlabel("ms from QRS onset")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ludb", type=Path, default=REPO.parent / "shared" / "data" / "ludb")
    parser.add_argument("--records", default="1-200")
    parser.add_argument("--no-neurokit", action="store_true")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out")
    parser.add_argument("--figure", type=Path, default=None,
                        help="only draw the median beats of --figure-record to this PNG")
    parser.add_argument("--figure-record", type=int, default=1)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    if args.figure:
        figure(args.ludb, args.figure_record, args.figure)
        return 0
    ids = parse_ids(args.records)
    methods = ["ecglens"] + ([] if args.no_neurokit else ["nk_dwt", "nk_cwt", "nk_peak"])
    acc = {(m, f, split): {"e": [], "fn": 0, "fp": 0} for m in methods for f in FIDUCIALS
           for split in ("all", "held_out")}
    st_err: list[float] = []
    st_err_held: list[float] = []
    t_start = time.time()
    t_ecglens = 0.0
    for rid in ids:
        record = read_ludb_record(args.ludb / "data" / str(rid)).standard12()
        fs = record.fs
        t0 = time.time()
        preds, med, fid, beats = ecglens_predictions(record, fs)
        t_ecglens += time.time() - t0
        anns = [read_fiducials(args.ludb, rid, lead) for lead in LUDB_LEADS]
        # ST at annotated J (per lead) vs at our J
        ours = measure_st(med, fid, record.leads)
        for k, ann in enumerate(anns):
            if ann["j_point"].size == 0 or beats.n == 0:
                continue
            offs = [j - beats.anchors[np.argmin(np.abs(beats.anchors - j))]
                    for j in ann["j_point"]]
            j_ann = med.pre + float(np.median(offs))
            ref = measure_st(med, fid, record.leads, j_point=j_ann)[k]
            if ours[k].measured and ref.measured:
                diff = abs(ours[k].st_j_mv - ref.st_j_mv)
                st_err.append(diff)
                if rid not in TUNING_IDS:
                    st_err_held.append(diff)
        for m in methods:
            for k, ann in enumerate(anns):
                if m == "ecglens":
                    p = preds[k]
                else:
                    p = neurokit_predictions(record.signal[:, k], fs, m[3:])
                for f in FIDUCIALS:
                    e, fn, fp = match_fiducials(ann[f], p[f], fs, ann["span"])
                    for split in ("all", "held_out"):
                        if split == "held_out" and rid in TUNING_IDS:
                            continue
                        a = acc[(m, f, split)]
                        a["e"].extend(e.tolist())
                        a["fn"] += fn
                        a["fp"] += fp
        if rid % 20 == 0:
            logging.warning("record %d done (%.0f s)", rid, time.time() - t_start)
    results = {f"{m}|{f}|{s}": summarise(a["e"], a["fn"], a["fp"]) for (m, f, s), a in acc.items()}
    st_summary = {"n_leads": len(st_err),
                  "median_abs_mv": float(np.median(st_err)) if st_err else None,
                  "p90_abs_mv": float(np.percentile(st_err, 90)) if st_err else None,
                  "held_out_median_abs_mv": float(np.median(st_err_held)) if st_err_held else None,
                  "held_out_p90_abs_mv": (float(np.percentile(st_err_held, 90))
                                          if st_err_held else None)}
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {"records": len(ids), "fiducials": results, "st_at_j": st_summary,
               "ecglens_seconds_per_record": t_ecglens / max(1, len(ids)),
               "total_seconds": time.time() - t_start}
    (args.out / "ludb_delineation.json").write_text(json.dumps(payload, indent=1))
    lines = [f"LUDB delineation, {len(ids)} records × 12 leads, per-beat errors (ms), "
             "±150 ms matching, edges cropped", "",
             "| method | fiducial | split | matched | Se | PPV | median abs | P90 abs "
             "| mean ± SD |",
             "|---|---|---|---|---|---|---|---|---|"]
    for (m, f, s), _ in acc.items():
        r = results[f"{m}|{f}|{s}"]
        if "median_abs_ms" not in r:
            lines.append(f"| {m} | {f} | {s} | 0 | – | – | n/a | n/a | n/a |")
            continue
        lines.append(f"| {m} | {f} | {s} | {r['n_matched']} | {r['sensitivity']:.3f} | "
                     f"{r['ppv']:.3f} | {r['median_abs_ms']:.1f} | {r['p90_abs_ms']:.1f} | "
                     f"{r['mean_ms']:+.1f} ± {r['sd_ms']:.1f} |")
    lines += ["", f"ST at J vs ST at annotated J: {st_summary}",
              f"ecglens time per record: {payload['ecglens_seconds_per_record']:.3f} s"]
    (args.out / "ludb_delineation.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
