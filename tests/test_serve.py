"""``ecglens serve``: the JSON API (FastAPI's TestClient) and the page in headless Chromium.

The browser tests drive Debian's ``chromium`` (``apt-get install chromium``) through
Playwright's Python API against a uvicorn server started here on a free localhost port; they
skip when ``/usr/bin/chromium`` is absent. ``ECGLENS_UPDATE_SCREENSHOTS=1`` writes the phone
and desktop screenshots to ``docs/serve_phone.png`` and ``docs/serve_desktop.png``.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import socket
import tempfile
import threading
import time
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="ecglens serve needs fastapi (pip install -e .)")
pytest.importorskip("httpx", reason="the API tests need httpx (pip install -e '.[dev]')")

with warnings.catch_warnings():
    # Starlette >= 1 suggests its successor httpx2; httpx works the same for these tests
    warnings.filterwarnings("ignore", message=".*install `httpx2` instead", category=UserWarning)
    from fastapi.testclient import TestClient

from ecglens.app.serve import (
    MAX_UPLOAD_BYTES,
    MAX_UPLOAD_PIXELS,
    assessable,
    create_app,
    display_name,
    pdf_available,
    sniff_format,
)
from ecglens.core import DISCLAIMER
from ecglens.core.io import read_csv, read_json, read_record

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "samples" / "ptbxl_00001_scan.jpg"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
MAX_SCREENSHOT_BYTES = 400 * 1024
READ_TIMEOUT_MS = 180_000
"""Digitizing the sample takes 1-5 s; generous for a loaded 2-core CI machine."""


def _one_line_error(response: Any, name: str) -> str:
    data = response.json()
    assert set(data) == {"error"}, data
    message = data["error"]
    assert isinstance(message, str) and "\n" not in message and message.startswith(f"{name}: ")
    assert "ecglens-serve-" not in message and "/tmp" not in message   # no server path
    return message


# ============================================================================ API
@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(warm_up=False)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def sample_read(client: TestClient, tmp_path_factory: pytest.TempPathFactory
                ) -> tuple[dict[str, Any], Path]:
    """The sample page read once through the API, with the temporary folder it ran in."""
    scratch = tmp_path_factory.mktemp("serve_tmp")
    saved = tempfile.tempdir
    tempfile.tempdir = str(scratch)
    try:
        with SAMPLE.open("rb") as fh:
            response = client.post("/api/read", files={"file": ("my ECG (1).jpg", fh,
                                                                "image/jpeg")},
                                   data={"sex": "M", "age": "61"})
    finally:
        tempfile.tempdir = saved
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    return response.json(), scratch


def test_page_and_config(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert 'capture="environment"' in page.text and 'accept="image/*,application/pdf"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset in ("/static/app.js", "/static/app.css"):
        assert client.get(asset).status_code == 200
    config = client.get("/api/config").json()
    assert config["max_upload_bytes"] == MAX_UPLOAD_BYTES
    assert config["disclaimer"] == DISCLAIMER


def test_read_sample_page(sample_read: tuple[dict[str, Any], Path]) -> None:
    result, scratch = sample_read
    assert result["file"] == "my ECG (1).jpg" and result["stem"] == "my_ECG_1"
    assert result["page"] == 1 and result["n_pages"] == 1
    # overlay: a JPEG data URL of the page with the traces drawn on it
    prefix = "data:image/jpeg;base64,"
    assert result["overlay"].startswith(prefix)
    overlay = base64.b64decode(result["overlay"][len(prefix):])
    assert overlay[:3] == b"\xff\xd8\xff" and min(result["overlay_size"]) > 500
    # findings as the library gives them, the disclaimer with them
    analysis = result["analysis"]
    assert analysis["measurable"] is True
    statement = analysis["stemi"]["statement"]
    assert isinstance(statement, str) and "STEMI" in statement
    assert analysis["rules"] and analysis["intervals"]["hr_bpm"] > 30
    assert [level["lead"] for level in analysis["st"]][:3] == ["I", "II", "III"]
    assert analysis["patient"] == {"sex": "M", "age": 61.0}
    assert result["disclaimer"] == DISCLAIMER == analysis["disclaimer"]
    classification = result["classification"]
    assert set(classification["probabilities"]) == {"NORM", "MI", "STTC", "CD", "HYP"}
    assert classification["disclaimer"] == DISCLAIMER
    assert result["digitize"]["leads_read"] == 12 and result["digitize"]["source"] == result["file"]
    assert len(result["record"]["leads"]) == 12
    # nothing is left in the temporary folder the request ran in
    assert list(scratch.iterdir()) == []


def test_read_sample_downloads(sample_read: tuple[dict[str, Any], Path], tmp_path: Path) -> None:
    result, _ = sample_read
    downloads = result["downloads"]
    with zipfile.ZipFile(io.BytesIO(base64.b64decode(downloads["wfdb_zip"]))) as zf:
        assert sorted(zf.namelist()) == ["my_ECG_1.dat", "my_ECG_1.hea"]
        zf.extractall(tmp_path)
    record = read_record(tmp_path / "my_ECG_1.hea")
    assert record.leads[:2] == ("I", "II") and len(record.leads) == 12
    assert record.provenance.get("source") == "my ECG (1).jpg"       # not the server's path
    (tmp_path / "r.csv").write_text(downloads["csv"])
    assert len(read_csv(tmp_path / "r.csv").leads) == 12
    (tmp_path / "r.json").write_text(json.dumps(result["record"]))
    assert len(read_json(tmp_path / "r.json").leads) == 12
    if pdf_available():
        assert base64.b64decode(downloads["pdf"]).startswith(b"%PDF")
    else:
        assert downloads["pdf"] is None


def _not_measurable(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Make the analysis see an empty record (all NaN), the library's "cannot measure" path;
    returns what the library itself says of such a record (the page must show just that)."""
    import numpy as np

    import ecglens.analysis.report as analysis_report
    from ecglens.core.record import STANDARD_LEADS, ECGRecord

    real = analysis_report.analyze_record

    def empty(record: Any, sex: str | None = None, age: float | None = None) -> Any:
        return real(record.replace(signal=np.full_like(record.signal, np.nan)), sex, age)

    monkeypatch.setattr(analysis_report, "analyze_record", empty)
    blank = ECGRecord(signal=np.full((5000, 12), np.nan), fs=500.0, leads=STANDARD_LEADS)
    return dict(real(blank).to_dict())


