"""save_page / save_pdf round trips and the ``ecglens render`` command."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from ecglens.core.io import read_record
from ecglens.synth.distort import apply_profile
from ecglens.synth.render import RenderSettings, render_page, save_page, save_pdf


@pytest.fixture(scope="module")
def pages(shared_data):
    record = read_record(shared_data / "ludb" / "data" / "5")
    clean = render_page(record, RenderSettings(dpi=120.0, layout="3x4"))
    return clean, apply_profile(clean, "scan", seed=2)


def _assert_same_truth(read, truth):
    assert read.leads == truth.leads and read.fs == truth.fs
    assert read.n_samples == truth.n_samples
    np.testing.assert_array_equal(np.isnan(read.signal), np.isnan(truth.signal))
    np.testing.assert_allclose(read.signal, truth.signal, atol=1e-3, equal_nan=True)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".pdf"])
def test_save_page_round_trip(tmp_path, pages, suffix):
    page = pages[1]
    out = save_page(page, tmp_path / f"x{suffix}")
    assert out.exists()
    _assert_same_truth(read_record(tmp_path / "x_truth.hea"), page.truth)
    geo = json.loads((tmp_path / "x_truth.json").read_text())
    assert geo == json.loads(json.dumps(page.geometry))
    if suffix != ".pdf":
        with Image.open(out) as image:
            assert image.size == (page.image.shape[1], page.image.shape[0])
            assert image.info["dpi"][0] == pytest.approx(page.geometry["dpi"], abs=1.0)
            if suffix == ".png":
                assert np.array_equal(np.asarray(image.convert("RGB")), page.image)


def test_save_pdf_writes_every_page_and_truth(tmp_path, pages):
    out = save_pdf(list(pages), tmp_path / "two.pdf")
    assert out.read_bytes().startswith(b"%PDF")
    pdf2image = pytest.importorskip("pdf2image")
    try:
        info = pdf2image.pdfinfo_from_path(str(out))
    except Exception as exc:  # poppler missing
        pytest.skip(f"poppler not available: {exc}")
    assert info["Pages"] == 2
    # the PDF states the pages' dpi: its page size is the A4 sheet
    width_pt, height_pt = (float(v) for v in info["Page size"].split()[:3:2])
    assert width_pt == pytest.approx(297 / 25.4 * 72, abs=2.0)
    assert height_pt == pytest.approx(210 / 25.4 * 72, abs=2.0)
    for k, page in enumerate(pages, start=1):
        _assert_same_truth(read_record(tmp_path / f"two_p{k}_truth"), page.truth)
        geo = json.loads((tmp_path / f"two_p{k}_truth.json").read_text())
        assert geo["profile"] == page.geometry["profile"]


def test_pdf_pages_are_stored_losslessly(tmp_path, pages):
    """Pillow's PDF writer would store RGB pages as JPEG; ours keeps every pixel."""
    import re
    import zlib

    out = save_pdf(list(pages), tmp_path / "two.pdf")
    data = out.read_bytes()
    assert b"/DCTDecode" not in data
    streams = re.findall(rb"/Width (\d+) /Height (\d+) [^>]*/FlateDecode /Length (\d+) >>\n"
                         rb"stream\n", data)
    assert len(streams) == 2
    at = 0
    for page, (width, height, length) in zip(pages, streams, strict=True):
        at = data.index(b"stream\n", data.index(b"/Length " + length, at)) + len(b"stream\n")
        pixels = np.frombuffer(zlib.decompress(data[at:at + int(length)]), np.uint8)
        assert (int(height), int(width)) == page.image.shape[:2]
        assert np.array_equal(pixels.reshape(page.image.shape), page.image)


def test_render_command(tmp_path, shared_data):
    from ecglens.cli import main

    out = tmp_path / "cli.png"
    code = main(["-q", "render", str(shared_data / "ludb" / "data" / "9"), "-o", str(out),
                 "--layout", "6x2", "--profile", "fax", "--seed", "4", "--dpi", "100"])
    assert code == 0 and out.exists()
    geo = json.loads((tmp_path / "cli_truth.json").read_text())
    assert geo["layout"] == "6x2" and geo["profile"] == "fax" and geo["seed"] == 4
    assert main(["-q", "render", str(shared_data / "ludb" / "data" / "9"), "-o", str(out),
                 "--profile", "nope"]) == 1


def test_photo_states_72_dpi_in_the_file_but_true_scale_in_the_geometry(tmp_path, pages):
    photo = apply_profile(pages[0], "photo", seed=1)
    out = save_page(photo, tmp_path / "photo.jpg")
    with Image.open(out) as image:
        assert image.info["dpi"] == (72, 72)
    geo = json.loads((tmp_path / "photo_truth.json").read_text())
    assert geo["file_dpi"] == 72.0
    assert geo["dpi"] == pytest.approx(25.4 * np.sqrt(geo["px_per_mm_x"] * geo["px_per_mm_y"]),
                                       rel=1e-3)
