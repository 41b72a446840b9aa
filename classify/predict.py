"""Inference with the committed weights: probabilities, decisions, saliency.

The same function serves a WFDB/CSV record and a record read off paper by the digitizer:
:func:`classify_record` resamples to 100 Hz, keeps the 12 standard leads (NaN where not
printed), normalises (:func:`classify.data.normalize`) and averages the sigmoid outputs over
consecutive 10-s windows (at most :data:`MAX_WINDOWS`).

Every record first passes the measurability gate (:func:`ecglens.core.gate.assess_measurability`,
purpose ``"classification"``): a record that is not assessable (all NaN, too short, flat, noise,
amplitudes in no unit, fewer than 9 observed leads, implausible heart rate) gets no decision —
``assessable`` False, ``reason``, no positive class.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ecglens.classify import DISCLAIMER
from ecglens.classify.data import CLASSES, MODEL_FS_HZ, N_SAMPLES, normalize
from ecglens.core.errors import ModelError
from ecglens.core.gate import Measurability, assess_measurability
from ecglens.core.record import STANDARD_LEADS, ECGRecord

log = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
MAX_WINDOWS = 6


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    """A model with its metadata (thresholds, version, classes)."""

    model: Any
    metadata: dict
    thresholds: dict[str, float]
    version: str


@functools.lru_cache(maxsize=4)
def load_model(weights_dir: str | None = None) -> LoadedModel:
    """Load ``superclass.pt`` + ``superclass.json`` (default: the committed weights)."""
    import torch

    from ecglens.classify.model import ECGResNet1d, ModelConfig

    folder = Path(weights_dir) if weights_dir else WEIGHTS_DIR
    meta_path, pt_path = folder / "superclass.json", folder / "superclass.pt"
    if not (meta_path.exists() and pt_path.exists()):
        raise ModelError(f"no classifier weights in {folder} (superclass.pt/.json)", str(folder))
    meta = json.loads(meta_path.read_text())
    cfg = dict(meta["model_config"])
    cfg["widths"] = tuple(cfg["widths"])
    model = ECGResNet1d(ModelConfig(**cfg))
    model.load_state_dict(torch.load(pt_path, map_location="cpu", weights_only=True))
    model.eval()
    return LoadedModel(model, meta, {k: float(v) for k, v in meta["thresholds"].items()},
                       str(meta["model_version"]))


def record_windows(record: ECGRecord) -> np.ndarray:
    """Normalised model inputs ``(n_windows, 24, 1000)`` of a record.

    The record is cut into consecutive 10-s windows (the last one kept if at least 5 s long;
    a record shorter than 10 s is padded with NaN → unobserved).
    """
    rec = record.standard12().resample(MODEL_FS_HZ)
    signal = rec.signal.astype(np.float32)
    n = signal.shape[0]
    starts = list(range(0, max(n - N_SAMPLES // 2, 1), N_SAMPLES))[:MAX_WINDOWS] or [0]
    out = []
    for s in starts:
        chunk = signal[s:s + N_SAMPLES]
        if chunk.shape[0] < N_SAMPLES:
            pad = np.full((N_SAMPLES - chunk.shape[0], chunk.shape[1]), np.nan, np.float32)
            chunk = np.concatenate([chunk, pad])
        out.append(normalize(chunk))
    return np.stack(out)


@dataclasses.dataclass(frozen=True)
class Classification:
    """Per-class probabilities of one record and the decisions at the model's thresholds.

    Attributes
    ----------
    probabilities
        Class → probability in [0, 1] (mean over 10-s windows): the model's raw output. For a
        record that is not assessable it is never turned into a decision and is left out of
        :meth:`to_dict`.
    thresholds
        Class → decision threshold (max F1 on PTB-XL fold 9).
    positive
        Classes whose probability reaches the threshold; always empty when not assessable.
    model_version
        Version string of the weights.
    lead_coverage
        Lead → fraction of the first 10 s that was observed (not NaN).
    n_windows
        Number of 10-s windows averaged.
    disclaimer
        :data:`classify.DISCLAIMER`.
    assessable, reason
        The measurability gate's verdict: ``reason`` is ``"not assessable: <why>"`` when
        ``assessable`` is False, else empty.
    warnings
        The gate's warnings (unit conversion, empty or flat leads).
    leads_assessed
        Standard leads with a usable signal.
    """

    probabilities: dict[str, float]
    thresholds: dict[str, float]
    positive: tuple[str, ...]
    model_version: str
    lead_coverage: dict[str, float]
    n_windows: int
    disclaimer: str = DISCLAIMER
    assessable: bool = True
    reason: str = ""
    warnings: tuple[str, ...] = ()
    leads_assessed: tuple[str, ...] = STANDARD_LEADS

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; a record that is not assessable has no probabilities in it."""
        d = dataclasses.asdict(self)
        d["classes"] = list(CLASSES)
        d["positive"] = list(self.positive)
        d["warnings"] = list(self.warnings)
        d["leads_assessed"] = list(self.leads_assessed)
        d["reason"] = self.reason or None
        if not self.assessable:
            d["probabilities"] = {}
        return d


