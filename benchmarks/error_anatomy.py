"""Where the digitizer's error lies: an anatomy of a ``families.py`` run's reads against truth.

Usage::

    python benchmarks/error_anatomy.py --run benchmarks/out/families --family eik

For every lead read on a page with truth (after the Challenge scorer's shift and offset,
:func:`ecglens.score.metrics.align`) it reports:

* **regions**: the mean 2024 SNR per lead as read, and as it would be if one region's error
  were zero and its unread samples read (``start``: the first 0.3 s of each printed window,
  where lead names, pulses and cell separators are; ``end``: the last 0.1 s; ``qrs``: samples
  whose truth spans more than 0.4 mV within 40 ms; ``rest``), and with every unread sample read
  exactly;
* **peaks**: read / truth amplitude of every truth R and S peak (> 0.5 mV from the lead's
  median) against the read's extreme within ±20 ms;
* **transfer**: the read's gain against truth per frequency (Welch, 0.51-s Hann windows over
  fully read stretches of leads scoring ≥ 8 dB), and how much of the error power a single
  linear filter (Wiener) could remove at best.

Truth: ECG-Image-Kit ``truth/<page>.hea``, own renders ``<set>/<id>_truth.hea``, photos
``paper2pulse/truth/<record>.hea``. Never tune on the photos' truth (it is the check set).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
REGIONS = ("start", "end", "qrs", "rest")
START_S, END_S = 0.3, 0.1
QRS_WINDOW_S, QRS_SPAN_MV = 0.04, 0.4
PEAK_MV, PEAK_WINDOW_S = 0.5, 0.02
WELCH_N = 256
GOOD_LEAD_DB = 8.0
SNR_CAP_DB = 25.0
"""A lead whose remaining error is (nearly) nil counts this much, not the scorer's 120 dB:
removing one region's error must not let a single lead dominate the mean."""


def truth_path(family: str, stem: str, data: Path, own_set: Path) -> Path:
    """The truth header of a page of ``family``."""
    if family == "own":
        return own_set / f"{stem}_truth.hea"
    if family == "eik":
        return data / "ecg_image_kit" / "synthetic" / "truth" / f"{stem}.hea"
    return data / "real_photos" / "paper2pulse" / "truth" / f"{stem}.hea"


def lead_pairs(run: Path, family: str, data: Path, own_set: Path):
    """(page, lead, truth, aligned read) for every lead read on a page with truth."""
    from ecglens.core.io import read_record
    from ecglens.score.metrics import align

    for header in sorted((run / family / "read").glob("*.hea")):
        truth_file = truth_path(family, header.stem, data, own_set)
        if not truth_file.exists():
            continue
        truth, read = read_record(truth_file), read_record(header)
        if abs(read.fs - truth.fs) > 1e-6:
            read = read.resample(truth.fs)
        for k, name in enumerate(truth.leads):
            reference = truth.signal[:, k]
            if not np.isfinite(reference).any() or name not in read.leads:
                continue
            estimate, _, _ = align(reference, read.signal[:, read.leads.index(name)], truth.fs)
            padded = np.full(len(reference), np.nan)
            n = min(len(reference), len(estimate))
            padded[:n] = estimate[:n]
            yield header.stem, name, reference, padded, truth.fs


def region_labels(reference: np.ndarray, fs: float) -> np.ndarray:
    """0 start, 1 end, 2 qrs, 3 rest per sample (see the module docstring)."""
    from scipy.ndimage import maximum_filter1d, minimum_filter1d

    printed = np.isfinite(reference)
    filled = np.nan_to_num(reference)
    width = max(1, int(QRS_WINDOW_S * fs))
    span = maximum_filter1d(filled, width) - minimum_filter1d(filled, width)
    labels = np.full(len(reference), 3)
    labels[(span > QRS_SPAN_MV) & printed] = 2
    edges = np.flatnonzero(np.diff(np.concatenate([[0], printed.astype(int), [0]])))
    for a, b in zip(edges[::2], edges[1::2], strict=True):
        labels[a:min(b, a + int(START_S * fs))] = 0
        labels[max(a, b - int(END_S * fs)):b] = 1
    return labels


