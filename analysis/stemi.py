"""STEMI rules (Fourth Universal Definition of MI, 2018) with confounders and equivalents.

Every rule returns a :class:`RuleOutcome` that names the leads, the measured values (mV) and the
threshold used, so a cardiologist can check each claim. Thresholds are the published ones; none
was tuned on LUDB.

* **ST elevation** at the J point in ≥ 2 contiguous leads: ≥ 0.1 mV in every lead but V2–V3;
  in V2–V3 ≥ 0.2 mV (men ≥ 40 y), ≥ 0.25 mV (men < 40 y), ≥ 0.15 mV (women). Unknown sex or age:
  the most sensitive applicable threshold, and the report says so. Contiguity: V1…V6 in order;
  limb leads in Cabrera order aVL, I, −aVR, II, aVF, III.
* **Territories**: septal V1–V2, anterior V3–V4, lateral I, aVL, V5–V6, inferior II, III, aVF;
  posterior from horizontal or down-sloping depression ≥ 0.05 mV with upright T in ≥ 2
  contiguous leads of V1–V3 (isolated: flagged as an equivalent, record V7–V9).
* **Reciprocal depression** (≥ 0.05 mV) in the opposite territory raises confidence.
* **Confounders**: LBBB (QRS ≥ 120 ms, V1 mainly negative, monophasic late R in I or V6) and
  ventricular pacing switch the decision to **Sgarbossa** (≥ 3 points) and the
  **Smith-modified** Sgarbossa rule (discordant ST/S ≤ −0.25); **LVH** (Sokolow-Lyon, Cornell)
  applies the proportional rule in V1–V3 (ST elevation < 25 % of the S depth is attributed to
  LVH); **early repolarisation** (Smith 2012 three-variable formula < 23.4, only when the
  elevation is confined to V2–V4 and there is no obvious STEMI, LVH or conduction defect).
* **STEMI equivalents** (flagged, not counted as STEMI): de Winter T waves; ST elevation in aVR
  with ST depression ≥ 0.1 mV in ≥ 8 leads; isolated posterior pattern.
* **Leads not assessed**: a "not met" names the leads whose ST was measured; with any of the 12
  leads unmeasured the confidence is never ``high`` (:data:`PARTIAL_MAX_CONFIDENCE`), and with no
  two contiguous measured leads there is no statement (``detected`` None).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np

from ecglens.analysis.intervals import Intervals, QRSAmplitudes
from ecglens.analysis.st import STLevel
from ecglens.core.record import STANDARD_LEADS

PRECORDIAL: tuple[str, ...] = ("V1", "V2", "V3", "V4", "V5", "V6")
CABRERA_LIMB: tuple[str, ...] = ("aVL", "I", "-aVR", "II", "aVF", "III")
TERRITORIES: dict[str, tuple[str, ...]] = {
    "septal": ("V1", "V2"),
    "anterior": ("V3", "V4"),
    "lateral": ("I", "aVL", "V5", "V6"),
    "inferior": ("II", "III", "aVF"),
}
RECIPROCAL: dict[str, tuple[str, ...]] = {
    "inferior": ("I", "aVL"),
    "lateral": ("II", "III", "aVF"),
    "anterior": ("II", "III", "aVF"),
    "septal": ("II", "III", "aVF"),
}
STE_MV = 0.10
DEPRESSION_MV = 0.05
RECIPROCAL_MV = 0.05
SMITH_ER_CUT = 23.4
SMITH_RATIO = -0.25
HIGH_CONFIDENCE = 0.75
"""Confidence from which a statement is labelled ``high`` (``moderate`` from 0.5)."""
MODERATE_CONFIDENCE = 0.5
PARTIAL_MAX_CONFIDENCE = 0.7
"""Highest confidence when any of the 12 leads has no measured ST: below
:data:`HIGH_CONFIDENCE`, since a STEMI (or a confounder) in an unseen lead cannot be excluded."""
MISSING_LEAD_PENALTY = 0.05
"""Confidence taken off per lead without a measured ST (design choice: one missing lead leaves a
clear "not met" at 0.7, moderate; the nine missing leads of a 3-lead record make it low)."""


@dataclasses.dataclass(frozen=True)
class RuleOutcome:
    """The outcome of one rule.

    ``fired`` is True/False, or None when the rule does not apply (e.g. Sgarbossa without LBBB)
    or cannot be evaluated; ``detail`` says why in words; ``values`` holds the measurements.
    """

    name: str
    fired: bool | None
    leads: tuple[str, ...]
    detail: str
    values: Mapping[str, object] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict."""
        return {"rule": self.name, "fired": self.fired, "leads": list(self.leads),
                "detail": self.detail, "values": _jsonable(self.values)}


