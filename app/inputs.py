"""From a path to records: the one place where a signal file and a paper ECG meet.

``ecglens analyze`` and ``ecglens classify`` (and :func:`ecglens.load_inputs`) take a WFDB
record, a CSV or JSON record, or an image/PDF of a paper ECG. Signal files are read by
:mod:`ecglens.core.io`; images and PDFs are digitized page by page by :mod:`ecglens.digitize`.
This application-level module is what keeps :mod:`ecglens.analysis` and
:mod:`ecglens.classify` free of any import of the digitizer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ecglens.core.errors import InputError
from ecglens.core.record import ECGRecord

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp",
                            ".pdf"})
"""Inputs read as paper ECGs (digitized first); anything else is read as a signal record."""


@dataclasses.dataclass(frozen=True)
class LoadedInput:
    """One record from an input: a signal file, or one digitized page.

    Attributes
    ----------
    record
        The record (mV).
    source
        The input path as given.
    page
        1-based page number for an image/PDF input, else None.
    n_pages
        Pages in the input (1 for a signal file).
    digitized
        The :class:`ecglens.digitize.pipeline.DigitizeResult` of a page, else None.
    """

    record: ECGRecord
    source: str
    page: int | None
    n_pages: int
    digitized: Any = None


def is_paper(path: str | Path) -> bool:
    """True if ``path`` is read as a paper ECG (image or PDF) rather than a signal record."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def iter_inputs(path: str | Path, page: int | None = None) -> Iterator[LoadedInput]:
    """Yield the records of ``path``: one for a signal file, one per page of an image/PDF.

    Pages are read one at a time (memory does not grow with the page count). ``page``
    (1-based) reads only that page of a multi-page input.

    Raises
    ------
    InputError
        Naming the file: missing, unreadable, not an ECG, or ``page`` beyond the last page.
    """
    p = Path(path)
    if not is_paper(p):
        if page not in (None, 1):
            raise InputError(f"--page {page}: a signal record has one page", p)
        from ecglens.core.io import read_record

        yield LoadedInput(read_record(p), str(p), None, 1)
        return
    from ecglens.digitize.pipeline import iter_digitize_file

    for result in iter_digitize_file(p, pages=None if page is None else (page,)):
        yield LoadedInput(result.record, str(p), result.page_index + 1, result.n_pages, result)


def load_inputs(path: str | Path, page: int | None = None) -> list[LoadedInput]:
    """Every record of ``path`` as a list (see :func:`iter_inputs`)."""
    return list(iter_inputs(path, page))


__all__ = ["IMAGE_SUFFIXES", "LoadedInput", "is_paper", "iter_inputs", "load_inputs"]
