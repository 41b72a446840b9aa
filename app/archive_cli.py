"""``ecglens batch SRC... -o OUT``: an archive of paper ECGs digitized on a Dask cluster.

The command around :func:`ecglens.app.archive.run_archive` (argparse here; Dask and the
digitizer are imported inside the command, so ``ecglens --help`` stays fast). A progress bar
goes to stderr, one line ``ecglens: error: <input> (page N): <reason>`` per page that fails,
and a summary at the end. Exit code 1 if any page failed (in this run or, not retried, before),
130 after Ctrl-C (run the same command again to continue).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from ecglens.app.args import positive_float, positive_int

PROGRESS_TTY_S = 0.5
"""A terminal's progress bar is redrawn at most this often."""
PROGRESS_LOG_S = 30.0
"""Without a terminal (a log file, a scheduler's job log) a progress line every this often."""

EPILOG = """\
examples:
  ecglens batch /share/ecg -o /share/ecg-out --analyze --classify --index /share/findings.csv
  ecglens batch 'scans/**/*.pdf' scans/2003.zip -o out --workers 8
  ecglens batch /share/ecg -o /share/ecg-out --scheduler tcp://head:8786

a cluster of several machines (all mount the inputs and OUT at the same paths, and have the
same ecglens installed):
  head$     dask scheduler                      # prints tcp://head:8786
  node$     dask worker tcp://head:8786 --nworkers 8 --nthreads 1
  any$      ecglens batch /share/ecg -o /share/ecg-out --scheduler tcp://head:8786

a re-run skips the pages that are complete (manifest.csv in OUT); pages that failed are read
again only with --retry-failed; existing outputs are replaced only with --overwrite.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``ecglens batch``."""
    p = subparsers.add_parser(
        "batch", help="digitize an archive (folders, PDFs, TIFFs, zips) in parallel with Dask",
        description="Digitize every page of an archive of paper ECGs (folders walked "
        "recursively, images, multi-page PDF/TIFF, zip files) into OUT, mirroring the input "
        "folders, each page a Dask task; resumable (manifest.csv in OUT).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sources", nargs="+", metavar="SRC",
                   help="folders, files, .zip files or quoted glob patterns ('scans/**/*.pdf')")
    p.add_argument("-o", "--outdir", required=True, metavar="OUT", help="output folder")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=positive_int, default=None, metavar="N",
                       help="local worker processes, one thread each (default: the CPU count)")
    where.add_argument("--scheduler", metavar="ADDRESS", default=None,
                       help="run on an existing Dask cluster (tcp://host:8786) whose workers "
                       "see the inputs and OUT at the same paths")
    p.add_argument("--analyze", action="store_true",
                   help="also measure each page (<stem>_analysis.json: intervals, ST, STEMI)")
    p.add_argument("--classify", action="store_true",
                   help="also classify each page (<stem>_classify.json)")
    p.add_argument("--index", metavar="FILE.csv", default=None,
                   help="write every record's findings (HR, PR, QRS, QT/QTc, STEMI statement, "
                   "class probabilities and decisions, not-assessable reasons) to this CSV")
    p.add_argument("--retry-failed", action="store_true",
                   help="read again the pages that failed in an earlier run")
    p.add_argument("--overwrite", action="store_true",
                   help="read every page again and replace its outputs")
    p.add_argument("--zip", action="store_true",
                   help="also read the images and PDFs inside .zip files found in folders "
                   "(a .zip named as SRC is always read)")
    p.add_argument("--dpi", type=positive_float, default=None,
                   help="PDF rasterisation dpi / known scan dpi (default: from the file)")
    p.add_argument("--no-overlay", action="store_true", help="skip writing the overlay PNGs")
    p.set_defaults(func=run_batch_command)


class ProgressPrinter:
    """The progress bar on stderr (redrawn in place on a terminal, a line now and then in a
    log), and one error line per failed page."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.last = 0.0
        self.shown = False
        self.text = ""

    def _clear(self) -> None:
        if self.shown:
            sys.stderr.write("\r\033[K")
            self.shown, self.text = False, ""

    def page(self, outcome: Any) -> None:   # outcome: PageOutcome
        if outcome.status != "failed":
            return
        self._clear()
        page = f" (page {outcome.page})" if outcome.n_pages != 1 else ""
        print(f"ecglens: error: {outcome.input}{page}: {outcome.reason}", file=sys.stderr,
              flush=True)

    def progress(self, state: Any, force: bool = False) -> None:   # state: ArchiveProgress
        from ecglens.app.archive import format_progress

        now, text = time.monotonic(), format_progress(state)
        if self.quiet or text == self.text or (not force and now - self.last < (
                PROGRESS_TTY_S if self.tty else PROGRESS_LOG_S)):
            return
        self.last, self.text = now, text
        if self.tty:
            sys.stderr.write("\r\033[K" + text)
            self.shown = True
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\n")
            self.shown = False


def run_batch_command(args: argparse.Namespace) -> int:
    """Run the archive; see the module docstring. Returns the exit code."""
    import logging

    import distributed

    from ecglens.app.archive import ArchiveOptions, run_archive

    # Dask logs every worker start and stop (its import sets the level): kept for --debug
    logging.getLogger(distributed.__name__).setLevel(
        logging.DEBUG if getattr(args, "debug", False) else logging.ERROR)
    options = ArchiveOptions(dpi=args.dpi, overlay=not args.no_overlay, overwrite=args.overwrite,
                             retry_failed=args.retry_failed, analyze=args.analyze,
                             classify=args.classify, zip_members=args.zip,
                             debug=getattr(args, "debug", False))
    quiet = getattr(args, "quiet", False)
    printer = ProgressPrinter(quiet)
    last: list[Any] = []

    def on_progress(state: Any) -> None:
        last[:] = [state]
        printer.progress(state)

    try:
        summary = run_archive(args.sources, args.outdir, options, workers=args.workers,
                              scheduler=args.scheduler, index=args.index, on_page=printer.page,
                              on_progress=on_progress)
    finally:
        if last:
            printer.progress(last[0], force=True)
        printer.close()
    if not quiet or summary.interrupted:
        print(_summary_text(summary), file=sys.stderr)
    if summary.interrupted:
        print("ecglens: interrupted: the pages recorded are complete; run the same command "
              "again to continue (complete pages are skipped"
              + ("; the index is written when a run completes)" if args.index else ")"),
              file=sys.stderr)
        return 130
    return 1 if summary.failed or summary.failed_before else 0


def _summary_text(s: Any) -> str:   # s: ArchiveSummary
    lines = [f"{s.ok} page(s) read, {s.failed} failed, {s.skipped} complete before"
             + (f", {s.failed_before} failed before (not retried: --retry-failed)"
                if s.failed_before else "")
             + f"; {s.files} file(s)",
             f"{s.pages_per_s:.2f} pages/s on {s.workers} worker(s); {s.seconds:.0f} s in all "
             f"({s.startup_s:.0f} s to list the inputs and start the cluster)"]
    if s.worker_peak_rss_mb:
        lines.append("peak memory per worker: "
                     + ", ".join(f"{m:.0f}" for m in s.worker_peak_rss_mb) + " MB")
    lines.append(f"manifest: {s.manifest}" + (f" (and {s.parquet.name})" if s.parquet else ""))
    if s.index is not None:
        lines.append(f"index: {s.index}")
    return "\n".join(lines)
