"""Batches of paper ECGs that never lose, overwrite or half-write: names, manifest, resume.

* **Names**: every output stem is a safe WFDB record name derived from the input
  (:func:`safe_stem`: ASCII letters, digits, ``_`` and ``-``); inputs whose stems collide
  (``A/page.jpg`` and ``B/page.png``) get their folder's name in front (:func:`plan_stems`).
  The mapping is kept in each page's JSON (``input``, ``output_stem``) and in the manifest.
* **Atomic outputs**: each page's files are written to a temporary folder and moved into place
  with the header last (:func:`ecglens.digitize.pipeline.write_outputs`); an existing output is
  never replaced unless ``overwrite`` is asked for.
* **Manifest**: ``manifest.csv`` in the output folder gets one row per page as soon as the page
  is done (input, page, n_pages, output stem, status, reason, seconds); the last row of a page
  is its state. ``resume`` skips the pages whose last row is ``ok`` and whose header exists.
* **Memory**: pages are rasterised and read one at a time.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import re
import time
import traceback
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ecglens.core.errors import EcglensError, InputError

log = logging.getLogger(__name__)

INPUT_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pdf", ".gif",
                            ".webp"})
"""Files a folder is expanded to."""
MANIFEST_NAME = "manifest.csv"
MANIFEST_FIELDS = ("input", "page", "n_pages", "output_stem", "status", "reason", "seconds")
MAX_STEM_CHARS = 80
"""Output stems are cut to this length (file systems allow 255 bytes; the suffixes
``_p<N>_overlay.png`` must still fit)."""

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def safe_stem(name: str) -> str:
    """A WFDB-safe record name for ``name``: accents dropped, other characters → ``_``.

    ``"Müller ECG (2).v2"`` → ``"Muller_ECG_2_v2"``; an empty result becomes ``"record"``.
    """
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    stem = _UNSAFE.sub("_", ascii_name).strip("_-")
    stem = re.sub(r"_+", "_", stem)[:MAX_STEM_CHARS].strip("_-")
    return stem or "record"


def expand_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Files as given, folders expanded (sorted, recursively) to their image/PDF files."""
    out: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*")
                           if p.is_file() and p.suffix.lower() in INPUT_SUFFIXES
                           and not any(part.startswith(".") for part in p.relative_to(path).parts))
            if not files:
                log.warning("%s: folder holds no image or PDF files", path)
            out.extend(files)
        else:
            out.append(path)
    return out


def plan_stems(files: Sequence[Path]) -> dict[Path, str]:
    """One distinct output stem per input file (see the module docstring).

    Stems that collide get their parent folders' names in front, one level at a time; any
    left colliding (the same file given twice) get ``_2``, ``_3`` … in input order.
    """
    unique = list(dict.fromkeys(files))
    depth = {f: 0 for f in unique}

    def stem_of(f: Path) -> str:
        parents = [p.name for p in f.resolve().parents][:depth[f]]
        return safe_stem("_".join([*reversed(parents), f.stem]))

    for _ in range(8):
        groups: dict[str, list[Path]] = {}
        for f in unique:
            groups.setdefault(stem_of(f).lower(), []).append(f)
        clashing = [f for group in groups.values() if len(group) > 1 for f in group]
        if not clashing:
            break
        for f in clashing:
            depth[f] += 1
    stems: dict[Path, str] = {}
    taken: set[str] = set()
    for f in unique:
        stem, k = stem_of(f), 2
        while stem.lower() in taken:
            stem, k = f"{stem_of(f)}_{k}", k + 1
        taken.add(stem.lower())
        stems[f] = stem
    return stems


def page_stem(file_stem: str, page: int, n_pages: int) -> str:
    """``<stem>`` for a one-page file, ``<stem>_p<N>`` (1-based) for page N of several."""
    return f"{file_stem}_p{page}" if n_pages > 1 else file_stem


@dataclasses.dataclass(frozen=True)
class PageOutcome:
    """What happened to one page (one manifest row)."""

    input: str
    page: int
    n_pages: int
    output_stem: str
    status: str          # "ok", "failed" or "skipped" (complete before, with resume)
    reason: str = ""
    seconds: float = 0.0
    summary: dict[str, Any] | None = None
    quality: dict[str, str] = dataclasses.field(default_factory=dict)
    """Extra manifest columns (``ecglens batch``: layout, gain, Einthoven residual ...)."""

    def row(self) -> dict[str, str]:
        """The manifest row (strings)."""
        return {"input": self.input, "page": str(self.page), "n_pages": str(self.n_pages),
                "output_stem": self.output_stem, "status": self.status,
                "reason": self.reason.replace("\n", " "), "seconds": f"{self.seconds:.3f}",
                **self.quality}


