"""Tesseract OCR with the model kept loaded between pages, and pytesseract as the fallback.

pytesseract starts the ``tesseract`` program for every call, and that program loads its
English model each time: on the benchmark machine ~0.21 s for a page's one batched call, of
which recognition is ~0.06 s. Here a small worker process (``digitize/_ocr_worker.py``,
standard library only) loads tesseract's C API and the model once and reads every later
image sent to it over a pipe, so a page pays for the recognition alone. Same engine, same
settings, same pixels: the same words (checked in ``tests/test_digitize_stages.py``).

The worker runs tesseract on one OpenMP thread (``OMP_THREAD_LIMIT=1``; on a few short text
lines its threads cost more than they give: 0.06 s against 0.14 s on 2 cores). A process of
its own keeps that limit away from the caller's own OpenMP users (torch). Where the worker
cannot start (no ``libtesseract.so.5``: another platform or version), pytesseract is used
as before; a worker that dies is started again on the next call. A worker that gives no
answer within ``OCR_TIMEOUT_S`` is stopped and the page's OCR fails with ``TimeoutError``
(the page is then read without labels, with a warning); the next page starts a new worker.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import select
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

USE_WORKER = True
"""Read through the kept-loaded worker where it starts (False: always pytesseract)."""

WORKER_SCRIPT = Path(__file__).with_name("_ocr_worker.py")

OCR_TIMEOUT_S = 60.0
"""Longest wait (s) for tesseract's answer on one page (a page's batched call takes
~0.06 s; a hung engine must not stall a batch)."""


class _Worker:
    """One running worker process (see ``digitize/_ocr_worker.py``)."""

    def __init__(self) -> None:
        env = dict(os.environ)
        env.setdefault("OMP_THREAD_LIMIT", "1")
        self.pid_owner = os.getpid()
        # unbuffered: every read below waits on the pipe itself (see ``_read_exact``)
        self._proc = subprocess.Popen([sys.executable, str(WORKER_SCRIPT)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, env=env, bufsize=0)
        try:
            ok, text = self._read_answer()
        except OSError:
            self.kill()
            raise
        if not ok:
            self.close()
            raise OSError(text or "OCR worker did not start")
        self.version = text

    def _read_exact(self, n_bytes: int, deadline: float) -> bytes:
        """``n_bytes`` from the worker's stdout; ``TimeoutError`` after ``deadline``
        (``time.monotonic()``), ``OSError`` where the worker ended."""
        stdout = self._proc.stdout
        assert stdout is not None
        fd = stdout.fileno()
        chunks = []
        left = n_bytes
        while left > 0:
            wait = deadline - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(wait, 0.0))
            if not ready:
                raise TimeoutError(f"tesseract gave no answer in {OCR_TIMEOUT_S:g} s")
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                raise OSError("OCR worker ended")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def _read_answer(self) -> tuple[bool, str]:
        deadline = time.monotonic() + OCR_TIMEOUT_S
        head = self._read_exact(9, deadline)
        (length,) = struct.unpack("<Q", head[1:])
        return head[0] == 0, self._read_exact(length, deadline).decode("utf-8", "replace")

    def tsv(self, gray: np.ndarray, psm: int, variables: dict[str, str]) -> str:
        image = np.ascontiguousarray(gray, dtype=np.uint8)
        height, width = image.shape
        header = json.dumps({"psm": psm, "variables": variables, "width": width,
                             "height": height}).encode() + b"\n"
        stdin = self._proc.stdin
        assert stdin is not None
        try:
            stdin.write(header)
            stdin.write(image.tobytes())
            stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise OSError("OCR worker ended") from exc
        ok, text = self._read_answer()
        if not ok:
            raise RuntimeError(text)
        return text

    def alive(self) -> bool:
        return self._proc.poll() is None

    def kill(self) -> None:
        """Stop the worker now (one that hangs does not read its closed stdin)."""
        with contextlib.suppress(Exception):
            self._proc.kill()
            self._proc.wait(timeout=2)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self._proc.stdin:
                self._proc.stdin.close()
            self._proc.wait(timeout=2)
        with contextlib.suppress(Exception):
            self._proc.kill()


_worker: _Worker | None = None
_worker_failed = False
_lock = threading.Lock()


def _close_worker() -> None:
    global _worker
    if _worker is not None and _worker.pid_owner == os.getpid():
        _worker.close()
    _worker = None


atexit.register(_close_worker)


def _get_worker() -> _Worker | None:
    """This process's worker, started on first use (again after it died, and anew in a
    forked child, which must not share its parent's pipes); None where it cannot start."""
    global _worker, _worker_failed
    if not USE_WORKER or _worker_failed:
        return None
    if _worker is not None and (_worker.pid_owner != os.getpid() or not _worker.alive()):
        if _worker.pid_owner == os.getpid():
            _worker.close()
        _worker = None
    if _worker is None:
        try:
            _worker = _Worker()
        except OSError as exc:
            _worker_failed = True
            log.info("tesseract worker not usable (%s); OCR through pytesseract", exc)
    return _worker


