"""``ecglens serve``: one web page that reads a phone photo (or scan, or PDF) of a paper ECG.

:func:`create_app` builds the FastAPI app: the static page (``static/``) and a small JSON API.

* ``POST /api/read`` (multipart: ``file``, optional ``page``, ``sex``, ``age``) digitizes one
  page, analyses and classifies it, and answers everything in that one response: the overlay
  as a JPEG data URL, the digitizer summary, the analysis and classification dicts as the
  library returns them, the record (``ECGRecord.to_dict``, also the record-JSON download),
  the WFDB zip (base64), the CSV text and the one-page clinician report PDF (base64, from
  :func:`ecglens.app.report.write_report_pdf` with the same analysis and classification, so
  page and PDF agree).
* ``GET /api/config``: limits, accepted types, the disclaimer, whether the PDF is available.

Data retention: none. An upload is read (bounded) into memory, written under a server-chosen
name (``upload.<ext>`` from the magic bytes, never the client's name or path) in a fresh
temporary folder, processed, and the folder is removed before the response is sent. Every
download is produced inside that same response, so the server holds no job, file or result
after answering; the browser holds the result until the page is closed. Responses carry
``Cache-Control: no-store``. Errors are one line, ``{"error": "<file name>: <reason>"}``.

Heavy work runs in a bounded thread pool (:data:`MAX_WORKERS`); at most :data:`MAX_JOBS`
uploads are accepted at once (more get 503), which also bounds the memory held by uploads.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import importlib
import importlib.util
import io
import json
import logging
import math
import re
import tempfile
import threading
import zipfile
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import Message

from ecglens.core import DISCLAIMER
from ecglens.core.errors import EcglensError

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
"""The page: plain HTML/CSS/JS, no build step (installed as package data)."""

MAX_UPLOAD_BYTES = 25 * 1024 * 1024
"""Largest accepted file (413 above): a 48-50 MP phone JPEG is 8-20 MB, a scanned PDF page a
few MB; more is not a photo of an ECG and would only hold server memory."""
FORM_OVERHEAD_BYTES = 64 * 1024
"""Room for the multipart headers and the small fields around the file in the request body."""
MAX_UPLOAD_PIXELS = 50_000_000
"""Largest accepted page raster (413 above): a 50 MP phone photo. Digitizing time and memory
grow with the pixel count; this also stops decompression bombs (tiny file, huge image)."""
PDF_DPI = 300.0
"""PDF pages are counted in pixels at this resolution (the digitizer's default)."""
MAX_WORKERS = 2
"""Threads digitizing at once (each is CPU-bound for 1-5 s)."""
MAX_JOBS = 4
"""Uploads accepted at once (running + waiting for a worker); more get 503 'busy'. Bounds the
memory held by uploads to about MAX_JOBS x MAX_UPLOAD_BYTES."""
OVERLAY_MAX_SIDE = 2000
"""The overlay sent to the page is scaled down to this longest side (a phone screen is ~1200
px wide; the full-resolution record is in the downloads)."""
OVERLAY_JPEG_QUALITY = 85
MAX_ERROR_CHARS = 300
"""Error messages are one line, cut to this length."""
MAX_NAME_CHARS = 80
"""Client file names are shown (never used on disk) cut to this length."""

FORMATS: dict[str, tuple[str, str]] = {
    "jpeg": (".jpg", "image/jpeg"),
    "png": (".png", "image/png"),
    "tiff": (".tif", "image/tiff"),
    "webp": (".webp", "image/webp"),
    "pdf": (".pdf", "application/pdf"),
}
"""Accepted formats (told apart by magic bytes): temporary file suffix and MIME type."""
ALLOWED_CONTENT_TYPES = frozenset({mime for _, mime in FORMATS.values()}
                                  | {"image/jpg", "image/pjpeg", "image/x-png"})
"""Declared part types accepted (with the common non-standard JPEG/PNG spellings)."""
GENERIC_CONTENT_TYPES = frozenset({"", "application/octet-stream"})
"""Declared types that say nothing (some phone file pickers); the magic bytes decide."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_PDF_LOCK = threading.Lock()


class _BodyTooLargeError(Exception):
    """The request body grew past the limit while it was being read."""


def sniff_format(head: bytes) -> str | None:
    """The format of a file from its first bytes (a key of :data:`FORMATS`), or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith(b"%PDF-"):
        return "pdf"
    return None


def _is_heif(head: bytes) -> bool:
    return head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"hevc", b"mif1", b"msf1",
                                                    b"avif")


def display_name(filename: str | None) -> str:
    """The client's file name for messages only: last path part, no control characters."""
    name = re.split(r"[/\\]", filename or "")[-1]
    name = _CONTROL.sub("", name).strip()
    if len(name) > MAX_NAME_CHARS:
        name = name[: MAX_NAME_CHARS - 1] + "…"
    return name or "upload"


