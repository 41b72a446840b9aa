"""Load paper-ECG files (PNG/JPEG/BMP/TIFF, multi-page TIFF, PDF) as RGB page images.

Every page becomes one :class:`PageImage` (``H x W x 3`` uint8 RGB). PDF pages are rasterised
through ``pdf2image`` (poppler) at a known DPI, which is then a reliable px/mm prior for the
grid stage: a page that is one full-page image (a scan saved as PDF) at that image's own
resolution, any other page at ``DEFAULT_PDF_DPI`` unless the caller gives one. For raster
files the DPI stored in the file is passed on only when plausible (72 and 96 dpi are screen
defaults written by most software and say nothing about the paper).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ecglens.core.errors import InputError

log = logging.getLogger(__name__)

#: DPI used to rasterise PDF pages when the caller gives none.
DEFAULT_PDF_DPI = 300.0
#: File DPI metadata outside this range, or equal to a screen default, is ignored.
PLAUSIBLE_DPI_RANGE = (100.0, 1200.0)
_SCREEN_DEFAULT_DPI = (72.0, 96.0)
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp"}
#: Refuse absurd rasters (decompression bombs, 100k-px PDFs at silly DPIs).
MAX_PIXELS = 120_000_000


@dataclass(frozen=True)
class PageImage:
    """One page of an input file.

    Attributes
    ----------
    image
        ``(H, W, 3)`` uint8 RGB, EXIF orientation applied, alpha composited over white.
    source
        Path of the file the page came from.
    page_index
        0-based page number inside the file.
    n_pages
        Number of pages in the file.
    dpi_prior
        Raster resolution in dots per inch when known: the PDF rasterisation DPI, or the
        file's DPI metadata when plausible; ``None`` otherwise.
    kind
        ``"pdf"`` or ``"image"``.
    """

    image: np.ndarray = field(repr=False)
    source: str
    page_index: int
    n_pages: int
    dpi_prior: float | None
    kind: str

    @property
    def px_per_mm_prior(self) -> float | None:
        """``dpi_prior / 25.4`` (px/mm), or ``None``."""
        return None if self.dpi_prior is None else self.dpi_prior / 25.4


def _plausible_dpi(info_dpi: object) -> float | None:
    """The DPI from PIL's ``info['dpi']`` if it is plausible for a scan, else ``None``."""
    if info_dpi is None:
        return None
    try:
        values = [float(v) for v in info_dpi] if isinstance(info_dpi, (tuple, list)) else [
            float(info_dpi)]  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if not values or not all(np.isfinite(values)):
        return None
    dpi = float(np.mean(values))
    if len(values) == 2 and abs(values[0] - values[1]) > 0.01 * dpi:
        return None
    if any(abs(dpi - d) < 0.5 for d in _SCREEN_DEFAULT_DPI):
        return None
    lo, hi = PLAUSIBLE_DPI_RANGE
    # PNG stores pixels per metre: 100 dpi comes back as 99.9998 (an own-renderer page lost
    # its dpi prior and was read at an assumed 200 dpi)
    return dpi if lo - 0.5 <= dpi <= hi + 0.5 else None


