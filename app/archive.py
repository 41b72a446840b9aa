"""Archive mode: tens of thousands of paper ECGs digitized as Dask tasks, resumable.

``ecglens batch SRC... -o OUT`` (:mod:`ecglens.app.archive_cli`) is :func:`run_archive`:

* **Inputs**: folders (walked recursively, hidden entries skipped), files and glob patterns;
  ``.zip`` files given as a source, or found in folders with ``zip_members``, are read member by
  member (images in memory-backed scratch space, never extracted into the tree). The output tree
  mirrors the input tree below the sources' common folder (``OUT/<folder>/<safe stem>.hea``; a
  zip is a folder named like the zip), so the same name in two folders never collides; names
  that collide in one folder (``page.jpg``, ``page.png``) keep their suffix (``page_jpg``).
* **Tasks**: each multi-page file's page count is a task, each (file, page) is a task
  (:func:`page_task`): rasterise that page alone, digitize it, with ``analyze``/``classify``
  measure and classify it (``<stem>_analysis.json``, ``<stem>_classify.json``, written
  atomically before the record), and write the record atomically, header last
  (:func:`ecglens.app.batch.write_page`). Tasks are submitted a window at a time, so the
  scheduler never holds the whole archive.
* **Cluster**: a :class:`distributed.LocalCluster` of ``workers`` single-threaded processes,
  or an existing cluster at ``scheduler`` (``dask scheduler`` / ``dask worker`` on machines
  that mount the inputs and ``OUT`` at the same paths).
* **Manifest**: only this (client) process writes ``OUT/manifest.csv``
  (:class:`ecglens.app.batch.Manifest`, :data:`ARCHIVE_FIELDS`: input, page, output stem,
  status, reason, seconds and quality figures that need no ground truth), one row as each page
  completes; ``manifest.parquet`` (one row per page, its last state) when pyarrow is installed.
* **Resume**: a re-run skips pages whose last row is ``ok`` and whose files exist, skips pages
  that failed unless ``retry_failed``, and adopts pages a stopped run wrote without a row (their
  JSON names the same input and page). Nothing is replaced without ``overwrite``. Ctrl-C
  cancels the tasks, closes the cluster and removes half-written staging files.
* **Index**: :func:`write_index` gathers every record's findings into one CSV.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import glob
import json
import logging
import math
import os
import re
import shutil
import socket
import tempfile
import time
import warnings
import zipfile
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ecglens.app.batch import (
    INPUT_SUFFIXES,
    MANIFEST_FIELDS,
    MANIFEST_NAME,
    BatchOptions,
    Manifest,
    PageOutcome,
    digitize_page,
    input_key,
    page_failed,
    page_stem,
    safe_stem,
    write_page,
)
from ecglens.core.errors import EcglensError, InputError, OutputError

log = logging.getLogger(__name__)

QUALITY_FIELDS = ("layout", "gain_mm_mv", "speed_mm_s", "einthoven_limb", "einthoven_augmented",
                  "trace_confidence", "lead_confidence", "leads_read")
"""Manifest columns that judge a read without ground truth: the layout, gain and speed read,
the Einthoven residuals (II = I + III, aVR + aVL + aVF = 0; relative rms, 0 is perfect), the
mean trace confidence of the rows and of the leads read, and the number of leads read."""
ARCHIVE_FIELDS = (*MANIFEST_FIELDS, *QUALITY_FIELDS)
"""Columns of the archive's ``manifest.csv``."""
MULTI_PAGE_SUFFIXES = frozenset({".pdf", ".tif", ".tiff", ".gif", ".webp"})
"""Files whose pages are counted first (a task each); any other image is one page."""
ZIP_SUFFIX = ".zip"
ZIP_KEY_SEPARATOR = "::"
"""A zip member's manifest key is ``<zip path>::<member name>``."""
MAX_MEMBER_BYTES = 1 << 30
"""A zip member larger than this (uncompressed) is refused: a 1 GB scan is not a page, and a
zip bomb must not fill the scratch space."""
IN_FLIGHT_PER_THREAD = 2
"""Tasks submitted per worker thread: one running and one queued keeps every worker busy while
the client records results, without handing the scheduler the whole archive."""
MIN_IN_FLIGHT = 4
"""Tasks kept submitted when the cluster reports no worker thread yet (workers still joining)."""
THREADS_REFRESH_S = 10.0
"""How often the client asks the scheduler how many worker threads there are."""
CONNECT_TIMEOUT_S = 30.0
"""How long to wait for an existing scheduler to answer."""
SCRATCH_DIRS = ("/dev/shm",)
"""Memory-backed folders preferred for a zip member that must be a file for a moment (PDFs
for poppler); the system temporary folder otherwise."""
LOCK_NAME = ".ecglens-batch.lock"
"""Marks an output folder that a run is writing (one run per output folder at a time)."""
PARTIAL_SUFFIX = ".partial"
"""Staging files and folders end so (``write_outputs`` and :func:`_write_json_atomic`)."""
ANALYSIS_SUFFIX = "_analysis.json"
CLASSIFY_SUFFIX = "_classify.json"
_PAGE_SUFFIX = re.compile(r"^(.+)_p\d+$")
_GLOB_CHARS = re.compile(r"[*?\[]")


class ClusterError(EcglensError, RuntimeError):
    """The Dask cluster cannot be started or reached, or its workers cannot see the files."""


