"""load_pages: formats, multi-page files, EXIF orientation, DPI prior and bad input."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ecglens.core.errors import InputError
from ecglens.digitize.load import load_pages


def _page(w: int = 120, h: int = 80, colour: tuple[int, int, int] = (250, 200, 200)) -> Image.Image:
    arr = np.zeros((h, w, 3), np.uint8)
    arr[:] = colour
    arr[:10, :20] = (0, 0, 0)  # dark block at top-left marks the orientation
    return Image.fromarray(arr)


def test_png_round_trip_and_plausible_dpi(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    _page().save(path, dpi=(300, 300))
    (page,) = load_pages(path)
    assert page.image.shape == (80, 120, 3) and page.image.dtype == np.uint8
    assert page.kind == "image" and page.n_pages == 1 and page.page_index == 0
    assert page.dpi_prior == pytest.approx(300, abs=0.5)
    assert page.source == str(path)


def test_a_100_dpi_png_keeps_its_dpi(tmp_path: Path) -> None:
    """PNG stores pixels per metre: 100 dpi reads back as 99.9998 (seed-3 page p0135 was
    read at an assumed 200 dpi)."""
    path = tmp_path / "c.png"
    _page().save(path, dpi=(100, 100))
    assert Image.open(path).info["dpi"][0] < 100.0
    assert load_pages(path)[0].dpi_prior == pytest.approx(100, abs=0.01)


def test_screen_default_dpi_is_ignored_and_caller_dpi_wins(tmp_path: Path) -> None:
    path = tmp_path / "b.jpg"
    _page().save(path, dpi=(72, 72), quality=95)
    assert load_pages(path)[0].dpi_prior is None
    assert load_pages(path, dpi=150)[0].dpi_prior == 150


def test_rgba_is_composited_over_white(tmp_path: Path) -> None:
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[..., 3] = 0  # fully transparent
    path = tmp_path / "t.png"
    Image.fromarray(rgba, "RGBA").save(path)
    img = load_pages(path)[0].image
    assert img.min() == 255


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    img = _page(120, 80)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 deg clockwise when displayed
    path = tmp_path / "o.jpg"
    img.save(path, exif=exif.tobytes(), quality=95)
    out = load_pages(path)[0].image
    assert out.shape[:2] == (120, 80)
    # the dark block (top-left in storage) is top-right after a 90 deg clockwise turn
    assert out[:15, -8:].mean() < 60 and out[:15, :8].mean() > 150


def test_multipage_tiff_gives_one_page_each(tmp_path: Path) -> None:
    frames = [_page(colour=(250, 200, 200)), _page(colour=(200, 250, 200)),
              _page(colour=(200, 200, 250))]
    path = tmp_path / "m.tif"
    frames[0].save(path, save_all=True, append_images=frames[1:], dpi=(200, 200))
    pages = load_pages(path)
    assert [p.page_index for p in pages] == [0, 1, 2]
    assert all(p.n_pages == 3 for p in pages)
    assert pages[1].image[40, 60].tolist() == [200, 250, 200]


def test_multipage_pdf_rasterised_at_requested_dpi(tmp_path: Path) -> None:
    frames = [_page(200, 100).convert("RGB"), _page(200, 100, (200, 250, 200)).convert("RGB")]
    path = tmp_path / "d.pdf"
    frames[0].save(path, save_all=True, append_images=frames[1:], resolution=100.0)
    pages = load_pages(path, dpi=150)
    assert len(pages) == 2 and all(p.kind == "pdf" and p.n_pages == 2 for p in pages)
    assert pages[0].dpi_prior == 150
    # a 200 px wide page at 100 dpi is 2 inches -> 300 px at 150 dpi
    assert abs(pages[0].image.shape[1] - 300) <= 2
    # by default a page that is one full-page image is rasterised at that image's resolution
    native = load_pages(path)
    assert [p.dpi_prior for p in native] == [100.0, 100.0]
    assert native[0].image.shape[:2] == (100, 200)


def test_pdf_scan_page_keeps_its_pixels_and_vector_page_gets_default_dpi(tmp_path: Path
                                                                         ) -> None:
    from ecglens.synth.render import _write_lossless_pdf

    scan = np.full((300, 450, 3), 255, np.uint8)
    scan[100:103, 20:430] = 0
    _write_lossless_pdf([scan], [150.0], tmp_path / "scan.pdf")
    page = load_pages(tmp_path / "scan.pdf")[0]
    assert page.dpi_prior == 150.0 and np.array_equal(page.image, scan)   # pixel for pixel
    # a vector page (a 2 x 1 inch line drawing, no image) is rasterised at 300 dpi
    vector = (b"%PDF-1.4\n1 0 obj <</Type /Catalog /Pages 2 0 R>> endobj\n"
              b"2 0 obj <</Type /Pages /Kids [3 0 R] /Count 1>> endobj\n"
              b"3 0 obj <</Type /Page /Parent 2 0 R /MediaBox [0 0 144 72] /Contents 4 0 R>>"
              b" endobj\n4 0 obj <</Length 17>> stream\n0 0 m 144 72 l S\nendstream endobj\n"
              b"trailer <</Root 1 0 R>>\n%%EOF\n")
    (tmp_path / "vector.pdf").write_bytes(vector)
    page = load_pages(tmp_path / "vector.pdf")[0]
    assert page.dpi_prior == 300.0 and page.image.shape[:2] == (300, 600)


@pytest.mark.parametrize(
    "name, content, match",
    [
        ("missing.png", None, "not found"),
        ("empty.png", b"", "empty file"),
        ("text.png", b"this is not an image at all\n" * 10, "not an image"),
        ("empty.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
                      b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n"
                      b"trailer << /Root 1 0 R >>\n%%EOF\n", "PDF"),
        ("garbage.pdf", b"%PDF-1.4\n garbage garbage", "PDF"),
        ("fake.pdf", b"GIF89a not a pdf", "PDF"),
    ],
)
def test_bad_input_raises_input_error_naming_the_file(tmp_path: Path, name: str,
                                                      content: bytes | None, match: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=match) as err:
        load_pages(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "TIFF"])
def test_truncated_file_raises_input_error(tmp_path: Path, fmt: str) -> None:
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (200, 300, 3), dtype=np.uint8))
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    data = buf.getvalue()
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError) as err:
        load_pages(path)
    assert str(path) in str(err.value)


def test_real_scan_loads_with_its_dpi(shared_data: Path) -> None:
    path = shared_data / "real_images" / "tereshchenkolab_paper-ecg" / "fullScan.png"
    (page,) = load_pages(path)
    assert page.image.shape == (1700, 2200, 3)
    assert page.dpi_prior == pytest.approx(200, abs=0.1)
