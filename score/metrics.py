"""How well a read record matches the truth: the PhysioNet/CinC Challenge 2024 SNR, r, RMSE,
and the Kaggle 2025 page score (:func:`kaggle_page_score`).

The SNR follows the Challenge scorer (``evaluation-2024``; see ``shared/research/anchors.md``
§1.1): a 256-level binary image of each series, Gaussian blur σ = 0.5 px, 2-D
cross-correlation to find a time lag and a vertical offset, applied only if the lag is at most
0.5 s and the offset at most 1 mV; then 10·log10(signal power / error power) over samples
finite in both, multiplied by the fraction α of finite reference samples the estimate covers
(0 dB if it covers none).

One deliberate difference: a perfect reconstruction (error power 0) scores ``max_snr_db``
(120 dB) instead of the Challenge's NaN, which would silently drop it from a mean.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ecglens.core.record import ECGRecord

MAX_SNR_DB = 120.0

KAGGLE_MAX_SHIFT_S = 0.2
"""Kaggle 2025: the read lead may be shifted by at most 0.2 s (``MAX_TIME_SHIFT`` in the
competition's metric code, ``shared/research/anchors.md`` §1.4)."""

KAGGLE_MAX_RATIO = 384.0
"""Kaggle 2025: a page's signal-to-noise power ratio is capped at 384 (``PERFECT_SCORE``),
i.e. 10·log10(384) = 25.84 dB is the best possible score."""

KAGGLE_FLOOR_DB = -384.0
"""Kaggle 2025: the dB score is floored at −384 (reached only where the truth is all zero)."""


@dataclasses.dataclass(frozen=True)
class LeadScore:
    """Agreement of one estimated lead with its reference.

    Attributes
    ----------
    snr_db
        Challenge-2024 SNR in dB (already multiplied by ``alpha``); NaN if the reference lead
        has no finite sample or is all zero.
    alpha
        Fraction of finite reference samples that the estimate covers.
    lag_samples, offset_mv
        The alignment that was applied (0 if it was out of bounds and rejected).
    pearson_r
        Pearson correlation on the samples finite in both (after alignment); NaN if < 3.
    rmse_uv
        Root-mean-square error in µV on those samples.
    """

    snr_db: float
    alpha: float
    lag_samples: int
    offset_mv: float
    pearson_r: float
    rmse_uv: float


def _binary_image(x: np.ndarray, low: float, high: float, length: int) -> np.ndarray:
    image = np.zeros((256, length))
    finite = np.flatnonzero(np.isfinite(x))
    if len(finite) == 0:
        return image
    span = high - low if high > low else 1.0
    rows = np.clip(np.round(255.0 * (x[finite] - low) / span + 1.0), 1, 256).astype(int) - 1
    image[rows, finite] = 1.0
    return image


def align(reference: np.ndarray, estimate: np.ndarray, fs: float) -> tuple[np.ndarray, int, float]:
    """Align ``estimate`` to ``reference`` as the Challenge scorer does.

    Returns the shifted and offset estimate, the lag in samples and the offset in mV
    (both 0 when the found shift exceeds 0.5 s or 1 mV, or when either series is empty).
    """
    from scipy import fft
    from scipy.ndimage import gaussian_filter

    estimate = np.asarray(estimate, dtype=float)
    reference = np.asarray(reference, dtype=float)
    both = np.concatenate([reference[np.isfinite(reference)], estimate[np.isfinite(estimate)]])
    if not np.isfinite(reference).any() or not np.isfinite(estimate).any():
        return estimate, 0, 0.0
    low, high = float(both.min()), float(both.max())
    length = max(len(reference), len(estimate))
    image_ref = gaussian_filter(_binary_image(reference, low, high, length), 0.5)
    image_est = gaussian_filter(_binary_image(estimate, low, high, length), 0.5)
    # full 2-D cross-correlation by real FFTs at fast sizes (same values as
    # scipy.signal.fftconvolve(ref, est[::-1, ::-1]), ~3x faster)
    full = (2 * 256 - 1, 2 * length - 1)
    shape = (fft.next_fast_len(full[0], real=True), fft.next_fast_len(full[1], real=True))
    spectrum = fft.rfft2(image_ref, shape) * fft.rfft2(image_est[::-1, ::-1], shape)
    cross = fft.irfft2(spectrum, shape)[: full[0], : full[1]]
    peak_cross = np.unravel_index(int(np.argmax(cross)), cross.shape)
    # the reference's auto-correlation peaks at zero lag (Cauchy-Schwarz), i.e. at the centre
    # of the full correlation; the Challenge code computes it, which gives the same index
    peak_auto = (256 - 1, length - 1)
    lag = int(peak_auto[1] - peak_cross[1])
    offset = float((peak_auto[0] - peak_cross[0]) * (high - low) / 255.0)
    if abs(lag) > round(0.5 * fs) or abs(offset) > 1.0:
        return estimate, 0, 0.0
    shifted = np.full(len(estimate), np.nan)
    if lag >= 0:
        shifted[: len(estimate) - lag] = estimate[lag:]
    else:
        shifted[-lag:] = estimate[: len(estimate) + lag]
    return shifted - offset, lag, offset


def score_lead(reference: np.ndarray, estimate: np.ndarray, fs: float, shift: bool = True,
               max_snr_db: float = MAX_SNR_DB) -> LeadScore:
    """Score one lead (both in mV at the same ``fs``); see :class:`LeadScore`."""
    reference = np.asarray(reference, dtype=float)
    estimate = np.asarray(estimate, dtype=float)
    lag, offset = 0, 0.0
    if shift:
        estimate, lag, offset = align(reference, estimate, fs)
    length = max(len(reference), len(estimate))
    ref = np.full(length, np.nan)
    est = np.full(length, np.nan)
    ref[: len(reference)] = reference
    est[: len(estimate)] = estimate
    finite_ref = np.isfinite(ref)
    both = finite_ref & np.isfinite(est)
    n_ref, n_both = int(finite_ref.sum()), int(both.sum())
    nan = float("nan")
    if n_ref == 0:
        return LeadScore(nan, nan, lag, offset, nan, nan)
    alpha = n_both / n_ref
    if n_both == 0:
        return LeadScore(0.0, 0.0, lag, offset, nan, nan)
    error = ref[both] - est[both]
    signal_power = float(np.mean(ref[both] ** 2))
    noise_power = float(np.mean(error**2))
    if signal_power <= 0:
        snr = nan
    elif noise_power <= 0:
        snr = max_snr_db
    else:
        snr = min(max_snr_db, 10.0 * math.log10(signal_power / noise_power))
    r = nan
    if n_both >= 3 and np.std(ref[both]) > 0 and np.std(est[both]) > 0:
        r = float(np.corrcoef(ref[both], est[both])[0, 1])
    rmse_uv = 1000.0 * math.sqrt(noise_power)
    return LeadScore(snr * alpha, alpha, lag, offset, r, rmse_uv)


def score_record(truth: ECGRecord, estimate: ECGRecord, shift: bool = True) -> dict[str, LeadScore]:
    """Score every lead of ``truth`` that has a finite sample against ``estimate``.

    The estimate is resampled to the truth's rate if needed; a lead missing from the estimate
    scores 0 dB (α = 0). Returns ``{lead: LeadScore}``.
    """
    if abs(estimate.fs - truth.fs) > 1e-6:
        estimate = estimate.resample(truth.fs)
    scores: dict[str, LeadScore] = {}
    for k, name in enumerate(truth.leads):
        reference = truth.signal[:, k]
        if not np.isfinite(reference).any():
            continue
        if name in estimate.leads:
            est = estimate.signal[:, estimate.leads.index(name)]
        else:
            est = np.full(truth.n_samples, np.nan)
        scores[name] = score_lead(reference, est, truth.fs, shift=shift)
    return scores


@dataclasses.dataclass(frozen=True)
class KagglePageScore:
    """Kaggle 2025 score of one page.

    Attributes
    ----------
    ratio
        Σ truth² / Σ (truth − read)² summed over the printed leads, capped at
        :data:`KAGGLE_MAX_RATIO` (0 when the truth is all zero).
    db
        ``10·log10(ratio)`` (floored at :data:`KAGGLE_FLOOR_DB`).
    lags
        The time shift (samples) applied per lead; positive: the read was moved later.
    """

    ratio: float
    db: float
    lags: dict[str, int]


def ratio_db(ratio: float) -> float:
    """``10·log10(ratio)``, floored at :data:`KAGGLE_FLOOR_DB` (the set score of mean ratios)."""
    if math.isnan(ratio):
        return ratio
    if ratio <= 0:
        return KAGGLE_FLOOR_DB
    return max(KAGGLE_FLOOR_DB, 10.0 * math.log10(ratio))


def kaggle_align(truth: np.ndarray, read: np.ndarray, max_shift: int) -> tuple[np.ndarray, int]:
    """Shift and offset ``read`` onto ``truth`` as the Kaggle 2025 metric does.

    Both are the samples of one printed window (same length, truth finite; read NaN must
    already be 0). The lag (|lag| ≤ ``max_shift``) maximises the cross-correlation of the
    mean-centred series (ties: the smallest |lag|, then the negative one); samples shifted in
    are NaN; the constant offset that minimises the squared error over the other samples is
    removed. Returns the aligned read (NaN where shifted in) and the lag.
    """
    n = len(truth)
    max_shift = max(0, min(int(max_shift), n - 1))
    centred_truth = truth - truth.mean()
    padded = np.concatenate([np.zeros(max_shift), read - read.mean(), np.zeros(max_shift)])
    # window i holds the read delayed by lag = max_shift - i
    windows = np.lib.stride_tricks.sliding_window_view(padded, n)
    correlation = windows @ centred_truth
    lags = max_shift - np.arange(len(correlation))
    best = np.flatnonzero(correlation == correlation.max())
    lag = int(min(lags[best], key=lambda k: (abs(k), k)))
    aligned = np.full(n, np.nan)
    if lag >= 0:
        aligned[lag:] = read[: n - lag]
    else:
        aligned[: n + lag] = read[-lag:]
    finite = np.isfinite(aligned)
    if finite.any():
        aligned -= float(np.mean(aligned[finite] - truth[finite]))
    return aligned, lag


def kaggle_page_score(truth: ECGRecord, read: ECGRecord | None) -> KagglePageScore:
    """The Kaggle 2025 score of one page (``shared/research/anchors.md`` §1.4).

    Per truth lead only its printed window (finite truth samples) counts; the read lead there
    (NaN → 0 mV; a lead missing from ``read``, or ``read`` None, is all 0 mV) is aligned by
    :func:`kaggle_align`, and samples shifted in count as 0 mV. The page's ratio is the summed
    signal power over the summed error power of all leads, capped at :data:`KAGGLE_MAX_RATIO`.
    A set scores ``ratio_db(mean of page ratios)``, not the mean of the pages' dB.
    """
    if read is not None and abs(read.fs - truth.fs) > 1e-6:
        read = read.resample(truth.fs)
    max_shift = int(truth.fs * KAGGLE_MAX_SHIFT_S)
    signal_power = noise_power = 0.0
    lags: dict[str, int] = {}
    for k, name in enumerate(truth.leads):
        window = np.isfinite(truth.signal[:, k])
        if not window.any():
            continue
        column = np.zeros(truth.n_samples)
        if read is not None and name in read.leads:
            values = read.signal[: truth.n_samples, read.leads.index(name)]
            column[: len(values)] = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
        reference = truth.signal[window, k]
        aligned, lags[name] = kaggle_align(reference, column[window], max_shift)
        error = reference - np.nan_to_num(aligned, nan=0.0)
        signal_power += float(np.sum(reference**2))
        noise_power += float(np.sum(error**2))
    if not lags:                     # no printed lead: nothing to score
        return KagglePageScore(float("nan"), float("nan"), lags)
    if noise_power == 0:             # as the competition's code: perfect before empty
        ratio = KAGGLE_MAX_RATIO
    elif signal_power == 0:
        ratio = 0.0
    else:
        ratio = min(signal_power / noise_power, KAGGLE_MAX_RATIO)
    return KagglePageScore(ratio, ratio_db(ratio), lags)