# ---------------------------------------------------------------------------- inputs
@dataclasses.dataclass(frozen=True)
class SourceFile:
    """One input file (or zip member) and where its pages go.

    Attributes
    ----------
    key
        Manifest key: the absolute path, ``<zip>::<member>`` for a zip member.
    path
        The file on disk (the zip for a member).
    member
        The zip member's name, or None.
    rel_folder
        Output folder below ``OUT`` (POSIX, ``""`` for ``OUT`` itself).
    stem
        Safe output stem; pages of a multi-page file add ``_p<N>``.
    """

    key: str
    path: str
    member: str | None
    rel_folder: str
    stem: str

    @property
    def multi_page(self) -> bool:
        """Its pages must be counted (PDF, TIFF, GIF, WebP)."""
        return Path(self.member or self.path).suffix.lower() in MULTI_PAGE_SUFFIXES

    def output_stem(self, page: int, n_pages: int) -> str:
        """The page's output path below ``OUT`` without suffix (the manifest's output stem)."""
        name = page_stem(self.stem, page, n_pages)
        return f"{self.rel_folder}/{name}" if self.rel_folder else name


class _FolderStems:
    """Distinct stems in one output folder: names that collide keep their suffix
    (``page_jpg``), then get ``_2``, ``_3``; ``rec_p1.png`` beside ``rec.pdf`` too."""

    def __init__(self) -> None:
        self.taken: set[str] = set()
        self.multi: set[str] = set()

    def _clashes(self, stem: str, multi: bool) -> bool:
        low = stem.lower()
        page = _PAGE_SUFFIX.match(low)
        return (low in self.taken or bool(page and page.group(1) in self.multi)
                or (multi and any(_PAGE_SUFFIX.match(t) and t.rsplit("_p", 1)[0] == low
                                  for t in self.taken)))

    def plan(self, name: str, others: Counter[str], multi: bool) -> str:
        """The stem of file ``name``; ``others`` counts the lower-case stems of its folder."""
        stem = safe_stem(Path(name).stem)
        page = _PAGE_SUFFIX.match(stem.lower())
        if others[stem.lower()] > 1 or (page and page.group(1) in others):
            stem = safe_stem(name)
        base, k = stem, 2
        while self._clashes(stem, multi):
            stem, k = f"{base}_{k}", k + 1
        self.taken.add(stem.lower())
        if multi:
            self.multi.add(stem.lower())
        return stem


def _is_input(name: str, zip_members: bool) -> bool:
    suffix = Path(name).suffix.lower()
    return suffix in INPUT_SUFFIXES or (zip_members and suffix == ZIP_SUFFIX)


def _root_of(source: str) -> tuple[Path, list[Path]]:
    """The folder a source's outputs are placed relative to, and the paths it names."""
    if _GLOB_CHARS.search(source):
        parts = Path(source).parts
        fixed = list(parts[:next(i for i, p in enumerate(parts) if _GLOB_CHARS.search(p))])
        root = Path(os.path.abspath(Path(*fixed) if fixed else Path.cwd()))
        matches = sorted(Path(os.path.abspath(m)) for m in glob.iglob(source, recursive=True))
        if not matches:
            raise InputError("no file matches this pattern", source)
        return root, matches
    path = Path(os.path.abspath(source))
    if not path.exists():
        raise InputError("no such file or folder", source)
    return (path if path.is_dir() else path.parent), [path]


def walk_sources(sources: Sequence[str | Path], outdir: str | Path, zip_members: bool = False
                 ) -> list[SourceFile]:
    """Every input file (and zip member) of ``sources``, in a stable order, with its output
    folder (the input tree below the sources' common folder) and a distinct stem.

    Folders are walked recursively (hidden files and folders, and ``outdir`` itself, skipped);
    ``.zip`` files are read when given as a source, or with ``zip_members`` also when found.
    A file reached twice is listed once.

    Raises
    ------
    InputError
        A source does not exist, or a pattern matches nothing.
    """
    out = Path(os.path.abspath(outdir))
    named = [_root_of(str(s)) for s in sources]
    roots = [root for root, _ in named]
    common = Path(os.path.commonpath([str(r) for r in roots])) if roots else Path.cwd()
    files: list[SourceFile] = []
    seen: set[str] = set()
    folders: dict[str, _FolderStems] = {}

    def add_folder(folder: Path, names: Sequence[str]) -> None:
        rel = folder.relative_to(common).as_posix() if folder != common else ""
        stems = folders.setdefault(rel, _FolderStems())
        others = Counter(safe_stem(Path(n).stem).lower() for n in names)
        for name in names:
            path = folder / name
            if path.suffix.lower() == ZIP_SUFFIX:
                files.extend(_zip_members(path, f"{rel}/{name}" if rel else name, seen))
                continue
            key = input_key(path)
            if key in seen:
                continue
            seen.add(key)
            stem = stems.plan(name, others, Path(name).suffix.lower() in MULTI_PAGE_SUFFIXES)
            files.append(SourceFile(key, str(path), None, rel, stem))

    for _, paths in named:
        for path in paths:
            if path == out or out in path.parents:
                log.warning("%s: inside the output folder, skipped", path)
                continue
            if path.is_dir():
                for folder, dirs, names in os.walk(path):
                    here = Path(folder)
                    dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                                     and (here / d) != out)
                    add_folder(here, sorted(n for n in names if not n.startswith(".")
                                            and _is_input(n, zip_members)))
            elif path.is_file():
                add_folder(path.parent, [path.name])
    if not files:
        log.warning("the sources hold no image, PDF or TIFF file")
    return files