def test_not_measurable_statement_passes_through(client: TestClient,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    expected = _not_measurable(monkeypatch)
    with SAMPLE.open("rb") as fh:
        response = client.post("/api/read", files={"file": ("a.jpg", fh, "image/jpeg")})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["analysis"]["measurable"] is False
    assert result["analysis"]["stemi"]["statement"] == expected["stemi"]["statement"]
    assert result["analysis"]["cannot_measure"] == expected["cannot_measure"]
    assert result["classification"] is None             # as in the PDF report: not classified
    assert result["disclaimer"] == DISCLAIMER


def test_assessable() -> None:
    assert assessable({"measurable": True})
    assert not assessable({"measurable": False, "cannot_measure": "flat"})
    assert not assessable({"measurable": True, "assessable": False})
    assert not assessable({"measurable": True, "not_assessable": "not an ECG"})


def test_job_slots_refuse_when_full() -> None:
    import asyncio

    from starlette.exceptions import HTTPException

    from ecglens.app.serve import _JobSlots

    async def scenario() -> int:
        slots = _JobSlots(1)
        async with slots.take():
            try:
                async with slots.take():
                    pass
            except HTTPException as exc:
                return exc.status_code
        return 0

    assert asyncio.run(scenario()) == 503


def test_non_image_upload_is_refused(client: TestClient) -> None:
    response = client.post("/api/read", files={"file": ("notes.txt", b"hello", "text/plain")})
    assert response.status_code == 415
    assert "unsupported file type" in _one_line_error(response, "notes.txt")
    # a declared image type does not pass without the magic bytes
    response = client.post("/api/read", files={"file": ("../../etc/x.jpg", b"hello" * 10,
                                                        "image/jpeg")})
    assert response.status_code == 415
    assert "not a JPEG, PNG, TIFF, WebP or PDF" in _one_line_error(response, "x.jpg")
    response = client.post("/api/read", data={"page": "1"}, files={"other": ("a", b"b")})
    assert response.status_code == 422 and "no file" in response.json()["error"]


def test_image_that_is_not_an_ecg(client: TestClient) -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (400, 300), "white").save(buf, format="PNG")
    response = client.post("/api/read", files={"file": ("white.png", buf.getvalue(), "image/png")})
    assert 400 <= response.status_code < 500
    _one_line_error(response, "white.png")


