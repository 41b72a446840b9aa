"""``ecglens digitize INPUT... -o OUTDIR [--json] [--dpi DPI] [--no-overlay]``.

Folders expand to the image and PDF files they hold; progress goes to stderr; a file that
cannot be read prints one line ``ecglens: error: <file>: <reason>`` and the others still run;
the exit code is 1 if any file failed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from ecglens.core.errors import EcglensError, InputError

log = logging.getLogger(__name__)

INPUT_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pdf", ".gif", ".webp"}


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files as given, folders expanded (sorted) to their image/PDF files."""
    out: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.iterdir()
                           if p.is_file() and p.suffix.lower() in INPUT_SUFFIXES)
            if not files:
                log.warning("%s: folder holds no image or PDF files", path)
            out.extend(files)
        else:
            out.append(path)
    return out


def run_digitize(args: argparse.Namespace) -> int:
    """Digitize every input; see the module docstring. Returns the exit code."""
    from ecglens.digitize.pipeline import digitize_file, write_outputs

    files = expand_inputs(list(args.inputs))
    if not files:
        raise InputError("no input files (folders held no image or PDF files)")
    outdir = Path(args.outdir)
    failed = 0
    quiet = getattr(args, "quiet", False)
    for i, path in enumerate(files, start=1):
        if not quiet:
            print(f"[{i}/{len(files)}] {path}", file=sys.stderr, flush=True)
        try:
            results = digitize_file(path, dpi=args.dpi)
            for result in results:
                write_outputs(result, outdir, overlay=not args.no_overlay)
                if args.json:
                    print(json.dumps(result.summary(), separators=(",", ":")), flush=True)
                for warning in result.warnings:
                    log.info("%s page %d: %s", path, result.page_index + 1, warning)
        except EcglensError as exc:
            failed += 1
            reason = exc.reason if exc.path else str(exc)
            print(f"ecglens: error: {path}: {reason}", file=sys.stderr, flush=True)
        except (OSError, ValueError, MemoryError) as exc:
            failed += 1
            print(f"ecglens: error: {path}: {type(exc).__name__}: {exc}", file=sys.stderr,
                  flush=True)
    if not quiet and len(files) > 1:
        print(f"{len(files) - failed} of {len(files)} files read, {failed} failed",
              file=sys.stderr)
    return 1 if failed else 0