def _zip_members(path: Path, rel_folder: str, seen: set[str]) -> list[SourceFile]:
    """A zip's image/PDF members as sources (a zip that cannot be read: one failing source)."""
    key_base = input_key(path)
    try:
        with zipfile.ZipFile(path) as zf:
            names = sorted(i.filename for i in zf.infolist() if not i.is_dir())
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        log.warning("%s: cannot read zip (%s)", path, exc)
        if key_base in seen:
            return []
        seen.add(key_base)
        return [SourceFile(key_base, str(path), "", rel_folder, safe_stem(path.stem))]
    by_folder: dict[str, list[str]] = {}
    for name in names:
        # "a/../b" and absolute names must not climb out of OUT: "." and ".." parts dropped
        parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".", "..")]
        if (not parts or any(p.startswith(".") or p == "__MACOSX" for p in parts)
                or Path(parts[-1]).suffix.lower() not in INPUT_SUFFIXES):
            continue
        folder = "/".join(safe_stem(p) for p in parts[:-1])
        by_folder.setdefault(folder, []).append(name)
    out: list[SourceFile] = []
    for folder, members in by_folder.items():
        stems = _FolderStems()
        leaf = [m.replace("\\", "/").rsplit("/", 1)[-1] for m in members]
        others = Counter(safe_stem(Path(n).stem).lower() for n in leaf)
        rel = "/".join(p for p in (rel_folder, folder) if p)
        for member, name in zip(members, leaf, strict=True):
            key = f"{key_base}{ZIP_KEY_SEPARATOR}{member}"
            if key in seen:
                continue
            seen.add(key)
            multi = Path(name).suffix.lower() in MULTI_PAGE_SUFFIXES
            out.append(SourceFile(key, str(path), member, rel, stems.plan(name, others, multi)))
    return out


# ---------------------------------------------------------------------------- worker side
@dataclasses.dataclass(frozen=True)
class ArchiveOptions:
    """How pages are read, what is added, what is redone."""

    dpi: float | None = None
    overlay: bool = True
    overwrite: bool = False
    retry_failed: bool = False
    analyze: bool = False
    classify: bool = False
    zip_members: bool = False
    debug: bool = False

    @property
    def batch(self) -> BatchOptions:
        """The options of :mod:`ecglens.app.batch` (reading and writing one page)."""
        return BatchOptions(dpi=self.dpi, overlay=self.overlay, overwrite=self.overwrite,
                            debug=self.debug)


@dataclasses.dataclass(frozen=True)
class PageCount:
    """The result of a counting task: pages, or 0 and the reason."""

    n_pages: int
    reason: str = ""
    seconds: float = 0.0


_WORKER_READY = False


def _in_worker_process() -> bool:
    """True in a worker process of its own (a Dask nanny's child), False where tasks run in
    the caller's process (a threaded cluster, as in the tests): process-wide settings are
    changed only in the former."""
    import multiprocessing

    return multiprocessing.current_process().name != "MainProcess"


def _worker_setup(debug: bool) -> None:
    """Once per worker process: one OpenCV thread (the worker process is the unit of
    parallelism), ecglens log warnings kept out of the worker's stderr (each page's JSON has
    them)."""
    global _WORKER_READY
    if _WORKER_READY or not _in_worker_process():
        return
    import cv2

    cv2.setNumThreads(1)
    logging.getLogger("ecglens").setLevel(logging.DEBUG if debug else logging.ERROR)
    _WORKER_READY = True


@contextlib.contextmanager
def _library_warnings_ignored() -> Iterator[None]:
    """Library warnings (NumPy, PIL) silenced in a worker process; left alone in the caller's
    process (``catch_warnings`` is not thread-safe there)."""
    if not _in_worker_process():
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _scratch_dir() -> str:
    for folder in SCRATCH_DIRS:
        if os.path.isdir(folder) and os.access(folder, os.W_OK):
            return folder
    return tempfile.gettempdir()


@contextlib.contextmanager
def _local_file(src: SourceFile) -> Iterator[Path]:
    """The source as a file path: itself, or a zip member copied to memory-backed scratch
    space for the duration (poppler and the page reader need a path)."""
    if src.member is None:
        yield Path(src.path)
        return
    if not src.member:
        raise InputError("cannot read zip (corrupt or not a zip file)", src.path)
    fd, tmp = tempfile.mkstemp(suffix=Path(src.member).suffix, prefix="ecglens-zip-",
                               dir=_scratch_dir())
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with zipfile.ZipFile(src.path) as zf:
                    info = zf.getinfo(src.member)
                    if info.file_size > MAX_MEMBER_BYTES:
                        raise InputError(f"zip member too large ({info.file_size >> 20} MB)")
                    with zf.open(info) as member:
                        shutil.copyfileobj(member, out, 1 << 20)
            except (KeyError, zipfile.BadZipFile, RuntimeError) as exc:  # RuntimeError: encrypted
                raise InputError(f"cannot read zip member ({_first_line(exc)})") from exc
        yield Path(tmp)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def count_task(src: SourceFile, debug: bool = False) -> PageCount:
    """Dask task: the page count of a multi-page source (0 and the reason if unreadable)."""
    from ecglens.digitize.load import count_pages

    t0 = time.perf_counter()
    _worker_setup(debug)
    try:
        with _local_file(src) as path:
            return PageCount(count_pages(path), "", time.perf_counter() - t0)
    except (EcglensError, OSError, ValueError) as exc:
        reason = exc.reason if isinstance(exc, EcglensError) else f"{type(exc).__name__}: {exc}"
        return PageCount(0, reason.splitlines()[0] if reason else type(exc).__name__,
                         time.perf_counter() - t0)


