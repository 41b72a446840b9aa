"""``ecglens digitize INPUT... -o OUTDIR``: the command around :func:`ecglens.app.batch.run_batch`.

Folders expand (recursively) to their image and PDF files; a progress line goes to stderr; a
page that cannot be read prints one line ``ecglens: error: <file>: <reason>`` and the others
still run; the exit code is 1 if any page failed, 130 after Ctrl-C (rerun with ``--resume``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ecglens.core.errors import InputError


class Progress:
    """One stderr line per page: ``[i/n files] pages ok/failed, s/page, ETA, file``."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.t0 = time.perf_counter()
        self.done = 0

    def __call__(self, i: int, n_files: int, path: Path, outcome) -> None:  # outcome: PageOutcome
        if outcome.status == "failed":
            print(f"ecglens: error: {path}: {outcome.reason}"
                  + (f" (page {outcome.page})" if outcome.n_pages > 1 else ""),
                  file=sys.stderr, flush=True)
        if outcome.status == "ok":
            self.done += 1
        if self.quiet:
            return
        page = f" p{outcome.page}/{outcome.n_pages}" if outcome.n_pages > 1 else ""
        speed = ""
        if self.done:
            rate = (time.perf_counter() - self.t0) / self.done
            eta = rate * (n_files - i)
            speed = f" · {rate:.1f} s/page · ETA {int(eta // 60)}:{int(eta % 60):02d}"
        print(f"[{i}/{n_files}] {outcome.status:7s} {path}{page}{speed}", file=sys.stderr,
              flush=True)


def run_digitize(args: argparse.Namespace) -> int:
    """Digitize every input; see the module docstring. Returns the exit code."""
    from ecglens.app.batch import BatchOptions, expand_inputs, run_batch

    files = expand_inputs(list(args.inputs))
    if not files:
        raise InputError("no input files (folders held no image or PDF files)")
    options = BatchOptions(dpi=args.dpi, overlay=not args.no_overlay, overwrite=args.overwrite,
                           resume=args.resume, debug=getattr(args, "debug", False),
                           upright=getattr(args, "upright", False))
    progress = Progress(quiet=getattr(args, "quiet", False))

    def on_page(i: int, n: int, path: Path, outcome) -> None:
        progress(i, n, path, outcome)
        if args.json and outcome.summary is not None:
            print(json.dumps({**outcome.summary, "input": str(path),
                              "output_stem": outcome.output_stem}, separators=(",", ":")),
                  flush=True)

    summary = run_batch(files, Path(args.outdir), options, on_page)
    if not getattr(args, "quiet", False) or summary.interrupted:
        skipped = f", {summary.skipped} skipped (complete before)" if summary.skipped else ""
        print(f"{summary.ok} page(s) read, {summary.failed} failed{skipped}; manifest: "
              f"{Path(args.outdir) / 'manifest.csv'}", file=sys.stderr)
    if summary.interrupted:
        print("ecglens: interrupted: pages done so far are complete; run the same command "
              "with --resume to continue", file=sys.stderr)
        return 130
    return 1 if summary.failed else 0
