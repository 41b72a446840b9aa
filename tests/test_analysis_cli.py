"""``ecglens analyze`` on a real record: JSON with the disclaimer, text report, errors."""

from __future__ import annotations

import json

import pytest

from ecglens.analysis.ludb import read_ludb_record
from ecglens.cli import DISCLAIMER, main
from ecglens.core.io import write_wfdb


def test_analyze_json_has_disclaimer_and_fields(shared_data, tmp_path, capsys):
    record = read_ludb_record(shared_data / "ludb" / "data" / "1")
    header = write_wfdb(record, tmp_path / "rec1")
    assert main(["analyze", str(header), "--json", "--sex", "F", "--age", "51"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["disclaimer"] == DISCLAIMER
    assert out["measurable"] is True
    assert out["stemi"]["detected"] is False
    assert out["patient"] == {"sex": "F", "age": 51.0}
    assert {lv["lead"] for lv in out["st"]} >= {"I", "V6"}
    assert out["intervals"]["qtc_bazett_ms"] > 300
    assert any(r["rule"].startswith("ST elevation") for r in out["rules"])


def test_analyze_text_and_missing_image(shared_data, tmp_path, capsys):
    assert main(["analyze", str(shared_data / "ludb" / "data" / "1")]) == 0
    text = capsys.readouterr().out
    assert "STEMI" in text and DISCLAIMER in text
    assert main(["analyze", str(tmp_path / "nothing.png")]) == 1
    assert "file not found" in capsys.readouterr().err


@pytest.mark.slow
def test_analyze_rendered_page_image(shared_data, tmp_path, capsys):
    """Image input goes through the digitizer; the JSON still carries the disclaimer."""
    from ecglens.synth.render import RenderSettings, render_page, save_page

    record = read_ludb_record(shared_data / "ludb" / "data" / "1")
    page = render_page(record, RenderSettings(layout="3x4+1", dpi=200))
    path = tmp_path / "page.png"
    save_page(page, path)
    assert main(["analyze", str(path), "--json", "--sex", "F", "--age", "51"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["disclaimer"] == DISCLAIMER
    assert out["measurable"] is True
    assert out["stemi"]["detected"] is False
