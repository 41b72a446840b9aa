"""Challenge-2024 SNR scorer sanity on a real lead."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ecglens.core.io import read_record
from ecglens.score.metrics import score_lead, score_record


@pytest.fixture(scope="module")
def lead_ii(shared_data: Path) -> np.ndarray:
    return np.array(read_record(shared_data / "ludb" / "data" / "1").lead("II"))


def test_identical_signal_scores_high_with_r_one(lead_ii: np.ndarray) -> None:
    score = score_lead(lead_ii, lead_ii.copy(), 500)
    assert score.snr_db >= 80 and score.pearson_r == pytest.approx(1.0)
    assert score.alpha == 1.0


def test_all_zero_estimate_scores_zero_db(lead_ii: np.ndarray) -> None:
    assert score_lead(lead_ii, np.zeros_like(lead_ii), 500, shift=False).snr_db == pytest.approx(
        0.0, abs=1e-9)
    # with alignment the flat line may be lifted by ≤ 1 mV, so it stays near 0 dB, never high
    assert abs(score_lead(lead_ii, np.zeros_like(lead_ii), 500).snr_db) < 0.5


def test_all_nan_estimate_scores_exactly_zero(lead_ii: np.ndarray) -> None:
    score = score_lead(lead_ii, np.full_like(lead_ii, np.nan), 500)
    assert score.snr_db == 0.0 and score.alpha == 0.0


def test_shift_and_offset_are_undone(lead_ii: np.ndarray) -> None:
    shifted = np.full_like(lead_ii, np.nan)
    shifted[100:] = lead_ii[:-100] + 0.3          # 0.2 s late, 0.3 mV high
    score = score_lead(lead_ii, shifted, 500)
    assert score.lag_samples == 100
    span = lead_ii.max() - lead_ii.min() + 0.3
    assert score.offset_mv == pytest.approx(0.3, abs=span / 255)
    # the aligned copy scores as the unshifted copy does, up to the 1/255-range offset step
    # and the 100 samples lost at the edge (α = 0.98)
    assert score.alpha == pytest.approx(0.98)
    assert score.snr_db > 30 and score.pearson_r == pytest.approx(1.0)
    unaligned = score_lead(lead_ii, shifted, 500, shift=False)
    assert unaligned.snr_db < 0


def test_shift_beyond_half_a_second_is_not_forgiven(lead_ii: np.ndarray) -> None:
    shifted = np.full_like(lead_ii, np.nan)
    shifted[400:] = lead_ii[:-400]                # 0.8 s
    score = score_lead(lead_ii, shifted, 500)
    assert score.lag_samples == 0 and score.snr_db < 5


def test_nan_half_estimate_is_half_scaled(lead_ii: np.ndarray) -> None:
    estimate = 0.9 * lead_ii                       # a 10 % gain error: 20 dB
    full = score_lead(lead_ii, estimate, 500, shift=False)
    assert full.snr_db == pytest.approx(20.0, abs=1e-6)
    half = estimate.copy()
    half[len(half) // 2:] = np.nan
    halved = score_lead(lead_ii, half, 500, shift=False)
    assert halved.alpha == pytest.approx(0.5)
    assert halved.snr_db == pytest.approx(0.5 * 20.0, abs=1e-6)


def test_score_record_skips_unprinted_leads_and_zeroes_missing(shared_data: Path) -> None:
    truth = read_record(shared_data / "ludb" / "data" / "3")
    signal = truth.signal.copy()
    signal[:, 2] = np.nan                         # lead III was not printed
    truth = truth.replace(signal=signal)
    estimate = truth.select(["I", "II"])          # the reader found only I and II
    scores = score_record(truth, estimate)
    assert "III" not in scores and len(scores) == 11
    assert scores["I"].snr_db >= 80 and scores["V1"].snr_db == 0.0


def _align_reference_implementation(reference: np.ndarray, estimate: np.ndarray,
                                    fs: float) -> tuple[int, float]:
    """The Challenge's steps: fftconvolve cross- and auto-correlation, argmax difference."""
    from scipy.ndimage import gaussian_filter
    from scipy.signal import fftconvolve

    from ecglens.score.metrics import _binary_image

    both = np.concatenate([reference[np.isfinite(reference)], estimate[np.isfinite(estimate)]])
    low, high = both.min(), both.max()
    n = max(len(reference), len(estimate))
    a = gaussian_filter(_binary_image(reference, low, high, n), 0.5)
    b = gaussian_filter(_binary_image(estimate, low, high, n), 0.5)
    cross = fftconvolve(a, b[::-1, ::-1], mode="full")
    auto = fftconvolve(a, a[::-1, ::-1], mode="full")
    pc = np.unravel_index(np.argmax(cross), cross.shape)
    pa = np.unravel_index(np.argmax(auto), auto.shape)
    return int(pa[1] - pc[1]), float((pa[0] - pc[0]) * (high - low) / 255)


def test_fast_alignment_equals_challenge_steps(shared_data: Path) -> None:
    from ecglens.score.metrics import align

    record = read_record(shared_data / "cinc" / "E07501.hea")
    rng = np.random.default_rng(1)
    for k, lag in [(0, 37), (1, -80), (6, 0), (10, 120)]:
        reference = np.array(record.signal[:, k])
        estimate = np.roll(reference, lag) + 0.2 + rng.normal(0, 0.03, len(reference))
        estimate[:300] = np.nan
        _, fast_lag, fast_offset = align(reference, estimate, 500)
        ref_lag, ref_offset = _align_reference_implementation(reference, estimate, 500)
        assert fast_lag == ref_lag and fast_offset == pytest.approx(ref_offset)
