"""What ``ecglens classify INPUT`` reports: one JSON-ready dict per record or page.

A record that the measurability gate (:mod:`ecglens.core.gate`) refuses gets
``assessable: false``, ``reason: "not assessable: ..."``, ``positive: []`` and no
probabilities or saliency; the one-lead beat labels are given only where the gate admits the
record for them (purpose ``"beats"``: one lead is enough). The disclaimer is always there.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ecglens.core.record import ECGRecord, finite_runs

if TYPE_CHECKING:
    from ecglens.core.beats import RecordBeats
    from ecglens.core.gate import Measurability

log = logging.getLogger(__name__)

MIN_BEAT_STRIP_S = 4.0


def beat_summary(record: ECGRecord, lead: str = "II",
                 found: RecordBeats | None = None) -> dict[str, Any] | None:
    """AAMI labels of the beats in the longest finite run of ``lead`` (≥ 4 s), or None.

    ``found`` is the record's beats if already detected (the measurability gate's)."""
    from ecglens.classify.beats import BEAT_CLASSES, label_beats

    if not record.has_lead(lead):
        return None
    x = record.lead(lead)
    runs = finite_runs(np.isfinite(x))
    if not runs:
        return None
    a, b = max(runs, key=lambda r: r[1] - r[0])
    if (b - a) / record.fs < MIN_BEAT_STRIP_S:
        return None
    from ecglens.core.beats import find_record_beats

    segment = x[a:b]
    anchors = (found or find_record_beats(record)).beats.anchors
    anchors = anchors[(anchors >= a) & (anchors < b)] - a
    beats = label_beats(segment, record.fs, anchors=anchors)
    counts = Counter(bt.label for bt in beats)
    return {
        "lead": lead, "start_s": a / record.fs, "duration_s": (b - a) / record.fs,
        "counts": {c: int(counts.get(c, 0)) for c in BEAT_CLASSES},
        "beats": [{"time_s": round(a / record.fs + bt.time_s, 3), "label": bt.label,
                   "probability": round(bt.probability, 3)} for bt in beats],
        "note": "MIT-BIH DS1-trained beat classifier (inter-patient); Q is never learnt "
                "(8 DS1 beats)",
    }


def _beat_summary_or_none(gate: Measurability) -> dict[str, Any] | None:
    try:
        return beat_summary(gate.record, found=gate.beats)
    except Exception as exc:  # the beat part must not sink the classification
        log.warning("beat labelling failed: %s", exc)
        return None


def classify_one(record: ECGRecord, source: str, page: int | None = None,
                 saliency_png: str | Path | None = None, digitized: Any = None,
                 beats: bool = True) -> dict[str, Any]:
    """Classification (+ beats, + saliency plots) of one record as a JSON-ready dict.

    The record passes the measurability gate first; not assessable → ``assessable`` False,
    the reason, no probabilities, no positive class and no saliency (beat labels only where
    the gate admits the record for them).
    """
    from ecglens.classify.predict import (
        classify_record,
        draw_saliency_on_page,
        plot_saliency,
        saliency,
    )
    from ecglens.core.gate import assess_measurability

    gate = assess_measurability(record, "classification")
    result = classify_record(record, gate=gate)
    out: dict[str, Any] = {"source": source, "page": page, **result.to_dict()}
    out["input"] = {"fs_hz": record.fs, "duration_s": round(record.duration_s, 3),
                    "from": "paper (ecglens digitize)" if digitized is not None else "file"}
    if not result.assessable:
        # the one-lead beat labels have their own, smaller lead minimum (lead II alone)
        out["beats"] = None
        if beats:
            beat_gate = assess_measurability(record, "beats")
            if beat_gate.assessable:
                out["beats"] = _beat_summary_or_none(beat_gate)
        return out
    record = gate.record          # in mV (converted where the gate found another unit)
    n_seen = len(gate.leads_assessed)
    if n_seen < 12:
        out["warnings"].append(
            f"only {n_seen} of 12 leads observed; the model was trained on 12-lead records and "
            "paper patterns (3x4, 3x4+1, 6x2, 12x1), so these probabilities are less reliable")
    if beats:
        out["beats"] = _beat_summary_or_none(gate)
    if saliency_png:
        top = max(result.probabilities, key=lambda c: result.probabilities[c])
        sal = saliency(record, classes=(top,))
        base = Path(saliency_png)
        if page is not None:
            base = base.with_name(f"{base.stem}_p{page}{base.suffix or '.png'}")
        paths = []
        try:   # an unwritable path costs the plot, never the classification
            paths.append(plot_saliency(sal, base, top))
            if digitized is not None:
                paths.append(draw_saliency_on_page(digitized, sal, top,
                                                   base.with_name(base.stem + "_overlay.png")))
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
            out["warnings"] = [*out.get("warnings", []),
                               f"saliency plot not written: {base}: {reason}"]
            log.warning("saliency plot not written: %s: %s", base, reason)
        out["saliency_png"] = [str(p) for p in paths]
        out["saliency_spans"] = [
            {"lead": lead, "t0_s": round(t0, 2), "t1_s": round(t1, 2), "weight": round(w, 4)}
            for lead, t0, t1, w in sal.spans(top)[:10]]
        out["saliency_class"] = top
    return out