def _one_line(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def _fail(status: int, name: str, reason: str) -> HTTPException:
    return HTTPException(status, f"{name}: {reason}")


def _clean(obj: Any) -> Any:
    """JSON-safe copy: NaN/inf → None, tuples → lists, numpy scalars → Python numbers."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if hasattr(obj, "item") and callable(obj.item):     # numpy scalar
        return _clean(obj.item())
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    return str(obj)


def _dumps(data: Any) -> bytes:
    return json.dumps(_clean(data), ensure_ascii=False, allow_nan=False).encode("utf-8")


def _json(data: Any, status: int = 200) -> Response:
    return Response(_dumps(data), status_code=status, media_type="application/json")


def pdf_available() -> bool:
    """True if :mod:`ecglens.app.report` (the clinician PDF) is installed."""
    try:
        return importlib.util.find_spec("ecglens.app.report") is not None
    except (ImportError, ValueError):
        return False


# ---------------------------------------------------------------------------- upload
@dataclasses.dataclass(frozen=True)
class Upload:
    """One checked upload: bytes, format (from magic bytes) and the form's options."""

    data: bytes
    fmt: str
    name: str
    page: int
    sex: str | None
    age: float | None
    upright: bool = False


def _field(form: Any, key: str) -> str:
    value = form.get(key)
    return value.strip() if isinstance(value, str) else ""


def _options(form: Any, name: str) -> tuple[int, str | None, float | None]:
    """``page``, ``sex`` and ``age`` from the form (422 naming the bad one)."""
    page_text, sex_text, age_text = _field(form, "page"), _field(form, "sex"), _field(form, "age")
    try:
        page = int(page_text) if page_text else 1
    except ValueError:
        page = 0
    if page < 1:
        raise _fail(422, name, f"page must be a number >= 1, got {page_text[:20]!r}")
    sex = sex_text.upper() or None
    if sex not in (None, "M", "F"):
        raise _fail(422, name, f"sex must be M or F, got {sex_text[:20]!r}")
    age: float | None = None
    if age_text:
        try:
            age = float(age_text)
        except ValueError:
            age = -1.0
        if not 0 <= age <= 130:
            raise _fail(422, name, f"age must be 0-130 years, got {age_text[:20]!r}")
    return page, sex, age


async def read_upload(request: Request) -> Upload:
    """Read and check the multipart upload: size, declared type, magic bytes, options.

    Raises ``HTTPException`` 413 (too large), 415 (not multipart, not an accepted type) or
    422 (bad options), each with a one-line message naming the file.
    """
    limit = MAX_UPLOAD_BYTES + FORM_OVERHEAD_BYTES
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _fail(413, "upload", f"file too large (limit {MAX_UPLOAD_BYTES // 2**20} MB)")
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise _fail(415, "upload", "expected a multipart/form-data upload with a 'file' field")
    received = 0

    async def counting_receive() -> Message:
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise _BodyTooLargeError
        return message

    limited = Request(request.scope, receive=counting_receive)
    try:
        async with limited.form(max_files=1, max_fields=8) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise _fail(422, "upload", "no file in the upload (form field 'file')")
            name = display_name(upload.filename)
            data = await upload.read(MAX_UPLOAD_BYTES + 1)
            content_type = (upload.content_type or "").split(";")[0].strip().lower()
            page, sex, age = _options(form, name)
    except _BodyTooLargeError:
        raise _fail(413, "upload", f"file too large (limit {MAX_UPLOAD_BYTES // 2**20} MB)"
                    ) from None
    if len(data) > MAX_UPLOAD_BYTES:
        raise _fail(413, name, f"file too large (limit {MAX_UPLOAD_BYTES // 2**20} MB)")
    if not data:
        raise _fail(422, name, "empty file (0 bytes)")
    if content_type not in ALLOWED_CONTENT_TYPES | GENERIC_CONTENT_TYPES:
        raise _fail(415, name, f"unsupported file type {content_type[:60]!r} "
                               "(JPEG, PNG, TIFF, WebP or PDF)")
    fmt = sniff_format(data[:16])
    if fmt is None:
        reason = ("HEIC/HEIF photo: choose 'Most compatible' (JPEG) in the camera settings or "
                  "export it as JPEG" if _is_heif(data[:16])
                  else "not a JPEG, PNG, TIFF, WebP or PDF file")
        raise _fail(415, name, reason)
    if content_type not in GENERIC_CONTENT_TYPES and content_type != FORMATS[fmt][1]:
        log.info("%s: declared %s, content is %s; read as %s", name, content_type, fmt, fmt)
    return Upload(data, fmt, name, page, sex, age,
                  upright=_field(form, "upright").lower() in ("1", "true", "on", "yes"))


# ---------------------------------------------------------------------------- work (threads)
def _check_pixels(path: Path, upload: Upload) -> None:
    """413 if the page's raster exceeds :data:`MAX_UPLOAD_PIXELS` (read from the header only)."""
    if upload.fmt == "pdf":
        import pdf2image

        try:
            info = pdf2image.pdfinfo_from_path(str(path), first_page=upload.page,
                                               last_page=upload.page)
        except Exception:       # unreadable PDFs are named by the digitizer's own checks
            return
        # pdfinfo says "Page size", or "Page    N size" when asked for a page range
        size = next((str(v) for k, v in info.items() if re.fullmatch(r"Page\s+(\d+\s+)?size",
                                                                      str(k))), "")
        match = re.match(r"\s*([\d.]+)\s*x\s*([\d.]+)", size)
        if not match:
            return
        width, height = (float(v) / 72.0 * PDF_DPI for v in match.groups())
    else:
        from PIL import Image

        try:
            with Image.open(path) as img:
                if upload.page > 1:
                    img.seek(min(upload.page, int(getattr(img, "n_frames", 1))) - 1)
                width, height = img.size
        except Image.DecompressionBombError:
            raise _fail(413, upload.name, "image too large (decompression bomb)") from None
        except Exception:       # corrupt images are named by the digitizer's own checks
            return
    if width * height > MAX_UPLOAD_PIXELS:
        raise _fail(413, upload.name, f"image too large ({width:.0f}x{height:.0f} px; limit "
                                      f"{MAX_UPLOAD_PIXELS / 1e6:.0f} megapixels)")


@contextlib.contextmanager
def _upload_on_disk(upload: Upload) -> Iterator[Path]:
    """The upload as ``upload.<ext>`` in a fresh temporary folder, removed on exit."""
    with tempfile.TemporaryDirectory(prefix="ecglens-serve-") as tmp:
        path = Path(tmp) / f"upload{FORMATS[upload.fmt][0]}"
        path.write_bytes(upload.data)
        _check_pixels(path, upload)
        yield path


def _errors_named(upload: Upload, action: Callable[[], Any]) -> Any:
    """Run ``action``; library errors → 422 naming the client's file (never a server path)."""
    try:
        return action()
    except HTTPException:
        raise
    except EcglensError as exc:
        reason = re.sub(r"\S*ecglens-serve-[^\s:]*", "file", exc.reason)
        raise _fail(422, upload.name, reason) from exc
    except Exception as exc:
        log.exception("%s: failed", upload.name)
        raise _fail(500, upload.name, "internal error while reading the page (see the server "
                                      "log)") from exc


def _overlay_data_url(overlay_rgb: Any) -> tuple[str, list[int]]:
    from PIL import Image

    img = Image.fromarray(overlay_rgb)
    img.thumbnail((OVERLAY_MAX_SIDE, OVERLAY_MAX_SIDE))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=OVERLAY_JPEG_QUALITY)
    return ("data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii"),
            [img.width, img.height])


