"""Tesseract kept loaded: a small worker process that ``digitize.ocr`` talks to over a pipe.

Run as a script (standard library only, so it starts in a few ms). It loads tesseract's C API
(``libtesseract.so.5``) and the English model once, then answers requests until its input
closes. Request: a JSON header line ``{"psm": int, "variables": {..}, "width": int,
"height": int}`` followed by ``width * height`` bytes of 8-bit grey pixels. Answer: one
status byte (``0`` ok, ``1`` failed), an 8-byte little-endian length, and that many bytes of
UTF-8: tesseract's TSV rows (no header) or the error message.

It runs in its own process so that tesseract's OpenMP runtime can be held to one thread
(``OMP_THREAD_LIMIT=1``, read when the runtime loads) without touching the caller's own
OpenMP users (torch's intra-op threads share the ``libgomp.so.1`` soname).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import struct
import sys

LIBRARY_NAMES = ("libtesseract.so.5", "libtesseract.5.dylib")


def load_api() -> tuple[ctypes.CDLL, ctypes.c_void_p, str]:
    """Load libtesseract and initialise English; (library, handle, version)."""
    lib = None
    for name in (*LIBRARY_NAMES, ctypes.util.find_library("tesseract")):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError:
            continue
    if lib is None:
        raise OSError("libtesseract not found")
    lib.TessVersion.restype = ctypes.c_char_p
    version = lib.TessVersion().decode()
    if not version.startswith(("4.", "5.")):
        raise OSError(f"libtesseract {version} has another C API")
    lib.TessBaseAPICreate.restype = ctypes.c_void_p
    lib.TessBaseAPIDelete.argtypes = [ctypes.c_void_p]
    lib.TessBaseAPIInit3.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
    lib.TessBaseAPIInit3.restype = ctypes.c_int
    lib.TessBaseAPISetVariable.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
    lib.TessBaseAPISetVariable.restype = ctypes.c_int
    lib.TessBaseAPISetPageSegMode.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.TessBaseAPISetImage.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int,
                                        ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.TessBaseAPIRecognize.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.TessBaseAPIRecognize.restype = ctypes.c_int
    lib.TessBaseAPIGetTsvText.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.TessBaseAPIGetTsvText.restype = ctypes.c_void_p
    lib.TessDeleteText.argtypes = [ctypes.c_void_p]
    lib.TessBaseAPIClear.argtypes = [ctypes.c_void_p]
    handle = ctypes.c_void_p(lib.TessBaseAPICreate())
    datapath = os.environ.get("TESSDATA_PREFIX")
    if lib.TessBaseAPIInit3(handle, datapath.encode() if datapath else None, b"eng") != 0:
        lib.TessBaseAPIDelete(handle)
        raise OSError("tesseract's English model could not be loaded")
    return lib, handle, version


def recognise(lib: ctypes.CDLL, handle: ctypes.c_void_p, header: dict, pixels: bytes) -> str:
    """TSV rows of one grey image."""
    for key, value in header.get("variables", {}).items():
        if not lib.TessBaseAPISetVariable(handle, key.encode(), str(value).encode()):
            raise ValueError(f"tesseract has no variable {key!r}")
    lib.TessBaseAPISetPageSegMode(handle, int(header["psm"]))
    width, height = int(header["width"]), int(header["height"])
    lib.TessBaseAPISetImage(handle, pixels, width, height, 1, width)
    if lib.TessBaseAPIRecognize(handle, None) != 0:
        raise RuntimeError("tesseract recognition failed")
    pointer = lib.TessBaseAPIGetTsvText(handle, 0)
    try:
        return ctypes.string_at(pointer).decode("utf-8", "replace") if pointer else ""
    finally:
        if pointer:
            lib.TessDeleteText(pointer)
        lib.TessBaseAPIClear(handle)


def _answer(out: object, status: int, text: str) -> None:
    data = text.encode("utf-8")
    out.write(bytes([status]) + struct.pack("<Q", len(data)) + data)  # type: ignore[attr-defined]
    out.flush()  # type: ignore[attr-defined]


def main() -> int:
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    try:
        lib, handle, version = load_api()
    except Exception as exc:  # reported to the caller, which falls back
        _answer(stdout, 1, f"{type(exc).__name__}: {exc}")
        return 1
    _answer(stdout, 0, version)
    while True:
        line = stdin.readline()
        if not line:
            return 0
        try:
            header = json.loads(line)
            pixels = stdin.read(int(header["width"]) * int(header["height"]))
            _answer(stdout, 0, recognise(lib, handle, header, pixels))
        except Exception as exc:  # one bad request does not end the worker
            _answer(stdout, 1, f"{type(exc).__name__}: {exc}")


if __name__ == "__main__":
    sys.exit(main())