def page_task(src: SourceFile, page: int, n_pages: int, outdir: str, options: ArchiveOptions
              ) -> PageOutcome:
    """Dask task: read, measure, classify and write one page; never raises (a page that
    fails is a ``failed`` outcome with the error's first line)."""
    t0 = time.perf_counter()
    _worker_setup(options.debug)
    rel = src.output_stem(page, n_pages)
    folder = Path(outdir) / src.rel_folder
    name = page_stem(src.stem, page, n_pages)
    try:
        with _library_warnings_ignored():
            fresh = _read_or_adopt(src, page, folder, name, options)
            if fresh is not None:
                _write_findings(fresh.record, fresh, src, page, rel, folder, name, options)
                write_page(fresh, folder, name, options.batch, src.key, page)
            else:
                _complete_findings(src, page, rel, folder, name, options)
            page_json = json.loads((folder / f"{name}.json").read_text())
    except Exception as exc:  # a bug under one page must not stop the archive
        return page_failed(src.key, page, n_pages, rel, exc, t0, options.batch)
    warn = "; ".join(page_json.get("warnings") or [])
    if fresh is None:
        warn = "complete before (outputs adopted)" + (f"; {warn}" if warn else "")
    return PageOutcome(src.key, page, n_pages, rel, "ok", warn[:500], time.perf_counter() - t0,
                       quality=quality_figures(page_json))


def _read_or_adopt(src: SourceFile, page: int, folder: Path, name: str,
                   options: ArchiveOptions) -> Any:
    """The page read now, or None when its record is already there from this very input and
    page (a run stopped before recording it). Refuses to replace anything else."""
    header = folder / f"{name}.hea"
    if not options.overwrite:
        if header.exists():
            try:
                written = json.loads((folder / f"{name}.json").read_text())
            except (OSError, ValueError):
                written = {}
            if written.get("input") == src.key and written.get("input_page") == page:
                return None
            raise OutputError(f"{name}.hea exists, written from another input (use --overwrite "
                              "to replace it)", folder)
        stale = [n for n in (f"{name}.dat", f"{name}.json", f"{name}_overlay.png")
                 if (folder / n).exists()]
        if stale:
            raise OutputError(f"{stale[0]} exists without its header (use --overwrite to "
                              "replace it)", folder)
    with _local_file(src) as path:
        return digitize_page(path, page, options.batch, source=src.key)


def _not_assessable(result: Mapping[str, Any]) -> str:
    """The "not assessable" reason of an analysis or classification dict, or ``""``."""
    text = result.get("not_assessable")
    if isinstance(text, str) and text.strip():
        return text.strip()
    if result.get("measurable") is False or result.get("assessable") is False:
        for key in ("cannot_measure", "reason"):
            value = result.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
        return "no reason given"
    return ""


def _write_findings(record: Any, digitized: Any, src: SourceFile, page: int, rel: str,
                    folder: Path, name: str, options: ArchiveOptions,
                    only_missing: bool = False) -> None:
    """``<name>_analysis.json`` and ``<name>_classify.json`` as asked (a page that is not
    assessable is not classified: its classification JSON says why)."""
    tag = {"input": src.key, "input_page": page, "output_stem": rel}
    reason = ""
    analysis_path = folder / f"{name}{ANALYSIS_SUFFIX}"
    if options.analyze:
        if only_missing and analysis_path.exists():
            reason = _not_assessable(json.loads(analysis_path.read_text()))
        else:
            from ecglens.analysis.report import analyze_record

            try:
                analysis = analyze_record(record).to_dict()
            except EcglensError as exc:
                analysis = {"measurable": False, "cannot_measure": exc.reason}
            reason = _not_assessable(analysis)
            folder.mkdir(parents=True, exist_ok=True)
            _write_json_atomic(analysis_path, {**analysis, **tag})
    classify_path = folder / f"{name}{CLASSIFY_SUFFIX}"
    if options.classify and not (only_missing and classify_path.exists()):
        if reason:
            result: dict[str, Any] = {"source": src.key, "page": page, "assessable": False,
                                      "not_assessable": reason, "probabilities": {}}
        else:
            from ecglens.classify.report import classify_one

            if _in_worker_process():
                import torch

                torch.set_num_threads(1)
            result = classify_one(record, source=src.key, page=page, digitized=digitized)
        folder.mkdir(parents=True, exist_ok=True)
        _write_json_atomic(classify_path, {**result, **tag})


def _complete_findings(src: SourceFile, page: int, rel: str, folder: Path, name: str,
                       options: ArchiveOptions) -> None:
    """An adopted (or earlier) record: add the findings asked for that it lacks."""
    wanted = ([ANALYSIS_SUFFIX] if options.analyze else []) + (
        [CLASSIFY_SUFFIX] if options.classify else [])
    if all((folder / f"{name}{s}").exists() for s in wanted):
        return
    from ecglens.core.io import read_record

    record = read_record(folder / f"{name}.hea")
    _write_findings(record, None, src, page, rel, folder, name, options, only_missing=True)


def _write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    """Write JSON to a staging file beside ``path`` and rename it into place."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=PARTIAL_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(_jsonable(data), fh, indent=1, allow_nan=False)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _jsonable(value: Any) -> Any:
    """NaN/inf → None, NumPy → Python, tuples → lists, recursively (strict JSON)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, str):   # NumPy scalars and arrays
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def quality_figures(page_json: Mapping[str, Any]) -> dict[str, str]:
    """The manifest's :data:`QUALITY_FIELDS` of a page from its ``<stem>.json``."""
    def num(value: Any, digits: int = 3) -> str:
        try:
            x = float(value)
        except (TypeError, ValueError):
            return ""
        return f"{x:.{digits}f}".rstrip("0").rstrip(".") if math.isfinite(x) else ""

    rows = [r.get("trace_confidence") for r in page_json.get("rows") or []]
    rows = [float(c) for c in rows if isinstance(c, int | float)]
    leads = [float(v.get("confidence") or 0.0) for v in (page_json.get("leads") or {}).values()]
    read = [c for c in leads if c > 0]
    einthoven = page_json.get("einthoven") or {}
    return {"layout": str(page_json.get("layout") or ""),
            "gain_mm_mv": num(page_json.get("gain_mm_mv")),
            "speed_mm_s": num(page_json.get("speed_mm_s")),
            "einthoven_limb": num(einthoven.get("limb")),
            "einthoven_augmented": num(einthoven.get("augmented")),
            "trace_confidence": num(sum(rows) / len(rows)) if rows else "",
            "lead_confidence": num(sum(read) / len(read)) if read else "",
            "leads_read": str(len(read))}