def _to_rgb(frame) -> np.ndarray:  # frame: PIL.Image.Image
    """Convert any PIL mode to uint8 RGB, compositing transparency over white."""
    from PIL import Image

    if frame.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(frame, dtype=np.float64)
        top = float(arr.max()) or 1.0
        grey = np.clip(arr / top * 255.0, 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if frame.mode == "F":
        arr = np.asarray(frame, dtype=np.float64)
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        grey = ((arr - lo) / ((hi - lo) or 1.0) * 255.0).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    has_alpha = frame.mode in ("RGBA", "LA", "PA") or (
        frame.mode == "P" and "transparency" in frame.info)
    if has_alpha:
        rgba = frame.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB")).copy()
    if frame.mode == "RGB":
        return np.array(frame)  # one copy, writable
    return np.asarray(frame.convert("RGB")).copy()


def _iter_pdf(path: Path, dpi: float | None, wanted: tuple[int, ...] | None
              ) -> Iterator[PageImage]:
    """Rasterise the PDF one page at a time (memory independent of the page count)."""
    import pdf2image

    n_pages = _pdf_page_count(path)
    if n_pages <= 0:
        raise InputError("empty PDF (0 pages)", path)
    numbers = _wanted_pages(wanted, n_pages, path)
    native = {} if dpi else _native_page_dpis(path, n_pages)
    for k in numbers:
        raster_dpi, at_native = (native[k], True) if k in native else (
            float(dpi or DEFAULT_PDF_DPI), False)
        try:
            # pdftocairo copies an image drawn at its own resolution pixel for pixel;
            # pdftoppm resamples it by half a pixel
            frames = pdf2image.convert_from_path(
                str(path), dpi=raster_dpi,  # type: ignore[arg-type]  # float dpi works
                first_page=k, last_page=k, fmt="png",
                thread_count=1, use_pdftocairo=at_native)
        except Exception as exc:  # poppler failures come as assorted exception types
            raise InputError(f"cannot rasterise PDF page {k} ({_first_line(exc)})",
                             path) from exc
        if not frames:
            raise InputError(f"PDF page {k} produced no image when rasterised", path)
        if frames[0].width * frames[0].height > MAX_PIXELS:
            raise InputError(f"PDF page {k} too large at {raster_dpi:g} dpi", path)
        image = _to_rgb(frames[0])
        del frames
        yield PageImage(image=image, source=str(path), page_index=k - 1, n_pages=n_pages,
                        dpi_prior=raster_dpi, kind="pdf")


def _pdf_page_count(path: Path) -> int:
    """The PDF's page count from poppler's pdfinfo (encrypted and corrupt files named)."""
    import pdf2image
    from pdf2image.exceptions import PDFInfoNotInstalledError, PDFPageCountError, PDFSyntaxError

    try:
        return int(pdf2image.pdfinfo_from_path(str(path)).get("Pages", 0))
    except PDFInfoNotInstalledError as exc:
        raise InputError("cannot read PDF: poppler (pdfinfo) is not installed", path) from exc
    except (PDFPageCountError, PDFSyntaxError, ValueError, KeyError) as exc:
        text = str(exc).lower()
        if "password" in text or "encrypt" in text:
            raise InputError("encrypted PDF (password-protected): save an unprotected copy",
                             path) from exc
        raise InputError(f"corrupt or empty PDF ({_first_line(exc)})", path) from exc


def _wanted_pages(wanted: tuple[int, ...] | None, n_pages: int, path: Path) -> list[int]:
    """1-based page numbers to read, checked against the file's page count."""
    if wanted is None:
        return list(range(1, n_pages + 1))
    bad = [k for k in wanted if not 1 <= k <= n_pages]
    if bad:
        raise InputError(f"page {bad[0]} asked for, but the file has {n_pages} page(s)", path)
    return list(wanted)


def _native_page_dpis(path: Path, n_pages: int) -> dict[int, float]:
    """Pages (1-based) that are one full-page raster image (a scan saved as PDF), with that
    image's resolution: rasterising there copies the scan's pixels instead of resampling
    them (at 300 dpi a 200-dpi scan read 0.8 dB worse on the PDF check). Vector pages, pages
    with several images, and any poppler failure fall back to ``DEFAULT_PDF_DPI``."""
    import re
    import subprocess

    try:
        listing = subprocess.run(["pdfimages", "-list", str(path)], capture_output=True,
                                 text=True, timeout=60, check=True).stdout
        sizes = subprocess.run(["pdfinfo", "-f", "1", "-l", str(n_pages), str(path)],
                               capture_output=True, text=True, timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("%s: no image listing (%s); PDF pages at %g dpi", path, exc, DEFAULT_PDF_DPI)
        return {}
    page_size_pt = {int(m[1]): (float(m[2]), float(m[3])) for m in re.finditer(
        r"^Page\s+(\d+) size:\s+([\d.]+) x ([\d.]+) pts", sizes, re.MULTILINE)}
    images: dict[int, list[tuple[int, int, float, float]]] = {}
    for line in listing.splitlines():
        cols = line.split()
        if len(cols) >= 14 and cols[0].isdigit() and cols[2] in ("image", "smask", "stencil"):
            try:
                entry = (int(cols[3]), int(cols[4]), float(cols[12]), float(cols[13]))
            except ValueError:   # a listing this parser does not know: not counted as native
                entry = (0, 0, 0.0, 0.0)
            images.setdefault(int(cols[0]), []).append(entry)
    native: dict[int, float] = {}
    for page, found in images.items():
        if len(found) != 1 or page not in page_size_pt:
            continue
        width_px, height_px, x_ppi, y_ppi = found[0]
        width_in, height_in = (v / 72.0 for v in page_size_pt[page])
        exact_x, exact_y = width_px / width_in, height_px / height_in
        # the image fills the page at one resolution that pdfimages (rounded) agrees with
        listed_agrees = all(abs(listed - exact) <= 1.0 + 0.01 * exact
                            for listed, exact in ((x_ppi, exact_x), (y_ppi, exact_y)))
        if abs(exact_x - exact_y) <= 0.01 * exact_x and listed_agrees and \
                PLAUSIBLE_DPI_RANGE[0] <= exact_x <= PLAUSIBLE_DPI_RANGE[1]:
            native[page] = round(0.5 * (exact_x + exact_y), 3)
    return native


def _too_large(exc: BaseException) -> str:
    """The message for an image PIL refuses to decode for its size (a decompression bomb)."""
    return f"image too large to read ({_first_line(exc)})"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _iter_raster(path: Path, dpi: float | None, wanted: tuple[int, ...] | None
                 ) -> Iterator[PageImage]:
    """Decode the image's frames one at a time (a multi-page TIFF is never held whole)."""
    from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        img = Image.open(path)
    except UnidentifiedImageError as exc:
        raise InputError("not an image file (format not recognised)", path) from exc
    except Image.DecompressionBombError as exc:
        raise InputError(_too_large(exc), path) from exc
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot open image ({_first_line(exc)})", path) from exc
    with img:
        n_frames = int(getattr(img, "n_frames", 1) or 1)
        for k in _wanted_pages(wanted, n_frames, path):
            try:
                img.seek(k - 1)
                frame = img
                if frame.width * frame.height > MAX_PIXELS:
                    raise InputError(f"image too large ({frame.width}x{frame.height} px)", path)
                frame.load()  # raises OSError on truncated data
                dpi_prior = float(dpi) if dpi else _plausible_dpi(frame.info.get("dpi"))
                # (exif_transpose copies the frame even when there is nothing to turn)
                turned = k == 1 and frame.getexif().get(0x0112, 1) not in (1, None)
                oriented = ImageOps.exif_transpose(frame) if turned else frame
                rgb = _to_rgb(oriented)
            except InputError:
                raise
            except (OSError, ValueError, SyntaxError, EOFError,
                    Image.DecompressionBombError) as exc:
                raise InputError(f"truncated or corrupt image ({_first_line(exc)})",
                                 path) from exc
            if rgb.shape[0] < 16 or rgb.shape[1] < 16:
                raise InputError(f"image too small ({rgb.shape[1]}x{rgb.shape[0]} px)", path)
            yield PageImage(image=rgb, source=str(path), page_index=k - 1, n_pages=n_frames,
                            dpi_prior=dpi_prior, kind="image")


def iter_pages(path: str | Path, dpi: float | None = None, pages: tuple[int, ...] | None = None
               ) -> Iterator[PageImage]:
    """Read the pages of an image or PDF file one at a time (``pages``: 1-based, default all).

    The file is checked (exists, not empty, header) before this returns; each page is decoded
    or rasterised only when the iterator reaches it, so memory does not grow with the page
    count.

    Parameters
    ----------
    path
        PNG, JPEG, BMP, TIFF (multi-page too), GIF, WebP or PDF file.
    dpi
        For PDFs, the rasterisation resolution (default 300 dpi). For raster files, the
        known scan resolution, which overrides the file's metadata. Either way it becomes
        ``PageImage.dpi_prior``.

    Returns
    -------
    Iterator of PageImage
        One per page, in file order.

    Raises
    ------
    InputError
        Naming the file: missing, empty, truncated/corrupt, not an image, or a PDF with no
        pages.
    """
    p = Path(path)
    if dpi is not None and not (np.isfinite(dpi) and 10.0 <= float(dpi) <= 2400.0):
        raise InputError(f"implausible dpi {dpi!r} (expected 10-2400)", p)
    if not p.exists():
        raise InputError("file not found", p)
    if p.is_dir():
        raise InputError("is a directory, not a file", p)
    try:
        size = p.stat().st_size
        with open(p, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise InputError(f"cannot read file ({_first_line(exc)})", p) from exc
    if size == 0:
        raise InputError("empty file (0 bytes)", p)
    is_pdf = head.startswith(b"%PDF") or p.suffix.lower() == ".pdf"
    if is_pdf:
        if not head.startswith(b"%PDF"):
            raise InputError("not a PDF (missing %PDF header)", p)
        return _iter_pdf(p, dpi, pages)
    if p.suffix.lower() not in _IMAGE_SUFFIXES:
        log.debug("%s: unusual suffix, trying to read it as an image", p)
    return _iter_raster(p, dpi, pages)


def count_pages(path: str | Path) -> int:
    """Pages in an image or PDF file, without decoding or rasterising any page.

    Raises
    ------
    InputError
        As :func:`iter_pages` for a missing, empty, unreadable or encrypted file.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError("file not found" if not p.exists() else "is not a file", p)
    with open(p, "rb") as fh:
        head = fh.read(8)
    if not head:
        raise InputError("empty file (0 bytes)", p)
    if head.startswith(b"%PDF") or p.suffix.lower() == ".pdf":
        return _pdf_page_count(p)
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(p) as img:
            return int(getattr(img, "n_frames", 1) or 1)
    except UnidentifiedImageError as exc:
        raise InputError("not an image file (format not recognised)", p) from exc
    except Image.DecompressionBombError as exc:
        raise InputError(_too_large(exc), p) from exc
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot open image ({_first_line(exc)})", p) from exc


def load_pages(path: str | Path, dpi: float | None = None) -> list[PageImage]:
    """Every page of an image or PDF file as a list (see :func:`iter_pages`)."""
    return list(iter_pages(path, dpi))
