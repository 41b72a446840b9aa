"""The one exception family of ecglens, and its warning class.

Every error a user can cause (missing file, corrupt record, unreadable image, unknown
layout) is an :class:`EcglensError`; the CLI turns it into a one-line message and exit
code 1. Subclasses also derive from the matching built-in so ``except ValueError`` works.
"""

from __future__ import annotations

from pathlib import Path


class EcglensError(Exception):
    """Base of every error ecglens raises on purpose.

    Parameters
    ----------
    message
        What went wrong, in one line.
    path
        The file the error is about, if any; it is put in front of the message.
    """

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = None if path is None else str(path)
        self.reason = message
        super().__init__(f"{self.path}: {message}" if self.path else message)


class InputError(EcglensError, ValueError):
    """A file is missing, unreadable, corrupt, or of an unknown format."""


class RecordError(EcglensError, ValueError):
    """An ECG record is malformed (shape, leads, sampling rate)."""


class DigitizeError(EcglensError, RuntimeError):
    """A page could not be read as an ECG (no grid, no traces, not an ECG)."""


class RowsError(DigitizeError):
    """No trace rows were found on a page, or their number fits no layout template."""


class AnalysisError(EcglensError, ValueError):
    """A signal cannot be measured (flat, too short, all NaN)."""


class ModelError(EcglensError, RuntimeError):
    """A classifier's weights are missing or do not match the model."""


class OutputError(EcglensError, OSError):
    """An output cannot be written: the folder is a file or not writable, or the output exists
    and overwriting was not asked for."""


class EcglensWarning(RuntimeWarning):
    """Something was read or measured with reduced confidence."""
