"""Score a folder of read records against a folder of truth records (``ecglens score``).

Truth records are ``<id>_truth.hea`` (from ``ecglens render`` or ``benchmarks/make_set.py``),
with ``<id>_truth.json`` holding the page geometry (``layout``, ``profile``, ``gain_mm_mv``,
``speed_mm_s``); a folder without such records is taken as plain WFDB truth records
``<id>.hea`` (the Challenge's layout, or a user's original recordings: no geometry, so layout,
gain and speed are not checked). The read record is ``<id>.hea`` in the read folder
(``ecglens digitize`` output, with ``<id>.json`` giving what the digitizer decided). A missing
read record scores 0 dB on every lead, as in the Challenge.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from ecglens.core.errors import InputError, OutputError
from ecglens.core.io import read_record, write_text_atomic
from ecglens.core.record import ECGRecord
from ecglens.score.metrics import LeadScore, kaggle_page_score, ratio_db, score_record

log = logging.getLogger(__name__)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _find_key(data: dict[str, Any], *names: str) -> Any:
    """First value among ``names`` at the top level or one level down (e.g. ``calibration``)."""
    for name in names:
        if name in data:
            return data[name]
    for value in data.values():
        if isinstance(value, dict):
            for name in names:
                if name in value:
                    return value[name]
    return None


def _same_number(a: Any, b: Any) -> bool | None:
    try:
        return abs(float(a) - float(b)) < 1e-6
    except (TypeError, ValueError):
        return None


def score_folder(truth_dir: str | Path, read_dir: str | Path, shift: bool = True,
                 progress: bool = False) -> dict[str, Any]:
    """Score every truth record in ``truth_dir`` against ``read_dir``.

    Returns a dict with ``pages`` (one entry per truth page: id, layout, profile, mean SNR,
    per-lead scores, whether layout/gain/speed were read right) and ``groups`` (aggregates per
    ``(profile, layout)``, per profile, and overall).
    """
    truth_dir, read_dir = Path(truth_dir), Path(read_dir)
    if not truth_dir.is_dir():
        raise InputError("not a folder", truth_dir)
    if not read_dir.is_dir():
        raise InputError("not a folder", read_dir)
    truth_headers = sorted(truth_dir.glob("*_truth.hea"))
    suffix = "_truth"
    if not truth_headers:   # a plain folder of WFDB records
        truth_headers, suffix = sorted(truth_dir.glob("*.hea")), ""
    if not truth_headers:
        raise InputError("no truth records (*_truth.hea or *.hea) found", truth_dir)
    pages = []
    for i, header in enumerate(truth_headers):
        page_id = header.name[: -len(f"{suffix}.hea")]
        geometry = _read_json(truth_dir / f"{page_id}{suffix}.json") if suffix else {}
        pages.append(score_page(page_id, header, read_dir, geometry, shift=shift))
        if progress:
            print(f"\rscored {i + 1}/{len(truth_headers)}", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    return {"pages": pages, "groups": _aggregate(pages), "shift": shift}


def score_page(page_id: str, truth_header: str | Path, read_dir: str | Path,
               geometry: dict[str, Any] | None = None, shift: bool = True,
               error: str | None = None) -> dict[str, Any]:
    """Score one truth record against ``read_dir/<page_id>.hea`` (see :func:`score_folder`).

    ``geometry`` holds what the page really is (``layout``, ``profile``, ``gain_mm_mv``,
    ``speed_mm_s``) and is compared with the read page's ``<page_id>.json``. A missing read
    record (``error`` says why, if known) scores 0 dB per lead (2024) and reads as all 0 mV
    (Kaggle 2025).
    """
    geometry = geometry or {}
    read_dir = Path(read_dir)
    truth = read_record(truth_header)
    read_header = read_dir / f"{page_id}.hea"
    read_meta = _read_json(read_dir / f"{page_id}.json")
    estimate: ECGRecord | None = None
    if read_header.exists():
        try:
            estimate = read_record(read_header)
            error = None
        except InputError as exc:
            error = str(exc)
    else:
        error = error or "no read record"
    if estimate is None:
        estimate = truth.replace(signal=np.full_like(truth.signal, np.nan))
    scores = score_record(truth, estimate, shift=shift)
    kaggle = kaggle_page_score(truth, estimate)
    snrs = [s.snr_db for s in scores.values() if np.isfinite(s.snr_db)]
    checks = {}
    for key, names in {
        "layout": ("layout",),
        "gain_mm_mv": ("gain_mm_mv", "gain"),
        "speed_mm_s": ("speed_mm_s", "speed"),
    }.items():
        want, got = geometry.get(key), _find_key(read_meta, *names) if read_meta else None
        if isinstance(got, dict):
            got = got.get("value", got.get("name"))
        same = (want == got) if key == "layout" else _same_number(want, got)
        checks[key] = {"truth": want, "read": got, "right": bool(same) if same is not None
                       else False}
    return {
        "id": page_id,
        "layout": geometry.get("layout", "?"),
        "profile": geometry.get("profile", "?"),
        "source_record": geometry.get("source_record"),
        "error": error,
        "mean_snr_db": float(np.mean(snrs)) if snrs else float("nan"),
        "kaggle_ratio": kaggle.ratio,
        "kaggle_db": kaggle.db,
        "leads": {name: _lead_dict(s) for name, s in scores.items()},
        "checks": checks,
    }


def _lead_dict(score: LeadScore) -> dict[str, float | None]:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in score.__dict__.items()}


def _aggregate(pages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    buckets: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for page in pages:
        buckets[(page["profile"], page["layout"])].append(page)
        buckets[(page["profile"], "all")].append(page)
        buckets[("all", "all")].append(page)
    groups = []
    for (profile, layout), members in sorted(buckets.items()):
        snr, r, rmse = [], [], []
        for page in members:
            for lead in page["leads"].values():
                if lead["snr_db"] is not None:
                    snr.append(lead["snr_db"])
                if lead["pearson_r"] is not None:
                    r.append(lead["pearson_r"])
                if lead["rmse_uv"] is not None:
                    rmse.append(lead["rmse_uv"])
        def fraction_right(key: str, members: list[dict[str, Any]] = members) -> float:
            return float(np.mean([p["checks"][key]["right"] for p in members]))
        groups.append({
            "profile": profile, "layout": layout, "pages": len(members), "leads": len(snr),
            "mean_snr_db": float(np.mean(snr)) if snr else float("nan"),
            "kaggle_db": kaggle_set_db(members),
            "median_snr_db": float(np.median(snr)) if snr else float("nan"),
            "median_r": float(np.median(r)) if r else float("nan"),
            "median_rmse_uv": float(np.median(rmse)) if rmse else float("nan"),
            "layout_right": fraction_right("layout"),
            "gain_right": fraction_right("gain_mm_mv"),
            "speed_right": fraction_right("speed_mm_s"),
        })
    return groups


def kaggle_set_db(pages: list[dict[str, Any]]) -> float:
    """Kaggle 2025 score of a set of scored pages: 10·log10 of the mean of their ratios."""
    ratios = [p["kaggle_ratio"] for p in pages
              if p.get("kaggle_ratio") is not None and math.isfinite(p["kaggle_ratio"])]
    return ratio_db(float(np.mean(ratios))) if ratios else float("nan")


def markdown_table(result: dict[str, Any]) -> str:
    """The per-profile/layout table as markdown."""
    lines = [
        "| profile | layout | pages | leads | mean SNR dB | Kaggle-2025 dB | median SNR dB | "
        "median r | median RMSE µV | layout ok | gain ok | speed ok |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for g in result["groups"]:
        lines.append(
            f"| {g['profile']} | {g['layout']} | {g['pages']} | {g['leads']} | "
            f"{g['mean_snr_db']:.2f} | {g['kaggle_db']:.2f} | {g['median_snr_db']:.2f} | "
            f"{g['median_r']:.4f} | "
            f"{g['median_rmse_uv']:.1f} | {100 * g['layout_right']:.0f} % | "
            f"{100 * g['gain_right']:.0f} % | {100 * g['speed_right']:.0f} % |"
        )
    worst = sorted((p for p in result["pages"] if np.isfinite(p["mean_snr_db"])),
                   key=lambda p: p["mean_snr_db"])[:10]
    missing = [p for p in result["pages"] if p["error"]]
    lines += ["", "Worst ten pages (mean SNR over printed leads):", "",
              "| page | profile | layout | mean SNR dB | Kaggle dB | layout/gain/speed read "
              "| error |",
              "|---|---|---|---|---|---|---|"]
    for p in worst:
        read = "/".join(str(p["checks"][k]["read"]) for k in ("layout", "gain_mm_mv", "speed_mm_s"))
        lines.append(f"| {p['id']} | {p['profile']} | {p['layout']} | {p['mean_snr_db']:.2f} | "
                     f"{p['kaggle_db']:.2f} | {read} | {p['error'] or ''} |")
    if missing:
        lines += ["", f"{len(missing)} pages without a usable read record: "
                  + ", ".join(p["id"] for p in missing[:20]) + (" …" if len(missing) > 20 else "")]
    return "\n".join(lines) + "\n"


def run_score(args: argparse.Namespace) -> int:
    """``ecglens score TRUTH_DIR READ_DIR [--out DIR] [--no-shift]``."""
    result = score_folder(args.truth_dir, args.read_dir, shift=not args.no_shift,
                          progress=not getattr(args, "quiet", False))
    table = markdown_table(result)
    print(table)
    if args.out:
        out = Path(args.out)
        if out.exists() and not out.is_dir():
            raise OutputError("--out must be a folder, and this is a file", out)
        try:
            out.mkdir(parents=True, exist_ok=True)
            write_text_atomic(out / "score.md", table)
            write_text_atomic(out / "score.json", json.dumps(result, indent=1, default=str))
        except OSError as exc:
            raise OutputError(f"cannot write the score ({exc.strerror or exc})", out) from exc
        print(f"wrote {out / 'score.md'} and {out / 'score.json'}")
    return 0