def _peak_rss_mb() -> float:
    """This process's peak resident memory (MB)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024.0 / (1024.0 if sys.platform == "darwin" else 1.0)


def _can_write(folder: str) -> bool:
    return os.path.isdir(folder) and os.access(folder, os.W_OK)


# ---------------------------------------------------------------------------- client side
@dataclasses.dataclass(frozen=True)
class ArchiveProgress:
    """Where a run stands (passed to ``on_progress`` after every event)."""

    done: int             # pages finished in any way (ok, failed, skipped)
    ok: int
    failed: int           # failed in this run
    skipped: int          # complete before
    failed_before: int    # failed in an earlier run, not retried
    total: int            # pages known, plus an estimate for files not counted yet
    estimated: bool       # total includes an estimate
    pages_per_s: float    # pages read (ok or failed) per second in this run
    eta_s: float          # NaN until a rate is known


@dataclasses.dataclass(frozen=True)
class ArchiveSummary:
    """What a run did."""

    ok: int
    failed: int
    skipped: int
    failed_before: int
    files: int
    interrupted: bool
    seconds: float           # from start to end, cluster start included
    startup_s: float         # walking the inputs and starting/reaching the cluster
    pages_per_s: float       # pages read (ok or failed) per second once the cluster was up
    workers: int
    worker_peak_rss_mb: tuple[float, ...]
    manifest: Path
    parquet: Path | None
    index: Path | None


def format_progress(p: ArchiveProgress) -> str:
    """One progress line: ``pages 120/~4000 [##....] 1.9 pages/s ETA 34:10, 2 failed``."""
    width = 20
    fraction = p.done / p.total if p.total else 0.0
    bar = "#" * int(width * min(1.0, fraction)) + "." * (width - int(width * min(1.0, fraction)))
    eta = "ETA --:--"
    if math.isfinite(p.eta_s):
        minutes, seconds = divmod(int(p.eta_s), 60)
        hours, minutes = divmod(minutes, 60)
        eta = f"ETA {hours}:{minutes:02d}:{seconds:02d}" if hours else \
            f"ETA {minutes}:{seconds:02d}"
    extra = [f"{p.failed} failed"]
    if p.skipped:
        extra.append(f"{p.skipped} done before")
    if p.failed_before:
        extra.append(f"{p.failed_before} failed before")
    return (f"pages {p.done}/{'~' if p.estimated else ''}{p.total} [{bar}] "
            f"{p.pages_per_s:.2f} pages/s {eta}, {', '.join(extra)}")


@contextlib.contextmanager
def _cluster(workers: int | None, scheduler: str | None, debug: bool = False
             ) -> Iterator[tuple[Any, Any]]:
    """A Dask client on a new LocalCluster, or on the cluster at ``scheduler``. The local
    workers' own logs (heartbeats lost while closing...) are shown only with ``debug``."""
    from distributed import Client, LocalCluster

    cluster = None
    try:
        if scheduler:
            try:
                client = Client(scheduler, timeout=CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError) as exc:
                raise ClusterError(f"cannot reach the Dask scheduler at {scheduler} "
                                   f"({_first_line(exc)})") from exc
        else:
            n = workers or _cpu_count()
            try:
                with _sigint_ignored_by_children():
                    cluster = LocalCluster(
                        n_workers=n, threads_per_worker=1, processes=True,
                        dashboard_address=None,
                        silence_logs=logging.INFO if debug else logging.CRITICAL)
            except (OSError, RuntimeError) as exc:
                raise ClusterError(f"cannot start {n} local Dask workers "
                                   f"({_first_line(exc)})") from exc
            client = Client(cluster)
    except BaseException:
        if cluster is not None:
            cluster.close()
        raise
    try:
        yield client, cluster
    finally:
        with contextlib.suppress(Exception):
            client.close()
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.close()


@contextlib.contextmanager
def _sigint_ignored_by_children() -> Iterator[None]:
    """Worker processes started here ignore SIGINT (a terminal's Ctrl-C reaches the whole
    process group): this client alone stops the run, cancels the tasks and closes them."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _cpu_count() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:      # not on Linux
        return os.cpu_count() or 1


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


@contextlib.contextmanager
def _output_lock(outdir: Path) -> Iterator[None]:
    """One run per output folder: ``OUT/.ecglens-batch.lock`` names the running client; a
    lock left by a client that is gone (same machine, process ended) is taken over."""
    lock = outdir / LOCK_NAME
    me = f"{socket.gethostname()} {os.getpid()}"
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                host, pid = lock.read_text().split()
            except (OSError, ValueError):
                host, pid = "", "0"
            if host == socket.gethostname() and not _alive(int(pid)):
                log.warning("%s: taking over the lock of a run that ended (pid %s)", outdir, pid)
                lock.unlink(missing_ok=True)
                continue
            raise OutputError(f"another ecglens batch (host {host or '?'}, pid {pid}) is writing "
                              f"this folder; if it is gone, delete {LOCK_NAME}", outdir) from None
        with os.fdopen(fd, "w") as fh:
            fh.write(me)
        break
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep_partials(outdir: Path, folders: set[str]) -> int:
    """Remove staging files/folders left by tasks killed mid-write (the cluster is closed)."""
    removed = 0
    for rel in folders:
        folder = outdir / rel if rel else outdir
        for path in folder.glob(f".*{PARTIAL_SUFFIX}"):
            with contextlib.suppress(OSError):
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
                removed += 1
    return removed


class _Run:
    """The client's bookkeeping of one run: what to submit, what came back."""

    def __init__(self, files: Sequence[SourceFile], outdir: Path, options: ArchiveOptions,
                 manifest: Manifest, on_page: Callable[[PageOutcome], None] | None,
                 on_progress: Callable[[ArchiveProgress], None] | None) -> None:
        self.files = files
        self.next_file = 0
        self.outdir = outdir
        self.options = options
        self.manifest = manifest
        self.on_page = on_page
        self.on_progress = on_progress
        self.queue: deque[tuple[SourceFile, int, int]] = deque()
        self.counts: Counter[str] = Counter()
        self.pages_known = 0
        self.files_known = 0
        self.folders: set[str] = set()
        self.t_first: float | None = None

    # -- what a file needs
    def _complete(self, key: str, page: int) -> bool:
        if not self.manifest.is_complete(key, page, self.outdir):
            return False
        stem = self.manifest.last[(key, page)]["output_stem"]
        return all((self.outdir / f"{stem}{suffix}").exists() for suffix, wanted in (
            (ANALYSIS_SUFFIX, self.options.analyze), (CLASSIFY_SUFFIX, self.options.classify))
            if wanted)

    def _failed_before(self, key: str, page: int) -> bool:
        row = self.manifest.last.get((key, page))
        return bool(row and row.get("status") == "failed" and not self.options.retry_failed)

    def plan_file(self, src: SourceFile) -> bool:
        """Queue the pages of ``src`` that need work; True when its pages must be counted."""
        if self.options.overwrite:
            known = None
        else:
            known = self.manifest.pages_known(src.key)
            if not known and self._failed_before(src.key, 1):   # could not be opened before
                self.finish_file(1)
                self.counts["failed_before"] += 1
                return False
        if not known and src.multi_page:
            return True
        self.add_pages(src, known or 1)
        return False

    def add_pages(self, src: SourceFile, n_pages: int) -> None:
        self.finish_file(n_pages)
        for page in range(1, n_pages + 1):
            if not self.options.overwrite and self._complete(src.key, page):
                self.counts["skipped"] += 1
            elif not self.options.overwrite and self._failed_before(src.key, page):
                self.counts["failed_before"] += 1
            else:
                self.queue.append((src, page, n_pages))
                self.folders.add(src.rel_folder)

    def finish_file(self, n_pages: int) -> None:
        self.files_known += 1
        self.pages_known += n_pages

    # -- what came back
    def record(self, outcome: PageOutcome) -> None:
        self.manifest.append(outcome)
        self.counts[outcome.status] += 1
        if outcome.status == "failed":
            log.debug("%s page %d: %s", outcome.input, outcome.page, outcome.reason)
        if self.on_page is not None:
            self.on_page(outcome)

    def progress(self) -> ArchiveProgress:
        c = self.counts
        processed = c["ok"] + c["failed"]
        done = processed + c["skipped"] + c["failed_before"]
        unknown = len(self.files) - self.files_known
        per_file = self.pages_known / self.files_known if self.files_known else 1.0
        total = max(done, self.pages_known + round(unknown * per_file))
        elapsed = time.perf_counter() - self.t_first if self.t_first else 0.0
        rate = processed / elapsed if elapsed > 0 else 0.0
        eta = (total - done) / rate if rate > 0 else float("nan")
        return ArchiveProgress(done, c["ok"], c["failed"], c["skipped"], c["failed_before"],
                               total, unknown > 0, rate, eta)

    def tick(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.progress())


def run_archive(sources: Sequence[str | Path], outdir: str | Path,
                options: ArchiveOptions | None = None, workers: int | None = None,
                scheduler: str | None = None, index: str | Path | None = None,
                on_page: Callable[[PageOutcome], None] | None = None,
                on_progress: Callable[[ArchiveProgress], None] | None = None) -> ArchiveSummary:
    """Digitize every page of ``sources`` into ``outdir`` on a Dask cluster (module docstring).

    Parameters
    ----------
    workers
        Local worker processes (one thread each; default: the CPU count). Ignored with
        ``scheduler``.
    scheduler
        Address of an existing Dask scheduler (``tcp://host:8786``) whose workers mount the
        inputs and ``outdir`` at the same paths.
    index
        Write the findings of every record in ``outdir`` to this CSV (:func:`write_index`).
    on_page, on_progress
        Called with each page's outcome (ok or failed) and after every event.

    Returns
    -------
    ArchiveSummary
        ``interrupted`` after Ctrl-C (the pages recorded are complete; run again to go on).

    Raises
    ------
    InputError
        A source does not exist or a pattern matches nothing.
    OutputError
        ``outdir`` cannot be created, or another run is writing it.
    ClusterError
        The cluster cannot be started or reached, or its workers cannot write ``outdir``.
    """
    options = options or ArchiveOptions()
    t0 = time.perf_counter()
    out = Path(os.path.abspath(outdir))
    if out.exists() and not out.is_dir():
        raise OutputError("output folder is a file", out)
    files = walk_sources(sources, out, options.zip_members)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output folder ({exc.strerror or exc})",
                          out) from exc
    log.info("%d input file(s) found in %.1f s", len(files), time.perf_counter() - t0)
    with _output_lock(out):
        manifest = Manifest(out, ARCHIVE_FIELDS)
        run = _Run(files, out, options, manifest, on_page, on_progress)
        interrupted, startup_s, rss, n_workers = False, 0.0, (), 0
        try:
            with _cluster(workers, scheduler, options.debug) as (client, cluster):
                startup_s = time.perf_counter() - t0
                n_workers = _check_workers(client, out, scheduler)
                try:
                    _drive(client, run, out, options)
                except KeyboardInterrupt:
                    interrupted = True
                    log.info("interrupted: cancelling the tasks and closing the cluster")
                if not interrupted:
                    with contextlib.suppress(Exception):
                        rss = tuple(sorted(client.run(_peak_rss_mb).values()))
                if interrupted and cluster is None:
                    log.warning("tasks already running on the cluster finish on their own; a "
                                "re-run adopts the pages they write")
        except KeyboardInterrupt:      # a second Ctrl-C while closing
            interrupted = True
        if not scheduler:      # the local workers are gone: no task is writing any more
            _sweep_partials(out, run.folders)
        processing_s = time.perf_counter() - (run.t_first or time.perf_counter())
        parquet = index_path = None
        if not interrupted:
            parquet = write_parquet(manifest.path)
            if index is not None:
                index_path = write_index(out, Path(index))
    c = run.counts
    rate = (c["ok"] + c["failed"]) / processing_s if processing_s > 0 else 0.0
    return ArchiveSummary(c["ok"], c["failed"], c["skipped"], c["failed_before"], len(files),
                          interrupted, time.perf_counter() - t0, startup_s, rate, n_workers,
                          rss, manifest.path, parquet, index_path)