def _record_files(record: Any, stem: str, tmp: Path) -> tuple[str, str]:
    """The WFDB zip (base64) and the CSV text of ``record``."""
    from ecglens.core.io import write_csv, write_wfdb

    header = write_wfdb(record, tmp / stem)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(tmp.glob(f"{stem}.*")):
            zf.write(path, path.name)
    csv_text = write_csv(record, tmp / f"{stem}.csv").read_text()
    log.debug("wrote %s", header.name)
    return base64.b64encode(buf.getvalue()).decode("ascii"), csv_text


def assessable(analysis: dict[str, Any]) -> bool:
    """False when the analysis says the record is not a measurable ECG (then, as in the PDF
    report, nothing is classified and the page shows the analysis's own statement)."""
    text = analysis.get("not_assessable")
    return not (analysis.get("measurable") is False or analysis.get("assessable") is False
                or (isinstance(text, str) and bool(text.strip())))


def _report_pdf(item: Any, analysis: Any, classification: dict[str, Any] | None,
                tmp: Path) -> str | None:
    """The one-page clinician report (base64), or None where :mod:`ecglens.app.report` is
    not installed."""
    if not pdf_available():
        return None
    from ecglens.app.report import write_report_pdf

    with _PDF_LOCK:     # matplotlib's rc_context changes process-wide settings
        out = write_report_pdf(item, analysis, classification, tmp / "report.pdf")
    return base64.b64encode(Path(out).read_bytes()).decode("ascii")