@dataclasses.dataclass(frozen=True)
class StemiResult:
    """The STEMI decision of one record.

    Attributes
    ----------
    detected
        True if STEMI criteria (or, with LBBB/pacing, Sgarbossa / Smith-modified) are met;
        False if not; None if the record could not be measured.
    territories, leads
        Territories and leads that carry the criteria.
    confidence
        0–1, confidence in the statement (detected or not), and a label
        (``high`` ≥ 0.75, ``moderate`` ≥ 0.5, ``low``).
    equivalents
        STEMI-equivalent patterns found (not counted in ``detected``).
    confounders
        Conditions that confound ST found in this record.
    rules
        Every rule evaluated.
    statement
        One paragraph in words.
    notes
        Assumptions (e.g. unknown sex → most sensitive threshold).
    """

    detected: bool | None
    territories: tuple[str, ...]
    leads: tuple[str, ...]
    confidence: float
    confidence_label: str
    equivalents: tuple[str, ...]
    confounders: tuple[str, ...]
    rules: tuple[RuleOutcome, ...]
    statement: str
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict."""
        return {"detected": self.detected, "territories": list(self.territories),
                "leads": list(self.leads),
                "confidence": None if not math.isfinite(self.confidence)
                else round(self.confidence, 2),
                "confidence_label": self.confidence_label,
                "equivalents": list(self.equivalents), "confounders": list(self.confounders),
                "statement": self.statement, "notes": list(self.notes),
                "rules": [r.to_dict() for r in self.rules]}


def _jsonable(value: object) -> object:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float | np.floating):
        return None if not math.isfinite(float(value)) else round(float(value), 3)
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    return value


def v2v3_threshold_mv(sex: str | None, age: float | None) -> tuple[float, str]:
    """ST-elevation threshold (mV) for V2–V3 and a note on how it was chosen."""
    if sex == "F":
        return 0.15, "women: V2–V3 threshold 0.15 mV"
    if sex == "M":
        if age is None:
            return 0.20, ("age unknown: V2–V3 threshold 0.20 mV (men ≥ 40 y), the more sensitive "
                          "of the two male thresholds")
        if age < 40:
            return 0.25, "men < 40 y: V2–V3 threshold 0.25 mV"
        return 0.20, "men ≥ 40 y: V2–V3 threshold 0.20 mV"
    return 0.15, ("sex unknown: V2–V3 threshold 0.15 mV (the most sensitive, as for women); "
                  "give --sex/--age for the exact threshold")


def _st_of(st: Mapping[str, STLevel], lead: str, at: str = "j") -> float:
    if lead == "-aVR":
        level = st.get("aVR")
        value = np.nan if level is None else (level.st_j_mv if at == "j" else level.st_j60_mv)
        return -value
    level = st.get(lead)
    if level is None:
        return np.nan
    return level.st_j_mv if at == "j" else level.st_j60_mv


def _contiguous(sequence: Sequence[str], flagged: set[str]) -> list[tuple[str, str]]:
    return [(a, b) for a, b in itertools.pairwise(sequence)
            if a in flagged and b in flagged]


def _territories_of(leads: set[str]) -> list[str]:
    return [name for name, members in TERRITORIES.items() if leads & set(members)]


@dataclasses.dataclass(frozen=True)
class Flags:
    """Confounder flags computed from the measurements."""

    lbbb: RuleOutcome
    paced: RuleOutcome
    lvh: RuleOutcome


def lbbb_rule(intervals: Intervals, amps: Mapping[str, QRSAmplitudes]) -> RuleOutcome:
    """LBBB: QRS ≥ 120 ms, V1 mainly negative (S/QS > R), and a monophasic, late R in I or V6
    (no q, S < 25 % of R — the broad S of a right bundle-branch block fails this — and R-peak
    time ≥ 60 ms, AHA/ACCF/HRS 2009)."""
    qrs = intervals.qrs_ms
    if not math.isfinite(qrs):
        return RuleOutcome("LBBB", None, (), "QRS duration not measurable")
    v1, i_, v6 = amps.get("V1"), amps.get("I"), amps.get("V6")
    values = {"qrs_ms": qrs}
    if v1 is None or not math.isfinite(v1.r_mv):
        return RuleOutcome("LBBB", None, (), "V1 not measurable", values)
    values.update({"r_v1_mv": v1.r_mv, "s_v1_mv": v1.neg_mv})
    left_pos = []
    for name, amp in (("I", i_), ("V6", v6)):
        if amp is not None and math.isfinite(amp.r_mv):
            values[f"r_{name.lower()}_mv"] = amp.r_mv
            values[f"q_{name.lower()}_mv"] = amp.q_mv
            values[f"r_peak_time_{name.lower()}_ms"] = amp.r_time_ms
            # monophasic R: no q, no S deeper than a quarter of R (RBBB has a broad S here), and
            # a late R peak (R-peak time ≥ 60 ms, AHA/ACCF/HRS 2009)
            if (amp.r_mv > 0 and amp.q_mv < 0.1 and amp.s_mv < 0.25 * amp.r_mv
                    and amp.r_time_ms >= 60):
                left_pos.append(name)
    fired = qrs >= 120 and v1.neg_mv > v1.r_mv and bool(left_pos)
    detail = (f"QRS {qrs:.0f} ms (≥ 120 needed), V1 S/QS {v1.neg_mv:.2f} vs R {v1.r_mv:.2f} mV, "
              f"monophasic R (no q, S < R/4, R-peak time ≥ 60 ms) in: "
              f"{', '.join(left_pos) or 'none'}")
    return RuleOutcome("LBBB", fired, ("V1", *left_pos) if fired else (), detail, values)


def lvh_rule(amps: Mapping[str, QRSAmplitudes], sex: str | None) -> RuleOutcome:
    """LVH by Sokolow-Lyon (S V1 + max R V5/V6 ≥ 3.5 mV) or Cornell (R aVL + S V3 > 2.8/2.0 mV)."""
    def get(lead: str, attr: str) -> float:
        a = amps.get(lead)
        return np.nan if a is None else getattr(a, attr)
    r_v56 = [v for v in (get("V5", "r_mv"), get("V6", "r_mv")) if math.isfinite(v)]
    sokolow = get("V1", "neg_mv") + (max(r_v56) if r_v56 else np.nan)
    cornell = get("aVL", "r_mv") + get("V3", "neg_mv")
    cornell_cut = 2.8 if sex == "M" else 2.0
    values = {"sokolow_lyon_mv": sokolow, "cornell_mv": cornell, "cornell_cut_mv": cornell_cut}
    if not (math.isfinite(sokolow) or math.isfinite(cornell)):
        return RuleOutcome("LVH", None, (), "V1/V5/V6/aVL/V3 amplitudes not measurable", values)
    fired = bool((math.isfinite(sokolow) and sokolow >= 3.5)
                 or (math.isfinite(cornell) and cornell > cornell_cut))
    detail = (f"Sokolow-Lyon {sokolow:.2f} mV (≥ 3.5), Cornell {cornell:.2f} mV "
              f"(> {cornell_cut:.1f}{'' if sex else ', sex unknown: women cut-off'})")
    return RuleOutcome("LVH", fired, (), detail, values)


def evaluate_stemi(st: Mapping[str, STLevel], amps: Mapping[str, QRSAmplitudes],
                   intervals: Intervals, sex: str | None, age: float | None,
                   paced: RuleOutcome, quality_penalty: float = 0.0) -> StemiResult:
    """Apply every rule and make the record-level STEMI statement.

    Parameters
    ----------
    st
        ST levels by lead name.
    amps
        QRS amplitudes by lead name.
    intervals
        Global intervals (QRS and QTc are used).
    sex, age
        Patient sex (``"M"``/``"F"``/None) and age in years (or None).
    paced
        Outcome of the pacing-spike detector.
    quality_penalty
        0–0.5 taken off the confidence for poor signal quality.
    """
    notes: list[str] = []
    rules: list[RuleOutcome] = []
    v23, note = v2v3_threshold_mv(sex, age)
    if sex is None or (sex == "M" and age is None):
        notes.append(note)

    def threshold(lead: str) -> float:
        return v23 if lead in ("V2", "V3") else STE_MV

    lbbb = lbbb_rule(intervals, amps)
    lvh = lvh_rule(amps, sex)
    rules += [lbbb, paced, lvh]

    # --- ST elevation with LVH proportional rule in V1–V3
    elevated: set[str] = set()
    lvh_explained: list[str] = []
    per_lead: dict[str, float] = {}
    for lead in (*CABRERA_LIMB, *PRECORDIAL):
        value = _st_of(st, lead)
        per_lead[lead] = value
        if math.isfinite(value) and value >= threshold(lead):
            if lvh.fired and lead in ("V1", "V2", "V3"):
                s_depth = amps[lead].neg_mv if lead in amps else np.nan
                if math.isfinite(s_depth) and s_depth > 0 and value / s_depth < 0.25:
                    lvh_explained.append(f"{lead} {value:.2f}/{s_depth:.2f} mV")
                    continue
            elevated.add(lead)
    pairs = _contiguous(CABRERA_LIMB, elevated) + _contiguous(PRECORDIAL, elevated)
    ste_leads = sorted({lead for pair in pairs for lead in pair}, key=_lead_order)
    measured = [lead for lead, v in per_lead.items() if math.isfinite(v)]
    assessed = tuple(lead for lead in STANDARD_LEADS
                     if (level := st.get(lead)) is not None and level.measured)
    missing = tuple(lead for lead in STANDARD_LEADS if lead not in assessed)
    # the ST-elevation rule needs two contiguous leads with a measured ST
    contiguous_measured = bool(_contiguous(CABRERA_LIMB, set(measured))
                               or _contiguous(PRECORDIAL, set(measured)))
    elevated_txt = ", ".join(sorted(elevated, key=_lead_order)) or "no lead"
    detail = (f"J-point elevation ≥ threshold in {elevated_txt}; "
              f"contiguous pairs: {', '.join(f'{a}+{b}' for a, b in pairs) or 'none'}; "
              f"thresholds 0.10 mV, V2–V3 {v23:.2f} mV")
    if lvh_explained:
        detail += f"; LVH proportional rule (ST/S < 25 %) discounts {', '.join(lvh_explained)}"
    if not contiguous_measured:
        detail += "; no two contiguous leads have a measured ST, so the rule cannot be applied"
    ste_rule = RuleOutcome("ST elevation (4th UDMI)", bool(pairs) if contiguous_measured else None,
                           tuple(ste_leads), detail,
                           {"st_j_mv": {k: v for k, v in per_lead.items()},
                            "v2_v3_threshold_mv": v23})
    rules.append(ste_rule)
    territories = _territories_of(set(ste_leads))

    # --- reciprocal depression
    recip_leads: list[str] = []
    for terr in territories:
        for lead in RECIPROCAL.get(terr, ()):
            value = per_lead.get(lead, np.nan)
            if math.isfinite(value) and value <= -RECIPROCAL_MV and lead not in recip_leads:
                recip_leads.append(lead)
    rules.append(RuleOutcome(
        "reciprocal depression", bool(recip_leads) if territories else None, tuple(recip_leads),
        (f"ST depression ≥ 0.05 mV opposite {', '.join(territories)}: "
         f"{', '.join(recip_leads) or 'none'}") if territories else "no ST-elevation territory",
        {lead: per_lead.get(lead) for lead in recip_leads}))

    # --- posterior (V1–V3 depression)
    depressed_v13 = {lead for lead in ("V1", "V2", "V3")
                     if _posterior_depression(st.get(lead), amps.get(lead))}
    post_pairs = _contiguous(("V1", "V2", "V3"), depressed_v13)
    posterior = bool(post_pairs) and not lbbb.fired and not paced.fired
    rules.append(RuleOutcome(
        "posterior (V1–V3 depression)", posterior,
        tuple(sorted(depressed_v13, key=_lead_order)) if posterior else (),
        f"horizontal/down-sloping ST depression ≥ 0.05 mV with upright T in contiguous V1–V3: "
        f"{', '.join(f'{a}+{b}' for a, b in post_pairs) or 'none'} (record V7–V9 to confirm)",
        {lead: per_lead[lead] for lead in ("V1", "V2", "V3")}))

    # --- early repolarisation (Smith 2012, 3 variables)
    er = _early_repolarisation(st, amps, intervals, set(ste_leads), territories, per_lead,
                               bool(lbbb.fired), bool(paced.fired), bool(lvh.fired))
    rules.append(er)

    # --- LBBB / paced: Sgarbossa and Smith-modified
    sgarbossa, smith = _sgarbossa(per_lead, amps, applies=bool(lbbb.fired or paced.fired))
    rules += [sgarbossa, smith]

    # --- equivalents
    de_winter = _de_winter(st, amps, per_lead)
    avr = _avr_diffuse(per_lead)
    rules += [de_winter, avr]
    equivalents = [r.name for r in (de_winter, avr) if r.fired]
    if posterior and not ste_leads:
        equivalents.append("isolated posterior pattern (V1–V3 depression)")

    confounders = [name for name, r in (("LBBB", lbbb), ("ventricular pacing", paced),
                                        ("LVH", lvh)) if r.fired]
    if er.fired:
        confounders.append("early repolarisation favoured")

    # --- decision
    if len(measured) < 2 or not (contiguous_measured or lbbb.fired or paced.fired):
        detected: bool | None = None
    elif lbbb.fired or paced.fired:
        detected = bool(sgarbossa.fired or smith.fired)
        ste_leads = list(sgarbossa.leads) + [x for x in smith.leads if x not in sgarbossa.leads]
        territories = _territories_of(set(ste_leads))
    else:
        detected = bool(pairs) and not er.fired
    if detected and posterior:
        territories = [*territories, "posterior"]
    if not detected:
        # the leads that met the voltage criteria stay in the rule outcomes
        territories, ste_leads = [], []

    confidence = _confidence(detected, st, ste_leads, per_lead, threshold, bool(recip_leads),
                             confounders, quality_penalty, len(missing))
    label = ("high" if confidence >= HIGH_CONFIDENCE
             else "moderate" if confidence >= MODERATE_CONFIDENCE else "low")
    statement = _statement(detected, territories, ste_leads, per_lead, recip_leads, lbbb, paced,
                           sgarbossa, smith, lvh, er, equivalents, label, assessed, missing)
    return StemiResult(detected, tuple(territories), tuple(ste_leads), confidence, label,
                       tuple(equivalents), tuple(confounders), tuple(rules), statement,
                       tuple(notes))


def _lead_order(lead: str) -> int:
    order = (*CABRERA_LIMB, *PRECORDIAL, "aVR")
    return order.index(lead) if lead in order else 99


def _posterior_depression(level: STLevel | None, amp: QRSAmplitudes | None) -> bool:
    """ST depression ≥ 0.05 mV at J, horizontal or down-sloping to J+60 ms (rise ≤ 0.02 mV),
    with an upright T wave (the mirror image of posterior ST elevation)."""
    if level is None or amp is None:
        return False
    j, j60, t = level.st_j_mv, level.st_j60_mv, amp.t_mv
    return (math.isfinite(j) and math.isfinite(j60) and math.isfinite(t)
            and j <= -DEPRESSION_MV and j60 - j <= 0.02 and t > 0)


def _early_repolarisation(st: Mapping[str, STLevel], amps: Mapping[str, QRSAmplitudes],
                          intervals: Intervals, ste_leads: set[str], territories: list[str],
                          per_lead: Mapping[str, float], lbbb: bool, paced: bool,
                          lvh: bool) -> RuleOutcome:
    name = "early repolarisation vs LAD occlusion (Smith 2012)"
    v24 = [lead for lead in ("V2", "V3", "V4")
           if math.isfinite(per_lead.get(lead, np.nan)) and per_lead[lead] >= 0.1]
    if not v24:
        return RuleOutcome(name, None, (), "no ST elevation ≥ 0.1 mV in V2–V4")
    if lbbb or paced or lvh:
        return RuleOutcome(name, None, (), "not applicable with LBBB, pacing or LVH")
    inferior_depression = any(per_lead.get(lead, 0.0) <= -RECIPROCAL_MV
                              for lead in ("II", "III", "aVF"))
    max_ste = max((v for v in per_lead.values() if math.isfinite(v)), default=np.nan)
    if set(territories) - {"septal", "anterior"} or inferior_depression or max_ste >= 0.5:
        return RuleOutcome(name, None, (), "not applicable: obvious STEMI features (elevation "
                           "beyond V1–V4, inferior reciprocal depression or ≥ 0.5 mV)")
    v3, v4 = st.get("V3"), amps.get("V4")
    qtc = intervals.qtc_bazett_ms
    if v3 is None or v4 is None or not all(math.isfinite(x) for x in
                                           (v3.st_j60_mv, qtc, v4.r_mv)):
        return RuleOutcome(name, None, (), "STE60 V3, QTc or R V4 not measurable")
    score = 1.196 * v3.st_j60_mv * 10 + 0.059 * qtc - 0.326 * v4.r_mv * 10
    fired = score < SMITH_ER_CUT
    return RuleOutcome(
        name, fired, tuple(v24),
        f"1.196·STE60(V3) {v3.st_j60_mv * 10:.1f} mm + 0.059·QTc {qtc:.0f} ms − 0.326·R(V4) "
        f"{v4.r_mv * 10:.1f} mm = {score:.1f} ({'<' if fired else '≥'} {SMITH_ER_CUT}: "
        f"{'early repolarisation favoured' if fired else 'LAD occlusion not excluded'})",
        {"score": score, "ste60_v3_mm": v3.st_j60_mv * 10, "qtc_ms": qtc,
         "r_v4_mm": v4.r_mv * 10})


def _sgarbossa(per_lead: Mapping[str, float], amps: Mapping[str, QRSAmplitudes],
               applies: bool) -> tuple[RuleOutcome, RuleOutcome]:
    if not applies:
        return (RuleOutcome("Sgarbossa", None, (), "not applicable (no LBBB or pacing)"),
                RuleOutcome("Smith-modified Sgarbossa", None, (), "not applicable"))
    points = 0
    parts: list[str] = []
    leads: list[str] = []
    smith_leads: list[str] = []
    conc_ste, conc_std, disc5, ratios = [], [], [], {}
    for lead, st_mv in per_lead.items():
        amp = amps.get(lead.lstrip("-"))
        if (lead == "-aVR" or amp is None
                or not (math.isfinite(st_mv) and math.isfinite(amp.net_mv))):
            continue
        positive = amp.net_mv > 0
        if positive and st_mv >= 0.1:
            conc_ste.append(lead)
        if not positive and lead in ("V1", "V2", "V3") and st_mv <= -0.1:
            conc_std.append(lead)
        if not positive and st_mv >= 0.5:
            disc5.append(lead)
        if not positive and st_mv >= 0.1 and amp.neg_mv > 0:
            ratio = -st_mv / amp.neg_mv
            ratios[lead] = ratio
            if ratio <= SMITH_RATIO:
                smith_leads.append(lead)
    if conc_ste:
        points += 5
        parts.append(f"concordant STE ≥ 1 mm in {', '.join(conc_ste)} (5)")
    if conc_std:
        points += 3
        parts.append(f"concordant STD ≥ 1 mm in {', '.join(conc_std)} (3)")
    if disc5:
        points += 2
        parts.append(f"discordant STE ≥ 5 mm in {', '.join(disc5)} (2)")
    leads = conc_ste + conc_std + disc5
    sg = RuleOutcome("Sgarbossa", points >= 3, tuple(leads),
                     f"Sgarbossa {points} ({'; '.join(parts) or 'no criterion'}); ≥ 3 fires",
                     {"score": points})
    smith_fired = bool(conc_ste or conc_std or smith_leads)
    ratio_txt = ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()) or "no discordant STE ≥ 1 mm"
    sm = RuleOutcome("Smith-modified Sgarbossa", smith_fired,
                     tuple(conc_ste + conc_std + smith_leads),
                     f"concordant criteria: {', '.join(conc_ste + conc_std) or 'none'}; "
                     f"ST/S ratios: {ratio_txt} (≤ −0.25 fires)", {"st_s_ratio": ratios})
    return sg, sm


def _de_winter(st: Mapping[str, STLevel], amps: Mapping[str, QRSAmplitudes],
               per_lead: Mapping[str, float]) -> RuleOutcome:
    hits = []
    for lead in PRECORDIAL:
        level, amp = st.get(lead), amps.get(lead)
        if level is None or amp is None:
            continue
        j, j60, t = level.st_j_mv, level.st_j60_mv, amp.t_mv
        if (math.isfinite(j) and math.isfinite(j60) and math.isfinite(t)
                and -0.35 <= j <= -0.1 and j60 - j >= 0.1 and t >= 0.5):
            hits.append(lead)
    pairs = _contiguous(PRECORDIAL, set(hits))
    leads = sorted({x for p in pairs for x in p}, key=_lead_order)
    return RuleOutcome("de Winter T waves", bool(pairs), tuple(leads),
                       "up-sloping J depression 0.1–0.35 mV with T ≥ 0.5 mV in contiguous "
                       f"precordial leads: {', '.join(leads) or 'none'}",
                       {lead: per_lead.get(lead) for lead in leads})


def _avr_diffuse(per_lead: Mapping[str, float]) -> RuleOutcome:
    avr = -per_lead.get("-aVR", np.nan)
    v1 = per_lead.get("V1", np.nan)
    depressed = [lead for lead, v in per_lead.items()
                 if lead not in ("-aVR", "V1") and math.isfinite(v) and v <= -0.1]
    elevation = (math.isfinite(avr) and avr >= 0.1) or (math.isfinite(v1) and v1 >= 0.1)
    fired = elevation and len(depressed) >= 8
    return RuleOutcome("aVR elevation with diffuse ST depression", fired,
                       tuple(["aVR", *depressed]) if fired else (),
                       f"aVR {avr:+.2f} mV, V1 {v1:+.2f} mV; ST depression ≥ 0.1 mV in "
                       f"{len(depressed)} leads (≥ 8 with aVR/V1 elevation fires)",
                       {"st_avr_mv": avr, "n_depressed": len(depressed)})


def _confidence(detected: bool | None, st: Mapping[str, STLevel], leads: Sequence[str],
                per_lead: Mapping[str, float], threshold: object, reciprocal: bool,
                confounders: Sequence[str], quality_penalty: float, n_missing: int = 0) -> float:
    """Rule-based confidence of the statement (not a probability); with ``n_missing`` of the
    12 leads unmeasured it loses :data:`MISSING_LEAD_PENALTY` per lead and stays at most
    :data:`PARTIAL_MAX_CONFIDENCE` (never ``high``)."""
    if detected is None:
        return float("nan")
    noise = np.nanmedian([lv.noise_mv for lv in st.values()
                          if math.isfinite(lv.noise_mv)] or [np.nan])
    noise = 0.02 if not math.isfinite(noise) else float(noise)
    if detected:
        margins = [per_lead[lead] - threshold(lead) for lead in leads  # type: ignore[operator]
                   if lead in per_lead and math.isfinite(per_lead[lead])]
        score = 0.55
        score += 0.1 if len(leads) >= 3 else 0.0
        score += 0.15 if reciprocal else 0.0
        score += 0.1 if margins and max(margins) >= 0.1 else 0.0
        score -= 0.15 * len([c for c in confounders if c != "early repolarisation favoured"])
        score -= 0.15 if margins and max(margins) < 2 * noise else 0.0
    else:
        # how close the nearest lead came to its threshold, in units of the noise
        gaps = [threshold(lead) - v for lead, v in per_lead.items()  # type: ignore[operator]
                if math.isfinite(v)]
        nearest = min(gaps) if gaps else 0.0
        score = 0.9 if nearest > 0.05 else 0.7 if nearest > 2 * noise else 0.5
        score -= 0.1 * len(confounders)
    if n_missing:
        score = min(score - MISSING_LEAD_PENALTY * n_missing, PARTIAL_MAX_CONFIDENCE)
    return float(np.clip(score - quality_penalty, 0.05, 0.95))


def _statement(detected: bool | None, territories: Sequence[str], leads: Sequence[str],
               per_lead: Mapping[str, float], recip: Sequence[str], lbbb: RuleOutcome,
               paced: RuleOutcome, sgarbossa: RuleOutcome, smith: RuleOutcome,
               lvh: RuleOutcome, er: RuleOutcome, equivalents: Sequence[str],
               label: str, assessed: Sequence[str] = STANDARD_LEADS,
               missing: Sequence[str] = ()) -> str:
    seen = ", ".join(assessed) or "none"
    unseen = ", ".join(missing)
    if detected is None:
        if len(assessed) >= 2:
            return (f"No STEMI statement is possible: ST measured only in {seen}, and no two "
                    f"of them are contiguous (not assessed: {unseen}).")
        return (f"Cannot measure the ST segment (ST measured in: {seen}): no STEMI statement is "
                "possible.")
    parts = []
    if lbbb.fired or paced.fired:
        cause = "LBBB" if lbbb.fired else "ventricular pacing"
        parts.append(f"{cause}: the usual ST criteria do not apply; {sgarbossa.detail}; "
                     f"Smith-modified: {smith.detail}.")
    if detected:
        values = ", ".join(f"{lead} {per_lead[lead]:+.2f} mV" for lead in leads
                           if lead in per_lead and math.isfinite(per_lead[lead]))
        parts.insert(0, f"STEMI criteria met ({label} confidence): "
                        f"{', '.join(territories) or 'unlocalised'} — ST at J {values}.")
        if recip:
            parts.append(f"Reciprocal depression in {', '.join(recip)}.")
        if missing:
            parts.append(f"ST not assessed in {unseen}.")
    else:
        if missing:
            parts.insert(0, f"STEMI criteria not met in the {len(assessed)} leads assessed "
                            f"({label} confidence): {seen}. Not assessed: {unseen}; a STEMI "
                            "there cannot be excluded.")
        else:
            parts.insert(0, f"STEMI criteria not met ({label} confidence; ST assessed in all "
                            "12 leads).")
        if er.fired:
            parts.append(f"ST elevation in {', '.join(er.leads)} meets the voltage criteria but "
                         f"the early-repolarisation formula favours benign early repolarisation: "
                         f"{er.detail}.")
    if lvh.fired:
        parts.append(f"LVH voltage ({lvh.detail}) can cause discordant ST changes in V1–V3.")
    if equivalents:
        parts.append(f"STEMI-equivalent pattern to review: {', '.join(equivalents)}.")
    return " ".join(parts)