class Manifest:
    """``manifest.csv`` of an output folder: read at start, one row appended per page.

    ``fields`` are the columns of a new manifest; rows appended to an existing one keep that
    file's own columns (a column it lacks is left out, one a row lacks is left empty).
    """

    def __init__(self, outdir: Path, fields: Sequence[str] = MANIFEST_FIELDS) -> None:
        self.path = outdir / MANIFEST_NAME
        self.fields: tuple[str, ...] = tuple(fields)
        self.last: dict[tuple[str, int], dict[str, str]] = {}
        self._n_pages: dict[str, dict[int, int]] = {}   # input → page → n_pages (last rows)
        if self.path.is_file():
            with open(self.path, newline="", encoding="utf-8") as fh:
                reader = csv.DictReader(fh)
                if reader.fieldnames:
                    self.fields = tuple(reader.fieldnames)
                for row in reader:
                    try:   # a row cut by a crash is ignored
                        self._remember(row["input"], int(row["page"]), row)
                    except (KeyError, TypeError, ValueError):
                        continue

    def _remember(self, key: str, page: int, row: dict[str, str]) -> None:
        self.last[(key, page)] = row
        pages = self._n_pages.setdefault(key, {})
        n_pages = str(row.get("n_pages", ""))
        if n_pages.isdigit():
            pages[page] = int(n_pages)
        else:
            pages.pop(page, None)

    def is_complete(self, input_key: str, page: int, outdir: Path) -> bool:
        """The page's last row says ``ok`` and its record header exists."""
        row = self.last.get((input_key, page))
        return bool(row and row.get("status") == "ok"
                    and (outdir / f"{row.get('output_stem')}.hea").is_file())

    def pages_known(self, input_key: str) -> int | None:
        """The page count recorded for an input, if any."""
        counts = self._n_pages.get(input_key)
        return max(counts.values()) if counts else None

    def append(self, outcome: PageOutcome) -> None:
        """Add one row and flush it to disk (a crash loses at most the row being written)."""
        new = not self.path.is_file() or self.path.stat().st_size == 0
        cut = not new and not _ends_with_newline(self.path)
        with open(self.path, "a", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=self.fields, restval="",
                                    extrasaction="ignore")
            if new:
                writer.writeheader()
            if cut:            # the row a crash cut short stays alone on its line
                fh.write("\r\n")
            writer.writerow(outcome.row())
            fh.flush()
        self._remember(outcome.input, outcome.page, outcome.row())


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as fh:
        fh.seek(-1, 2)
        return fh.read(1) == b"\n"


@dataclasses.dataclass(frozen=True)
class BatchOptions:
    """How pages are read and written."""

    dpi: float | None = None
    overlay: bool = True
    overwrite: bool = False
    resume: bool = False
    debug: bool = False
    upright: bool = False


def input_key(path: Path) -> str:
    """The manifest's key of an input: its absolute path."""
    return str(path.resolve())


def digitize_pages(path: Path, file_stem: str, outdir: Path, options: BatchOptions,
                   manifest: Manifest) -> Iterator[PageOutcome]:
    """Read and write each page of one input, one at a time; yields each page's outcome.

    A file that cannot be opened yields one ``failed`` outcome for page 1; a page that cannot
    be read or written yields its own ``failed`` outcome and the next page is read.
    """
    from ecglens.digitize.load import count_pages

    key = input_key(path)
    t0 = time.perf_counter()
    try:
        known = manifest.pages_known(key) if options.resume else None
        complete = bool(known) and all(manifest.is_complete(key, k, outdir)
                                       for k in range(1, (known or 0) + 1))
        n_pages = known if complete and known else count_pages(path)
    except EcglensError as exc:
        yield _failed(key, 1, 1, file_stem, exc, t0, options)
        return
    todo = []
    for k in range(1, n_pages + 1):
        if options.resume and manifest.is_complete(key, k, outdir):
            yield PageOutcome(key, k, n_pages, page_stem(file_stem, k, n_pages), "skipped",
                              "complete before (resume)")
        else:
            todo.append(k)
    yield from _read_and_write(path, key, file_stem, n_pages, tuple(todo), outdir, options)


def _read_and_write(path: Path, key: str, file_stem: str, n_pages: int, todo: tuple[int, ...],
                    outdir: Path, options: BatchOptions) -> Iterator[PageOutcome]:
    """Pages ``todo`` of ``path``: rasterise, digitize, write atomically (one page in memory)."""
    from ecglens.digitize.load import iter_pages
    from ecglens.digitize.pipeline import digitize_image

    remaining = list(todo)
    while remaining:
        pages = iter_pages(path, dpi=options.dpi, pages=tuple(remaining))
        while remaining:
            k = remaining.pop(0)
            stem = page_stem(file_stem, k, n_pages)
            t0 = time.perf_counter()
            try:
                page = next(pages)
                result = digitize_image(page.image, source=str(path),
                                        page_index=page.page_index, n_pages=page.n_pages,
                                        dpi_prior=page.dpi_prior, upright=options.upright)
                del page
                write_page(result, outdir, stem, options, str(path), k)
            except StopIteration:
                return
            except PAGE_ERRORS as exc:
                yield _failed(key, k, n_pages, stem, exc, t0, options)
                if _page_source_broken(exc):
                    break        # the page reader stopped: start it again after this page
                continue
            yield PageOutcome(key, k, n_pages, stem, "ok", "; ".join(result.warnings)[:500],
                              time.perf_counter() - t0, result.summary())


