"""``ecglens digitize`` on good and bad inputs: one-line errors, exit codes, outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from ecglens.cli import main


def _blank(path):
    Image.new("RGB", (1200, 850), (255, 255, 255)).save(path)
    return path


def _photo(path):
    # a smooth, dark, colourful 'photo' of something that is not an ECG
    rng = np.random.default_rng(1)
    small = rng.integers(0, 180, size=(12, 16, 3)).astype(np.uint8)
    Image.fromarray(small).resize((1200, 900), Image.BICUBIC).save(path)
    return path


def _text_page(path):
    img = Image.new("RGB", (1240, 1754), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    for k in range(40):
        draw.text((80, 60 + 40 * k), "Lorem ipsum dolor sit amet, consectetur adipiscing elit "
                  f"sed do eiusmod tempor {k}", fill=(0, 0, 0))
    img.save(path)
    return path


def _truncated(path, tmp_path):
    full = tmp_path / "full.png"
    _text_page(full)
    data = full.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


def _empty_pdf(path):
    path.write_bytes(b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
                     b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
                     b"trailer<</Root 1 0 R>>\n%%EOF\n")
    return path


BAD = {
    "photo.png": lambda p, t: _photo(p),
    "blank.png": lambda p, t: _blank(p),
    "text.png": lambda p, t: _text_page(p),
    "truncated.png": lambda p, t: _truncated(p, t),
    "empty.pdf": lambda p, t: _empty_pdf(p),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_is_one_line_error(name, tmp_path, capsys):
    path = BAD[name](tmp_path / name, tmp_path)
    code = main(["digitize", str(path), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("ecglens: error:")]
    assert code == 1
    assert len(lines) == 1, err
    assert str(path) in lines[0]
    assert len(lines[0].split(":", 3)[-1].strip()) > 5      # a reason is given
    assert not list((tmp_path / "out").glob("*.hea")) if (tmp_path / "out").exists() else True


def test_good_and_bad_files_in_one_call(shared_data, tmp_path, capsys):
    from ecglens.core.io import read_record
    from ecglens.synth.render import RenderSettings, render_page, save_page

    record = read_record(shared_data / "ludb" / "data" / "7")
    good = save_page(render_page(record, RenderSettings(layout="3x4+1", dpi=120.0)),
                     tmp_path / "in" / "good.png")
    bad = _blank(tmp_path / "in" / "blank.png")
    out = tmp_path / "out"
    code = main(["digitize", str(tmp_path / "in"), "-o", str(out), "--json"])
    captured = capsys.readouterr()
    assert code == 1                                      # one file failed
    errors = [line for line in captured.err.splitlines() if line.startswith("ecglens: error:")]
    assert len(errors) == 1 and str(bad) in errors[0]
    assert (out / "good.hea").exists() and (out / "good.json").exists()
    assert (out / "good_overlay.png").exists()
    summary = json.loads(captured.out.strip().splitlines()[0])
    assert summary["layout"] == "3x4+1" and summary["gain_mm_mv"] == 10.0
    assert summary["speed_mm_s"] == 25.0 and summary["leads_read"] == 12
    assert str(good) == summary["source"]