def test_oversized_upload_is_413(client: TestClient) -> None:
    big = b"\xff\xd8\xff" + bytes(MAX_UPLOAD_BYTES)
    response = client.post("/api/read", files={"file": ("big.jpg", big, "image/jpeg")})
    assert response.status_code == 413
    assert "too large" in _one_line_error(response, "big.jpg")
    # a body over the limit by its Content-Length is refused before it is read
    response = client.post("/api/read", content=b"x" * (MAX_UPLOAD_BYTES + 2**20),
                           headers={"content-type": "multipart/form-data; boundary=b"})
    assert response.status_code == 413
    assert "too large" in _one_line_error(response, "upload")

    # ... and a chunked body (no Content-Length) is cut off as soon as it passes the limit
    def chunks() -> Iterator[bytes]:
        yield (b'--b\r\nContent-Disposition: form-data; name="file"; filename="c.jpg"\r\n'
               b"Content-Type: image/jpeg\r\n\r\n\xff\xd8\xff")
        for _ in range(MAX_UPLOAD_BYTES // 2**20 + 2):
            yield bytes(2**20)
        yield b"\r\n--b--\r\n"

    response = client.post("/api/read", content=chunks(),
                           headers={"content-type": "multipart/form-data; boundary=b"})
    assert response.status_code == 413
    assert "too large" in _one_line_error(response, "upload")


def test_too_many_pixels_is_413(client: TestClient) -> None:
    from PIL import Image

    side = int(MAX_UPLOAD_PIXELS ** 0.5) + 100
    buf = io.BytesIO()
    Image.new("1", (side, side), 1).save(buf, format="PNG")   # a few kB, > the pixel limit
    assert len(buf.getvalue()) < MAX_UPLOAD_BYTES
    response = client.post("/api/read", files={"file": ("huge.png", buf.getvalue(),
                                                        "application/octet-stream")})
    assert response.status_code == 413
    assert "megapixels" in _one_line_error(response, "huge.png")
    # a PDF page is counted at the rasterising resolution: 100 x 100 inches is far too large
    buf = io.BytesIO()
    Image.new("RGB", (1000, 1000), "white").save(buf, format="PDF", resolution=10.0)
    response = client.post("/api/read", files={"file": ("poster.pdf", buf.getvalue(),
                                                        "application/pdf")})
    assert response.status_code == 413
    assert "megapixels" in _one_line_error(response, "poster.pdf")


def test_bad_options_are_422(client: TestClient) -> None:
    with SAMPLE.open("rb") as fh:
        data = fh.read()
    for field, value in (("sex", "X"), ("age", "300"), ("page", "0")):
        response = client.post("/api/read", data={field: value},
                               files={"file": ("a.jpg", data, "image/jpeg")})
        assert response.status_code == 422
        assert field in _one_line_error(response, "a.jpg")


def test_sniff_format_and_names() -> None:
    assert sniff_format(b"\xff\xd8\xff\xe0") == "jpeg"
    assert sniff_format(b"\x89PNG\r\n\x1a\n") == "png"
    assert sniff_format(b"II*\x00") == sniff_format(b"MM\x00*") == "tiff"
    assert sniff_format(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "webp"
    assert sniff_format(b"%PDF-1.7") == "pdf"
    assert sniff_format(b"GIF89a") is None and sniff_format(b"") is None
    assert display_name("../../etc/passwd") == "passwd"
    assert display_name("C:\\Users\\me\\ecg.jpg") == "ecg.jpg"
    assert display_name("a\x00b\nc.png") == "abc.png"
    assert display_name(None) == display_name("") == "upload"


def test_serve_command_is_registered() -> None:
    from ecglens.cli import build_parser

    args = build_parser().parse_args(["serve", "--port", "8123"])
    assert (args.host, args.port) == ("127.0.0.1", 8123)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--port", "0"])


# ============================================================================ browser
def _free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    """A uvicorn server with the app on a free localhost port, for this module."""
    if not CHROMIUM.exists():
        pytest.skip(f"browser test: {CHROMIUM} not found (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api",
                        reason="browser test: pip install playwright (in the dev extra)")
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser(server_url: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                              args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture()
def page(browser: Any, server_url: str) -> Iterator[Any]:
    context = browser.new_context(viewport=PHONE, accept_downloads=True)
    tab = context.new_page()
    tab.goto(server_url + "/")
    tab.wait_for_selector("body[data-ready='true']")
    try:
        yield tab
    finally:
        context.close()


def _screenshot(page: Any, path: Path, viewport: dict[str, int]) -> None:
    """The whole page at ``viewport``'s width as a PNG (the viewport made as tall as the page,
    so the fixed disclaimer bar sits at the bottom), reduced to 256 colours if over budget."""
    from PIL import Image

    page.set_viewport_size(viewport)
    page.wait_for_timeout(400)          # the page refits the lead plot 150 ms after a resize
    height = page.evaluate("() => document.documentElement.scrollHeight")
    page.set_viewport_size({"width": viewport["width"], "height": max(height, viewport["height"])})
    page.wait_for_timeout(400)
    page.screenshot(path=str(path))
    page.set_viewport_size(viewport)
    if path.stat().st_size > MAX_SCREENSHOT_BYTES:
        with Image.open(path) as img:
            small = img.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
        small.save(path, optimize=True)
    assert path.stat().st_size <= MAX_SCREENSHOT_BYTES, path


def _download(page: Any, button: str) -> Path:
    with page.expect_download() as info:
        page.click(button)
    return Path(info.value.path())


def test_browser_reads_the_sample(page: Any, tmp_path: Path) -> None:
    page.set_input_files("#file", str(SAMPLE))
    # (the page's CSP forbids eval, so waits are on selectors, not wait_for_function)
    page.wait_for_selector("#overlay[data-loaded='true']", timeout=READ_TIMEOUT_MS)
    assert page.locator("#error").is_hidden()
    assert "STEMI" in page.text_content("#stemi-statement")
    assert page.locator("#rules-table tbody tr").count() > 0
    assert page.locator("#st-table tbody tr").count() == 12
    assert page.locator("#class-bars .bar-row").count() == 5
    disclaimer = page.locator("#disclaimer")
    assert disclaimer.is_visible() and disclaimer.text_content() == DISCLAIMER
    assert page.text_content("#disclaimer-results") == DISCLAIMER
    # zoom a lead: the SVG shows that lead
    page.click("#lead-buttons button[data-lead='V2']")
    assert page.get_attribute("#plot-wrap svg", "aria-label") == "Lead V2 as read"
    assert len(page.get_attribute("#plot-wrap svg path", "d") or "") > 1000
    # downloads: CSV, record JSON and WFDB give the 12 leads; the PDF is a PDF
    csv_path = tmp_path / "r.csv"
    _download(page, "#dl-csv").rename(csv_path)
    assert len(read_csv(csv_path).leads) == 12
    json_path = tmp_path / "r.json"
    _download(page, "#dl-json").rename(json_path)
    assert len(read_json(json_path).leads) == 12
    with zipfile.ZipFile(_download(page, "#dl-wfdb")) as zf:
        zf.extractall(tmp_path / "wfdb")
    assert len(read_record(next((tmp_path / "wfdb").glob("*.hea"))).leads) == 12
    findings = json.loads(_download(page, "#dl-findings").read_text())
    assert findings["disclaimer"] == DISCLAIMER
    if page.locator("#dl-pdf").is_visible():
        assert _download(page, "#dl-pdf").read_bytes().startswith(b"%PDF")
    # screenshots with results: phone, then desktop
    folder = REPO / "docs" if os.environ.get("ECGLENS_UPDATE_SCREENSHOTS") else tmp_path
    page.click("#lead-buttons button[data-lead='II']")
    _screenshot(page, folder / "serve_phone.png", PHONE)
    _screenshot(page, folder / "serve_desktop.png", DESKTOP)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= DESKTOP["width"]


def test_browser_shows_one_line_errors(page: Any, tmp_path: Path) -> None:
    text_file = tmp_path / "notes.txt"
    text_file.write_text("not an ECG\n")
    page.set_input_files("#file", str(text_file))
    error = page.locator("#error")
    error.wait_for(state="visible", timeout=READ_TIMEOUT_MS)
    assert error.text_content().startswith("notes.txt: ")
    assert page.locator("#results").is_hidden()
    # too large: told before uploading ...
    big = tmp_path / "big.jpg"
    big.write_bytes(b"\xff\xd8\xff" + bytes(MAX_UPLOAD_BYTES))
    page.set_input_files("#file", str(big))
    page.wait_for_selector("#error:text-matches('^big\\.jpg: ')")
    assert "too large" in error.text_content()
    # ... and the server's 413 reaches the browser when a client sends it anyway
    answer = page.evaluate("""async (size) => {
        const form = new FormData();
        form.append("file", new Blob([new Uint8Array(size)], {type: "image/jpeg"}), "big.jpg");
        const response = await fetch("/api/read", {method: "POST", body: form});
        return [response.status, await response.json()];
    }""", MAX_UPLOAD_BYTES + 2**20)
    assert answer[0] == 413 and "too large" in answer[1]["error"]


def test_browser_shows_not_measurable_statement(page: Any,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The page shows the library's own statement for a record it cannot measure, and no
    class probabilities (the server runs in this process, so the patch reaches it)."""
    expected = _not_measurable(monkeypatch)
    page.set_input_files("#file", str(SAMPLE))
    page.wait_for_selector("#overlay[data-loaded='true']", timeout=READ_TIMEOUT_MS)
    assert page.text_content("#stemi-statement") == expected["stemi"]["statement"]
    assert page.locator("#class-bars .bar-row").count() == 0
    assert expected["cannot_measure"] in page.text_content("#class-statement")
    assert page.locator("#disclaimer").text_content() == DISCLAIMER