def _check_workers(client: Any, out: Path, scheduler: str | None) -> int:
    """The number of workers; on an existing cluster, check that they can write ``out``."""
    nthreads = client.nthreads()
    if scheduler and nthreads:
        cannot = [w for w, ok in client.run(_can_write, str(out)).items() if not ok]
        if cannot:
            raise ClusterError(f"worker(s) {', '.join(cannot)} cannot write {out}: mount the "
                               "output folder (and the inputs) at the same path on every machine")
    elif scheduler:
        log.warning("the scheduler at %s has no workers yet; tasks wait for them", scheduler)
    return len(nthreads)


def _drive(client: Any, run: _Run, out: Path, options: ArchiveOptions) -> None:
    """Submit tasks a window at a time and record each result as it completes."""
    from distributed import as_completed

    pending: dict[Any, tuple[str, SourceFile, int, int]] = {}
    done = as_completed()
    threads = {"n": sum(client.nthreads().values()), "t": time.perf_counter()}

    def window() -> int:
        if time.perf_counter() - threads["t"] > THREADS_REFRESH_S:
            threads.update(n=sum(client.nthreads().values()), t=time.perf_counter())
        return max(MIN_IN_FLIGHT, IN_FLIGHT_PER_THREAD * threads["n"])

    def top_up() -> None:
        while len(pending) < window():
            if run.queue:
                src, page, n = run.queue.popleft()
                fut = client.submit(page_task, src, page, n, str(out), options, pure=False)
                pending[fut] = ("page", src, page, n)
            elif run.next_file < len(run.files):
                src = run.files[run.next_file]
                run.next_file += 1
                if not run.plan_file(src):
                    run.tick()
                    continue
                # counted first, ahead of pages (priority), so pages are known early
                fut = client.submit(count_task, src, options.debug, pure=False, priority=1)
                pending[fut] = ("count", src, 0, 0)
            else:
                return
            if run.t_first is None:
                run.t_first = time.perf_counter()
            done.add(fut)

    try:
        top_up()
        run.tick()
        for fut in done:
            kind, src, page, n = pending.pop(fut)
            try:
                result = fut.result()
            except Exception as exc:  # a worker died (KilledWorker), or a bug
                result = exc
            if kind == "count":
                _counted(run, src, result)
            else:
                if isinstance(result, BaseException):
                    result = page_failed(src.key, page, n, src.output_stem(page, n),
                                         _worker_error(result), time.perf_counter(),
                                         options.batch)
                run.record(result)
            del fut
            top_up()
            run.tick()
    except BaseException:
        with contextlib.suppress(Exception):
            client.cancel(list(pending))
        raise