def process_read(upload: Upload) -> dict[str, Any]:
    """Digitize, analyse and classify the upload's page and make every download (blocking;
    runs in a worker thread). The temporary folder is gone when this returns."""
    from ecglens.analysis.report import analyze_record
    from ecglens.app.batch import safe_stem
    from ecglens.app.inputs import iter_inputs
    from ecglens.classify.report import classify_one

    def work() -> dict[str, Any]:
        with _upload_on_disk(upload) as path:
            item = next(iter(iter_inputs(path, page=upload.page, upright=upload.upright)))
            record = item.record.replace(provenance={**item.record.provenance,
                                                     "source": upload.name})
            # the client's name, not the temporary path, in every output (PDF footer too)
            item = dataclasses.replace(item, record=record, source=upload.name)
            report = analyze_record(record, sex=upload.sex, age=upload.age)
            analysis = report.to_dict()
            classification = (classify_one(record, upload.name, item.page,
                                           digitized=item.digitized)
                              if assessable(analysis) else None)
            digitized = item.digitized
            summary = {**digitized.summary(), "source": upload.name,
                       "warnings": list(digitized.warnings)}
            summary.pop("stem", None)
            overlay, overlay_size = _overlay_data_url(digitized.overlay_image())
            stem = safe_stem(Path(upload.name).stem)
            if item.n_pages > 1:
                stem = f"{stem}_p{item.page}"
            out_dir = path.parent / "out"
            out_dir.mkdir()
            wfdb_zip, csv_text = _record_files(record, stem, out_dir)
            pdf = _report_pdf(item, report, classification, path.parent)
            return {
                "file": upload.name, "page": item.page, "n_pages": item.n_pages,
                "stem": stem, "overlay": overlay, "overlay_size": overlay_size,
                "digitize": summary, "analysis": analysis, "classification": classification,
                "record": record.to_dict(),
                "downloads": {"wfdb_zip": wfdb_zip, "csv": csv_text, "pdf": pdf},
                "disclaimer": DISCLAIMER,
            }

    return _errors_named(upload, work)


def read_response_body(upload: Upload) -> bytes:
    """:func:`process_read` as JSON bytes (a ~1 MB dump kept off the event loop too)."""
    return _dumps(process_read(upload))


def _warm_up() -> None:
    """Import the heavy modules and load the classifier once, so that the first upload is
    not slowed by it."""
    try:
        for name in ("ecglens.digitize.pipeline", "ecglens.analysis.report",
                     "ecglens.classify.report"):
            importlib.import_module(name)
        if pdf_available():
            importlib.import_module("ecglens.app.report")
        from ecglens.classify.predict import load_model

        load_model()
    except Exception as exc:  # a broken install shows on the first upload, with its error
        log.warning("warm-up failed: %s", exc)


# ---------------------------------------------------------------------------- app
class _JobSlots:
    """At most ``limit`` uploads in flight (only touched from the event loop: no lock)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0

    @contextlib.asynccontextmanager
    async def take(self) -> AsyncIterator[None]:
        if self.active >= self.limit:
            raise _fail(503, "server", "busy reading other ECGs; try again in a few seconds")
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1


def create_app(warm_up: bool = True) -> FastAPI:
    """The ``ecglens serve`` app: the page at ``/`` and the JSON API under ``/api``."""
    executor = ThreadPoolExecutor(max_workers=MAX_WORKERS, thread_name_prefix="ecglens-serve")
    slots = _JobSlots(MAX_JOBS)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if warm_up:
            executor.submit(_warm_up)
        try:
            yield
        finally:
            executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="ecglens", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)
    app.add_middleware(GZipMiddleware, minimum_size=1024)

    @app.middleware("http")
    async def headers(request: Request, call_next: Callable[[Request], Any]) -> Response:
        response: Response = await call_next(request)
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
            "script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
            "frame-ancestors 'none'")
        return response

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": _one_line(str(exc.detail))}, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def internal_error(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return JSONResponse({"error": "internal server error (see the server log)"},
                            status_code=500)

    async def in_worker(function: Callable[[Upload], Any], upload: Upload) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor, function, upload)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/api/config")
    async def config() -> Response:
        return _json({"max_upload_bytes": MAX_UPLOAD_BYTES, "max_pixels": MAX_UPLOAD_PIXELS,
                      "types": sorted(mime for _, mime in FORMATS.values()),
                      "disclaimer": DISCLAIMER, "pdf_available": pdf_available()})

    @app.get("/api/health")
    async def health() -> Response:
        return _json({"status": "ok", "jobs": slots.active})

    @app.post("/api/read")
    async def read(request: Request) -> Response:
        async with slots.take():
            upload = await read_upload(request)
            body = await in_worker(read_response_body, upload)
        return Response(body, media_type="application/json")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


__all__ = ["MAX_UPLOAD_BYTES", "MAX_UPLOAD_PIXELS", "Upload", "assessable", "create_app",
           "display_name", "process_read", "read_upload", "sniff_format"]
