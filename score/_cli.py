"""Sub-command ``score`` (argparse only; the work is imported lazily)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``score`` sub-command to the ``ecglens`` parser."""
    # ---------------------------------------------------------------- score
    score = subparsers.add_parser(
        "score",
        help="compare read records with the truth (Challenge-2024 SNR, Kaggle-2025 dB, r, RMSE)",
        description="For each truth record in TRUTH_DIR (files *_truth.hea or any .hea), find the "
        "read record of the same stem in READ_DIR and score every printed lead (Challenge-2024 "
        "SNR) and every page (Kaggle-2025 ratio; a group scores 10*log10 of its mean ratio). "
        "Writes a table per profile and layout (markdown) and, with --out, JSON.",
    )
    score.add_argument("truth_dir", help="folder of truth records (from `ecglens render` or the "
                       "benchmark set)")
    score.add_argument("read_dir", help="folder of read records (from `ecglens digitize`)")
    score.add_argument("--out", default=None, help="write score.json and score.md into this folder")
    score.add_argument("--no-shift", action="store_true",
                       help="score without the 0.5 s/1 mV alignment (Challenge-2024 SNR only; "
                       "the Kaggle-2025 score always aligns)")
    score.set_defaults(func=_run_score)


def _run_score(args: argparse.Namespace) -> int:
    from ecglens.score.scoring import run_score

    return run_score(args)