def _counted(run: _Run, src: SourceFile, result: PageCount | BaseException) -> None:
    """A counting task came back: queue the pages, or record the file as failed (page 1 of
    0: a re-run counts it again only with ``retry_failed``)."""
    if isinstance(result, PageCount) and result.n_pages > 0:
        run.add_pages(src, result.n_pages)
        return
    if isinstance(result, PageCount):
        reason, seconds = result.reason, result.seconds
    else:
        error = _worker_error(result)
        reason, seconds = f"{type(error).__name__}: {_first_line(error)}", 0.0
    run.finish_file(1)
    run.record(PageOutcome(src.key, 1, 0, src.output_stem(1, 1), "failed", reason, seconds))


def _worker_error(exc: BaseException) -> BaseException:
    """A clearer error for a worker that died under a page (memory, crash)."""
    if type(exc).__name__ == "KilledWorker":
        return RuntimeError("the worker process died while reading this page (out of memory or "
                            "a crash), also on a retry")
    return exc


# ---------------------------------------------------------------------------- outputs
def _state_rows(manifest_path: Path) -> list[dict[str, str]]:
    """The manifest's last row of every page (its state), in first-seen order."""
    rows: dict[tuple[str, str], dict[str, str]] = {}
    with open(manifest_path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row.get("input") and row.get("page"):
                rows.pop((row["input"], row["page"]), None)
                rows[(row["input"], row["page"])] = row
    return list(rows.values())


def write_parquet(manifest_path: Path) -> Path | None:
    """``manifest.parquet`` beside the CSV, one row per page (its last state), when pyarrow is
    installed; None otherwise."""
    import importlib.util

    if importlib.util.find_spec("pyarrow") is None or not manifest_path.is_file():
        return None
    import pandas as pd

    frame = pd.DataFrame(_state_rows(manifest_path))
    for column in ("page", "n_pages", "seconds", *QUALITY_FIELDS):
        if column in frame and column != "layout":
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    target = manifest_path.with_suffix(".parquet")
    tmp = target.with_name(f".{target.name}{PARTIAL_SUFFIX}")
    try:
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, target)
    except (OSError, ValueError, ImportError) as exc:
        log.warning("manifest.parquet not written (%s)", exc)
        tmp.unlink(missing_ok=True)
        return None
    return target


