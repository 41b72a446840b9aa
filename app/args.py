"""argparse value types shared by the sub-commands (light: no heavy imports)."""

from __future__ import annotations

import argparse


def page_number(text: str) -> int:
    """A 1-based page number (``--page N``)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a page number >= 1, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0 (a seed)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def add_input_options(parser: argparse.ArgumentParser) -> None:
    """``--page``, ``--start`` and ``--seconds``: which part of an input is read."""
    parser.add_argument("--page", type=page_number, default=None, metavar="N",
                        help="for a multi-page PDF/TIFF, only page N (default: every page, "
                        "each reported)")
    parser.add_argument("--start", type=non_negative_float, default=0.0, metavar="S",
                        help="for a signal file, start S seconds in (default 0)")
    parser.add_argument("--seconds", type=positive_float, default=300.0, metavar="D",
                        help="for a signal file, read at most D seconds (default 300, "
                        "at most 3600)")
    add_upright_option(parser)


def add_upright_option(parser: argparse.ArgumentParser) -> None:
    """``--upright``: the pages are upright as given (the orientation stage is skipped)."""
    parser.add_argument("--upright", action="store_true",
                        help="for an image/PDF, state that the page is upright as given: "
                        "needed for findings on a page whose orientation nothing on it "
                        "confirms")


def non_negative_float(text: str) -> float:
    """A finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


AGE_RANGE_YEARS = (0.0, 130.0)
"""Ages outside this range are a typing error, not a patient."""


def age_years(text: str) -> float:
    """A patient age in years (0–130)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not AGE_RANGE_YEARS[0] <= value <= AGE_RANGE_YEARS[1]:
        raise argparse.ArgumentTypeError(
            f"expected an age in years ({AGE_RANGE_YEARS[0]:g}-{AGE_RANGE_YEARS[1]:g}), "
            f"got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1 (e.g. ``--workers``)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value