def predict_proba(inputs: np.ndarray, loaded: LoadedModel | None = None) -> np.ndarray:
    """Sigmoid probabilities ``(n, 5)`` for normalised inputs ``(n, 24, 1000)``."""
    import torch

    loaded = loaded or load_model()
    with torch.no_grad():
        logits = loaded.model(torch.from_numpy(np.ascontiguousarray(inputs, np.float32)))
    return torch.sigmoid(logits).numpy()


def classify_record(record: ECGRecord, weights_dir: str | None = None,
                    gate: Measurability | None = None) -> Classification:
    """Classify one record (file or digitized page) with the committed weights.

    Parameters
    ----------
    record
        Any record (its standard leads are used).
    weights_dir
        Folder of other weights (default: the committed ones).
    gate
        The measurability verdict for ``purpose="classification"`` if already computed;
        otherwise :func:`ecglens.core.gate.assess_measurability` runs here. The model sees the
        gate's record (in mV, unit-converted where needed). Not assessable → no positive class.
    """
    if gate is None:
        gate = assess_measurability(record, "classification")
    elif gate.purpose != "classification":
        raise ValueError(f"a gate for {gate.purpose!r} cannot admit a classification")
    loaded = load_model(weights_dir)
    windows = record_windows(gate.record)
    probs = predict_proba(windows, loaded).mean(axis=0)
    coverage = windows[0, 12:].mean(axis=1)
    probabilities = {c: float(p) for c, p in zip(CLASSES, probs, strict=True)}
    positive: tuple[str, ...] = ()
    if gate.assessable:
        positive = tuple(c for c in CLASSES if probabilities[c] >= loaded.thresholds[c])
    else:
        log.info("classification withheld: %s", gate.reason)
    return Classification(probabilities, dict(loaded.thresholds), positive, loaded.version,
                          {lead: float(v) for lead, v in zip(STANDARD_LEADS, coverage,
                                                             strict=True)},
                          len(windows), assessable=gate.assessable, reason=gate.reason,
                          warnings=gate.warnings, leads_assessed=gate.leads_assessed)


# ============================================================================ saliency
def integrated_gradients(model: Any, x: np.ndarray, target: int, steps: int = 32) -> np.ndarray:
    """Integrated gradients of the logit of class ``target`` for one input ``(24, T)``.

    The baseline is the same input with every lead flat (0 mV) and the observed masks kept,
    so attributions say which measured samples pushed the class, not where the gaps are.
    Riemann midpoint rule with ``steps`` points. Returns ``(T, 12)``: attribution per time
    sample and lead (logit units; they sum to about ``f(x) - f(baseline)``).
    """
    import torch

    xt = torch.from_numpy(np.asarray(x, np.float32))[None]
    base = xt.clone()
    base[:, :12] = 0.0
    alphas = (torch.arange(steps, dtype=torch.float32) + 0.5) / steps
    path = base + alphas[:, None, None] * (xt - base)
    path.requires_grad_(True)
    model.eval()
    out = model(path)[:, target].sum()
    (grad,) = torch.autograd.grad(out, path)
    attr = (xt - base)[0] * grad.mean(dim=0)
    return attr[:12].detach().numpy().T.copy()


@dataclasses.dataclass(frozen=True)
class Saliency:
    """Which spans of which leads drove each class.

    Attributes
    ----------
    attributions
        Class → ``(1000, 12)`` integrated-gradient attribution (first 10-s window, 100 Hz,
        lead order :data:`ecglens.core.record.STANDARD_LEADS`); positive = evidence for the class.
    fs
        Sampling rate of the attributions (100 Hz).
    signal
        ``(1000, 12)`` the model's view of the signal (median-removed mV, NaN where unobserved).
    probabilities
        Class → probability of that window.
    """

    attributions: dict[str, np.ndarray]
    fs: float
    signal: np.ndarray
    probabilities: dict[str, float]

    def spans(self, cls: str, top_fraction: float = 0.05,
              smooth_s: float = 0.1) -> list[tuple[str, float, float, float]]:
        """The strongest positive spans for ``cls``: ``(lead, t0_s, t1_s, weight)``.

        Attribution is smoothed (moving mean over ``smooth_s``); samples above the
        ``1 - top_fraction`` quantile of all leads form spans, weight = mean attribution,
        sorted strongest first. Times are in seconds from the record start, so they can be
        drawn on a page overlay through the digitizer's time → pixel mapping.
        """
        attr = _smooth(self.attributions[cls], round(smooth_s * self.fs))
        pos = np.clip(attr, 0.0, None)
        if not np.any(pos > 0):
            return []
        cut = np.quantile(pos[pos > 0], 1.0 - top_fraction)
        out = []
        from ecglens.core.record import finite_runs

        for k, lead in enumerate(STANDARD_LEADS):
            for a, b in finite_runs(pos[:, k] >= cut):
                out.append((lead, a / self.fs, b / self.fs, float(attr[a:b, k].mean())))
        return sorted(out, key=lambda s: -s[3])


def _smooth(a: np.ndarray, width: int) -> np.ndarray:
    if width <= 1:
        return a
    kernel = np.ones(width) / width
    return np.stack([np.convolve(a[:, k], kernel, mode="same") for k in range(a.shape[1])],
                    axis=1)