def lead_snr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """2024 SNR of one lead, already aligned (:func:`ecglens.score.metrics.score_lead`)."""
    from ecglens.score.metrics import score_lead

    return float(score_lead(reference, estimate, 500.0, shift=False,
                            max_snr_db=SNR_CAP_DB).snr_db)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=str(REPO / "benchmarks" / "out" / "families"))
    parser.add_argument("--family", choices=("own", "eik", "photos"), default="eik")
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--own-set", default=str(REPO / "benchmarks" / "out" / "seed0"))
    args = parser.parse_args(argv)
    from scipy.signal import find_peaks

    snrs: dict[str, list[float]] = {k: [] for k in ("as read", *REGIONS, "all read")}
    ratios: dict[str, list[float]] = {"R": [], "S": []}
    unread_peaks = {"R": 0, "S": 0}
    window = np.hanning(WELCH_N)
    freqs = np.fft.rfftfreq(WELCH_N, 1 / 500)
    sxx = np.zeros(len(freqs))
    syy = np.zeros(len(freqs))
    sxy = np.zeros(len(freqs), complex)
    snn = np.zeros(len(freqs))
    for _, _, reference, estimate, fs in lead_pairs(Path(args.run), args.family,
                                                    Path(args.data), Path(args.own_set)):
        printed = np.isfinite(reference)
        read = printed & np.isfinite(estimate)
        labels = region_labels(reference, fs)
        base = lead_snr(reference, estimate)
        snrs["as read"].append(base)
        for k, name in enumerate(REGIONS):   # that region read exactly
            snrs[name].append(lead_snr(reference, np.where(labels == k, reference, estimate)))
        # every unread sample read exactly
        snrs["all read"].append(lead_snr(reference, np.where(read, estimate, reference)))
        median = float(np.nanmedian(reference))
        half = int(PEAK_WINDOW_S * fs)
        for sign, kind in ((1, "R"), (-1, "S")):
            shifted = np.nan_to_num(sign * (reference - median), nan=-9.0)
            peaks, _ = find_peaks(shifted, height=PEAK_MV, prominence=PEAK_MV,
                                  distance=int(0.2 * fs))
            for p in peaks:
                near = estimate[max(p - half, 0):p + half + 1]
                if not np.isfinite(near).any():
                    unread_peaks[kind] += 1
                    continue
                ratios[kind].append(float(np.nanmax(sign * (near - median)) / shifted[p]))
        if fs != 500 or base < GOOD_LEAD_DB:
            continue
        for s in range(0, len(reference) - WELCH_N, WELCH_N // 2):
            if not read[s:s + WELCH_N].all():
                continue
            x = reference[s:s + WELCH_N] - reference[s:s + WELCH_N].mean()
            y = estimate[s:s + WELCH_N] - estimate[s:s + WELCH_N].mean()
            fx, fy = np.fft.rfft(x * window), np.fft.rfft(y * window)
            sxx += abs(fx) ** 2
            syy += abs(fy) ** 2
            sxy += np.conj(fx) * fy
            snn += abs(fy - fx) ** 2
    n = len(snrs["as read"])
    print(f"{args.family}: {n} leads read on pages with truth ({args.run})")
    print("mean 2024 SNR per lead, dB: " + ", ".join(
        f"{k} {np.mean(v):.2f}" if k in ("as read", "all read") else f"{k} fixed {np.mean(v):.2f}"
        for k, v in snrs.items()))
    for kind, values in ratios.items():
        v = np.array(values)
        if len(v):
            print(f"{kind} peaks: {len(v)} read, {unread_peaks[kind]} unread; read/truth median "
                  f"{np.median(v):.3f} (10th-90th percentile {np.quantile(v, 0.1):.3f}-"
                  f"{np.quantile(v, 0.9):.3f})")
    if sxx.sum() > 0:
        gain = np.abs(sxy / sxx)
        print("gain of the read against truth (leads >= 8 dB): " + ", ".join(
            f"{f:g} Hz {gain[np.argmin(abs(freqs - f))]:.3f}" for f in (5, 10, 15, 20, 25, 30, 40)))
        wiener = (sxx - abs(sxy) ** 2 / syy).sum()
        print(f"a best linear filter would remove {10 * math.log10(snn.sum() / wiener):.2f} dB "
              "of the error power of those stretches")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