INDEX_FIELDS = ("input", "page", "output_stem", *QUALITY_FIELDS, "assessable", "not_assessable",
                "hr_bpm", "pr_ms", "qrs_ms", "qt_ms", "qtc_bazett_ms", "qtc_fridericia_ms",
                "axis_deg", "interval_reasons", "stemi_detected", "stemi_confidence",
                "stemi_territories", "stemi_statement")
"""The fixed columns of the index; ``p_<class>`` and ``<class>`` (decision, 0/1) follow for
each class the classifier reports, then ``positive`` and ``classify_warnings``."""
_INTERVALS = ("hr_bpm", "pr_ms", "qrs_ms", "qt_ms", "qtc_bazett_ms", "qtc_fridericia_ms",
              "axis_deg")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else ""
    if isinstance(value, list | tuple):
        return "; ".join(str(v) for v in value)
    return str(value)


def index_row(row: Mapping[str, str], analysis: Mapping[str, Any] | None,
              classification: Mapping[str, Any] | None) -> dict[str, str]:
    """One record's findings as index cells (empty where not measured or not run)."""
    out = {k: str(row.get(k, "")) for k in ("input", "page", "output_stem", *QUALITY_FIELDS)}
    reasons = []
    if analysis is not None:
        reasons.append(_not_assessable(analysis))
        intervals = analysis.get("intervals") or {}
        out.update({k: _cell(intervals.get(k)) for k in _INTERVALS})
        why = intervals.get("reasons") or {}
        out["interval_reasons"] = "; ".join(f"{k}: {v}" for k, v in why.items()) \
            if isinstance(why, dict) else _cell(why)
        stemi = analysis.get("stemi") or {}
        out.update(stemi_detected=_cell(stemi.get("detected")),
                   stemi_confidence=_cell(stemi.get("confidence")),
                   stemi_territories=_cell(stemi.get("territories")),
                   stemi_statement=_cell(stemi.get("statement")))
    if classification is not None:
        reasons.append(_not_assessable(classification))
        probabilities = classification.get("probabilities") or {}
        positive = set(classification.get("positive") or [])
        for cls, p in probabilities.items():
            out[f"p_{cls}"] = _cell(round(float(p), 4))
            out[cls] = "1" if cls in positive else "0"
        out["positive"] = "; ".join(sorted(positive))
        out["classify_warnings"] = _cell(classification.get("warnings"))
    reason = next((r for r in reasons if r), "")
    out["not_assessable"] = reason
    out["assessable"] = "" if analysis is None and classification is None else \
        ("0" if reason else "1")
    return out


def write_index(outdir: Path, index: Path) -> Path:
    """A CSV of every complete record's findings in ``outdir`` (from ``manifest.csv`` and each
    record's ``_analysis.json`` / ``_classify.json``), written atomically.

    Raises
    ------
    OutputError
        The index cannot be written.
    """
    manifest_path = outdir / MANIFEST_NAME
    rows = _state_rows(manifest_path) if manifest_path.is_file() else []
    cells: list[dict[str, str]] = []
    classes: dict[str, None] = {}
    for row in rows:
        stem = row.get("output_stem", "")
        if row.get("status") != "ok" or not (outdir / f"{stem}.hea").is_file():
            continue
        classification = _read_json(outdir / f"{stem}{CLASSIFY_SUFFIX}")
        for cls in (classification or {}).get("probabilities") or {}:
            classes.setdefault(cls, None)
        cells.append(index_row(row, _read_json(outdir / f"{stem}{ANALYSIS_SUFFIX}"),
                               classification))
    fields = [*INDEX_FIELDS, *(f"p_{c}" for c in classes), *classes, "positive",
              "classify_warnings"]
    index = Path(os.path.abspath(index))
    tmp = None
    try:
        index.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{index.name}.", suffix=PARTIAL_SUFFIX,
                                   dir=index.parent)
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields, restval="", extrasaction="ignore")
            writer.writeheader()
            writer.writerows(cells)
        os.replace(tmp, index)
    except OSError as exc:
        raise OutputError(f"cannot write the index ({exc.strerror or exc})", index) from exc
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    log.info("index of %d record(s): %s", len(cells), index)
    return index


__all__ = ["ARCHIVE_FIELDS", "INDEX_FIELDS", "QUALITY_FIELDS", "ArchiveOptions",
           "ArchiveProgress", "ArchiveSummary", "ClusterError", "PageCount", "SourceFile",
           "count_task", "format_progress", "index_row", "page_task", "quality_figures",
           "run_archive", "walk_sources", "write_index", "write_parquet"]