def saliency(record: ECGRecord, classes: tuple[str, ...] | None = None, steps: int = 32,
             weights_dir: str | None = None) -> Saliency:
    """Integrated-gradient saliency of the first 10-s window for ``classes`` (default all)."""
    loaded = load_model(weights_dir)
    x = record_windows(record)[0]
    probs = predict_proba(x[None], loaded)[0]
    classes = classes or CLASSES
    attributions = {c: integrated_gradients(loaded.model, x, CLASSES.index(c), steps)
                    for c in classes}
    signal = np.where(x[12:] > 0, x[:12], np.nan).T
    return Saliency(attributions, MODEL_FS_HZ, signal,
                    {c: float(p) for c, p in zip(CLASSES, probs, strict=True)})


def plot_saliency(sal: Saliency, path: str | Path, cls: str | None = None,
                  title: str | None = None) -> Path:
    """Draw a 12-lead plot (4 columns x 3 rows of full 10-s leads would be cramped, so one row
    per lead) with the trace coloured by the attribution for ``cls``.

    ``cls`` defaults to the most probable class. Red = evidence for the class, blue = against.
    Writes a PNG (matplotlib, Agg).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    cls = cls or max(sal.probabilities, key=lambda c: sal.probabilities[c])
    attr = _smooth(sal.attributions[cls], 5)
    scale = float(np.nanmax(np.abs(attr))) or 1.0
    t = np.arange(sal.signal.shape[0]) / sal.fs
    fig, axes = plt.subplots(12, 1, figsize=(11, 13), sharex=True)
    for k, (ax, lead) in enumerate(zip(axes, STANDARD_LEADS, strict=True)):
        y = sal.signal[:, k]
        pts = np.stack([t, y], axis=1)
        segs = np.stack([pts[:-1], pts[1:]], axis=1)
        ax.plot(t, y, color="0.3", lw=0.6)
        a = attr[:-1, k] / scale
        colors = plt.get_cmap("coolwarm")(0.5 + 0.5 * a)
        colors[:, 3] = np.clip(np.abs(a) * 1.5, 0.0, 1.0)
        ax.add_collection(LineCollection(list(segs), colors=colors, linewidths=2.2))
        ax.fill_between(t, 0, 1, where=attr[:, k] > 0.3 * scale, color="red", alpha=0.12,
                        transform=ax.get_xaxis_transform(), linewidth=0)
        finite = y[np.isfinite(y)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (-1.0, 1.0)
        pad = 0.1 * max(hi - lo, 0.5)
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_xlim(0, t[-1])
        ax.set_ylabel(lead, rotation=0, labelpad=18)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.2)
    axes[-1].set_xlabel("time (s)")
    fig.suptitle(title or f"Integrated-gradient saliency for {cls} "
                 f"(p = {sal.probabilities[cls]:.2f}); red = evidence for, blue = against")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def draw_saliency_on_page(result: Any, sal: Saliency, cls: str, path: str | Path,
                          top_fraction: float = 0.05) -> Path:
    """Shade the salient spans of ``cls`` on the digitizer's overlay of a page.

    ``result`` is an :class:`ecglens.digitize.pipeline.DigitizeResult` (used through its
    attributes and ``overlay_image()``; classify does not import the digitizer). A span
    ``(lead, t0, t1)`` is drawn in every row that printed that lead over that time, using the
    page's time axis (x) and the row's 0-mV line (y, ± half the distance to the nearest other
    row).
    """
    import cv2

    img = result.overlay_image()
    page_w = np.asarray(result.deskew.image).shape[1]
    scale = img.shape[1] / page_w
    axis = result.time_axis
    px_per_s = (axis.x1_px - axis.x0_px) / axis.duration_s
    bases = np.asarray(result.baselines_px, float)
    gaps = np.diff(np.sort(bases))
    half_h = 0.5 * float(np.median(gaps)) if len(gaps) else 0.1 * img.shape[0] / scale
    shade = img.copy()
    reads = {lead.lead: lead for lead in result.convert.leads}
    for lead, t0, t1, _ in sal.spans(cls, top_fraction):
        read = reads.get(lead)
        if read is None:
            continue
        a, b = max(t0, read.t_start_s), min(t1, read.t_end_s)
        if not b > a:
            continue
        for row in read.rows:
            x0 = round((axis.x0_px + a * px_per_s) * scale)
            x1 = round((axis.x0_px + b * px_per_s) * scale)
            y0 = round((bases[row] - half_h) * scale)
            y1 = round((bases[row] + half_h) * scale)
            cv2.rectangle(shade, (x0, y0), (x1, y1), (255, 60, 60), thickness=-1)
    out = (0.7 * img + 0.3 * shade).astype(np.uint8)
    cv2.putText(out, f"saliency: {cls} (p={sal.probabilities[cls]:.2f})",
                (10, out.shape[0] - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (200, 0, 0), 2, cv2.LINE_AA)
    path = Path(path)
    cv2.imwrite(str(path), cv2.cvtColor(out, cv2.COLOR_RGB2BGR))
    return path