def digitize_page(path: Path, page: int, options: BatchOptions, source: str | None = None
                  ) -> Any:
    """Rasterise and read page ``page`` (1-based) of ``path`` alone: one task of a
    distributed batch (:mod:`ecglens.app.archive`). Returns the ``DigitizeResult``.

    ``source`` names the page in its outputs (default: ``path``).

    Raises
    ------
    InputError
        The file cannot be opened or has no such page.
    DigitizeError
        The page cannot be read as an ECG.
    """
    from ecglens.digitize.load import iter_pages
    from ecglens.digitize.pipeline import digitize_image

    image = next(iter(iter_pages(path, dpi=options.dpi, pages=(page,))), None)
    if image is None:
        raise InputError(f"page {page} asked for, but the file has fewer pages", path)
    return digitize_image(image.image, source=source or str(path), page_index=image.page_index,
                          n_pages=image.n_pages, dpi_prior=image.dpi_prior,
                          upright=options.upright)


def write_page(result: Any, outdir: Path, stem: str, options: BatchOptions, input_name: str,
               page: int) -> None:
    """Write one page's record, JSON and overlay atomically (header last), naming its input.

    Raises
    ------
    OutputError
        As :func:`ecglens.digitize.pipeline.write_outputs` (an output exists, no overwrite).
    """
    from ecglens.digitize.pipeline import write_outputs

    write_outputs(result, outdir, overlay=options.overlay, stem=stem,
                  overwrite=options.overwrite,
                  extra_json={"input": input_name, "input_page": page})


def page_failed(key: str, page: int, n_pages: int, stem: str, exc: BaseException, t0: float,
                options: BatchOptions) -> PageOutcome:
    """The ``failed`` outcome of a page: the error's first line (traceback logged with
    ``debug``)."""
    return _failed(key, page, n_pages, stem, exc, t0, options)


PAGE_ERRORS = (EcglensError, OSError, ValueError, MemoryError, RuntimeError)
"""Errors that fail one page and let the batch go on (anything else, e.g. a bug in a
library we call, too: see :func:`_failed`)."""


def _page_source_broken(exc: BaseException) -> bool:
    """An error raised while loading the page (the page iterator is then closed)."""
    return isinstance(exc, InputError)


def _failed(key: str, page: int, n_pages: int, stem: str, exc: BaseException, t0: float,
            options: BatchOptions) -> PageOutcome:
    """The ``failed`` outcome of a page; with ``debug`` the traceback goes to the log."""
    # not one of ours (a bug, a resource problem): named by its type; the batch goes on
    reason = exc.reason if isinstance(exc, EcglensError) else f"{type(exc).__name__}: {exc}"
    if options.debug:
        log.error("%s page %d:\n%s", key, page,
                  "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    first_line = reason.splitlines()[0] if reason.strip() else type(exc).__name__
    return PageOutcome(key, page, n_pages, stem, "failed", first_line,
                       time.perf_counter() - t0)


@dataclasses.dataclass(frozen=True)
class BatchSummary:
    """Counts of a batch run."""

    ok: int
    failed: int
    skipped: int
    interrupted: bool
    seconds: float


def run_batch(files: Sequence[Path], outdir: Path, options: BatchOptions,
              on_page: Callable[[int, int, Path, PageOutcome], None] | None = None
              ) -> BatchSummary:
    """Digitize every file into ``outdir`` with a manifest; see the module docstring.

    ``on_page(i, n_files, path, outcome)`` is called after every page (progress, printing).
    Ctrl-C stops after cleaning the page in progress; the summary says it was interrupted.

    Raises
    ------
    OutputError
        ``outdir`` is a file or cannot be created.
    """
    from ecglens.core.errors import OutputError

    if outdir.exists() and not outdir.is_dir():
        raise OutputError("output folder is a file", outdir)
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output folder ({exc.strerror or exc})",
                          outdir) from exc
    manifest = Manifest(outdir)
    stems = plan_stems(files)
    counts = {"ok": 0, "failed": 0, "skipped": 0}
    t_start = time.perf_counter()
    interrupted = False
    try:
        for i, path in enumerate(stems, start=1):
            for outcome in digitize_pages(path, stems[path], outdir, options, manifest):
                if outcome.status != "skipped":
                    manifest.append(outcome)
                counts[outcome.status] += 1
                if on_page is not None:
                    on_page(i, len(stems), path, outcome)
    except KeyboardInterrupt:
        interrupted = True
    return BatchSummary(counts["ok"], counts["failed"], counts["skipped"], interrupted,
                        time.perf_counter() - t_start)


__all__ = ["MANIFEST_NAME", "BatchOptions", "BatchSummary", "Manifest", "PageOutcome",
           "digitize_page", "digitize_pages", "expand_inputs", "page_failed", "page_stem",
           "plan_stems", "run_batch", "safe_stem", "write_page"]
