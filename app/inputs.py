"""From a path to records: the one place where a signal file and a paper ECG meet.

``ecglens analyze`` and ``ecglens classify`` (and :func:`ecglens.load_inputs`) take a WFDB
record, a CSV or JSON record, or an image/PDF of a paper ECG. Signal files are read by
:mod:`ecglens.core.io`; images and PDFs are digitized page by page by :mod:`ecglens.digitize`.
This application-level module is what keeps :mod:`ecglens.analysis` and
:mod:`ecglens.classify` free of any import of the digitizer.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ecglens.core.errors import InputError
from ecglens.core.record import ECGRecord

log = logging.getLogger(__name__)

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


DEFAULT_WINDOW_S = 300.0
"""A signal file is read from ``start_s`` for at most this long unless asked otherwise:
enough for any 12-lead analysis (a standard record is 10 s), and a one-hour Holter CSV then
needs ~0.1 GB instead of ~3 GB."""
MAX_WINDOW_S = 3600.0
"""Longer windows are refused (memory grows with the window: ~1 GB for an hour at 500 Hz)."""


def iter_inputs(path: str | Path, page: int | None = None, start_s: float = 0.0,
                window_s: float = DEFAULT_WINDOW_S, upright: bool = False
                ) -> Iterator[LoadedInput]:
    """Yield the records of ``path``: one for a signal file, one per page of an image/PDF.

    Pages are read one at a time (memory does not grow with the page count). ``page``
    (1-based) reads only that page of a multi-page input. A signal file is read from
    ``start_s`` for at most ``window_s`` seconds (a warning is logged when the recording is
    longer).

    Raises
    ------
    InputError
        Naming the file: missing, unreadable, not an ECG, or ``page`` beyond the last page.
    """
    p = Path(path)
    if not is_paper(p):
        if page not in (None, 1):
            raise InputError(f"--page {page}: a signal record has one page", p)
        from ecglens.core.io import Window, read_record

        if not 0 < window_s <= MAX_WINDOW_S:
            raise InputError(f"window of {window_s:g} s: at most {MAX_WINDOW_S:g} s are read at "
                             "once (use --start to read another part)", p)
        record = read_record(p, window=Window(max(0.0, start_s), window_s))
        total_s, shown = record.provenance.get("total_s"), record.provenance.get("window_s")
        if total_s is not None and shown is not None and shown[1] - shown[0] < total_s - 1e-9:
            log.warning("%s: the recording is %.0f s long; read %.0f-%.0f s (--start and "
                        "--seconds choose another part)", p, total_s, shown[0], shown[1])
        yield LoadedInput(record, str(p), None, 1)
        return
    from ecglens.digitize.pipeline import iter_digitize_file

    for result in iter_digitize_file(p, pages=None if page is None else (page,),
                                     upright=upright):
        yield LoadedInput(result.record, str(p), result.page_index + 1, result.n_pages, result)


def load_inputs(path: str | Path, page: int | None = None, start_s: float = 0.0,
                window_s: float = DEFAULT_WINDOW_S) -> list[LoadedInput]:
    """Every record of ``path`` as a list (see :func:`iter_inputs`)."""
    return list(iter_inputs(path, page, start_s, window_s))


__all__ = ["IMAGE_SUFFIXES", "LoadedInput", "is_paper", "iter_inputs", "load_inputs"]