def engine_name(start: bool = False) -> str:
    """Which OCR path this process uses, with tesseract's version: the running worker's, or
    the ``tesseract`` program's (a worker is started for the question only with ``start``)."""
    with _lock:
        worker = _get_worker() if start else _worker
    if worker is not None and worker.pid_owner == os.getpid():
        return f"tesseract {worker.version} (kept loaded)"
    import pytesseract

    return f"tesseract {pytesseract.get_tesseract_version()} (pytesseract)"


@contextlib.contextmanager
def _one_openmp_thread() -> Iterator[None]:
    """``OMP_THREAD_LIMIT=1`` for a pytesseract call (the program reads it when it starts);
    a value the user set is kept."""
    if "OMP_THREAD_LIMIT" in os.environ:
        yield
        return
    os.environ["OMP_THREAD_LIMIT"] = "1"
    try:
        yield
    finally:
        os.environ.pop("OMP_THREAD_LIMIT", None)


_TSV_COLUMNS = ("level", "page_num", "block_num", "par_num", "line_num", "word_num", "left",
                "top", "width", "height", "conf", "text")


def _parse_tsv(text: str) -> dict[str, list[Any]]:
    """Tesseract's TSV rows as pytesseract's ``image_to_data`` DICT (numbers truncated to
    whole numbers, as pytesseract gives them)."""
    out: dict[str, list[Any]] = {name: [] for name in _TSV_COLUMNS}
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) < len(_TSV_COLUMNS) - 1 or not fields[0].isdigit():
            continue
        fields += [""] * (len(_TSV_COLUMNS) - len(fields))
        for name, value in zip(_TSV_COLUMNS, fields, strict=False):
            out[name].append(value if name == "text" else int(float(value)))
    return out


def image_to_data(gray: np.ndarray, psm: int = 6, variables: dict[str, str] | None = None
                  ) -> dict[str, list[Any]]:
    """Words of an 8-bit grey image as pytesseract's ``image_to_data`` DICT gives them
    (``text``, ``left``, ``top``, ``width``, ``height``, ``conf`` …, one entry per layout
    element). Raises where neither the worker nor the ``tesseract`` program can run."""
    variables = {k: str(v) for k, v in (variables or {}).items()}
    with _lock:
        for _attempt in range(2):
            worker = _get_worker()
            if worker is None:
                break
            try:
                return _parse_tsv(worker.tsv(gray, psm, variables))
            except TimeoutError:     # hung: stop it (the next page starts another)
                log.warning("tesseract worker gave no answer in %g s; stopped", OCR_TIMEOUT_S)
                worker.kill()
                _close_worker()
                raise
            except OSError as exc:   # the worker died: start another once
                log.info("tesseract worker ended (%s)", exc)
                _close_worker()
    import pytesseract

    config = f"--psm {psm} " + " ".join(f"-c {k}={v}" for k, v in variables.items())
    with _one_openmp_thread():
        return pytesseract.image_to_data(gray, config=config.strip(), timeout=OCR_TIMEOUT_S,
                                         output_type=pytesseract.Output.DICT)
