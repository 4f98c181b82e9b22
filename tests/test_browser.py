"""End to end in a real headless Chromium: upload a scan, see the call and the heat map (or, for a tumour-map
model, the tumour outline and its area).

Drives Debian's /usr/bin/chromium with Playwright for Python against
`streamlit run app.py` on localhost; saves screenshots under artifacts/.
"""

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from brain_cnn.explain.explainer import QUICK_METHOD
from brain_cnn.inference.assessment import OUTLINE_CAPTION

from conftest import models_dir_holding, PROJECT, encode, make_dicom, phantom

CHROMIUM = Path(os.environ.get("BRAIN_CNN_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = PROJECT / "artifacts"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


@contextlib.contextmanager
def streamlit_server(models: Path, audit: Path, port: int | None = None,
                     extra: list[str] = ()) -> Iterator[tuple[str, subprocess.Popen]]:
    """`streamlit run app.py` over the model folders in ``models`` on a free localhost port (or ``port``), with
    ``extra`` command-line options: (URL, process)."""
    port = port or free_port()
    env = {**os.environ, "BRAIN_CNN_MODELS": str(models), "TF_CPP_MIN_LOG_LEVEL": "3", "BRAIN_CNN_AUDIT": str(audit)}
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true", *extra],
        cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    try:
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
                break
            except OSError:
                if process.poll() is not None:
                    pytest.fail("streamlit exited: " + process.stdout.read().decode(errors="replace")[-2000:])
                time.sleep(0.5)
        else:
            pytest.fail("streamlit did not start within 90 s")
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def server(tiny_model, tmp_path_factory):
    models = models_dir_holding(tiny_model, tmp_path_factory.mktemp("browser-models"))
    with streamlit_server(models, models / "audit.jsonl") as (url, _):
        yield url


@pytest.fixture(scope="module")
def map_server(tiny_map_model, tmp_path_factory):
    """A second app, over a tumour-map model only: its Diagnose page shows the outline first."""
    models = models_dir_holding(tiny_map_model, tmp_path_factory.mktemp("browser-map-models"))
    with streamlit_server(models, models / "audit.jsonl") as (url, _):
        yield url


@pytest.fixture(scope="module")
def browser():
    """One Chromium for the module (Playwright's sync API runs one instance per thread); a page per app."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


def new_page(browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(90_000)
    return page


@pytest.fixture(scope="module")
def page(server, browser):
    page = new_page(browser)
    yield page
    page.close()


def upload(page, path: Path) -> None:
    """Choose ``path`` in the app's file uploader and wait until the app lists it."""
    page.locator("input[type=file]").set_input_files(str(path))
    page.get_by_text(path.name).first.wait_for()


# What Streamlit shows for an uncaught exception (st.exception's box), or its text anywhere on the page.
EXCEPTION_BOX = "[data-testid='stException']"
EXCEPTION_TEXT = re.compile(r"Traceback \(most recent call last\)|\b[A-Z]\w*(Error|Exception)\b")


def assert_no_exception(page) -> None:
    assert page.locator(EXCEPTION_BOX).count() == 0, page.locator(EXCEPTION_BOX).first.inner_text()
    text = page.locator("body").inner_text()
    assert not EXCEPTION_TEXT.search(text), text[-3000:]


def test_evaluation_page_shows_the_confusion_matrix(page, server):
    """The first request after a start goes straight to a page URL, as a bookmark would."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.goto(f"{server}/evaluation")
    page.get_by_text("Confusion matrix (counts)").wait_for()
    page.get_by_text("Accuracy").first.wait_for()
    page.screenshot(path=str(ARTIFACTS / "evaluation.png"), full_page=True)


def test_upload_shows_the_call_and_the_heat_map(page, server, tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    scan = tmp_path / "phantom-scan.png"
    scan.write_bytes(encode(phantom(256, lesion=True), "PNG"))
    page.goto(server)
    page.get_by_text("Upload a scan to see").wait_for()
    upload(page, scan)
    page.get_by_text(f"{QUICK_METHOD} for").wait_for()  # the overlay's caption appears with the heat map
    # The tiny test model may call the phantom or refuse it; either is a visible answer.
    page.locator("text=/Tumour suspected|No tumour seen|Cannot assess/").first.wait_for()
    page.screenshot(path=str(ARTIFACTS / "diagnose.png"), full_page=True)
    # A costly method, chosen: computed in the background, and its map replaces the quick one.
    page.get_by_role("combobox", name="Explanation method").click()
    page.get_by_role("option", name="Occlusion (slower: drawn after the call)").click()
    page.get_by_text("Occlusion for").wait_for()
    page.locator("text=/Tumour suspected|No tumour seen|Cannot assess/").first.wait_for()


def test_a_tumour_map_model_shows_the_outline_and_its_area(browser, map_server, tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    page = new_page(browser)
    try:
        scan = tmp_path / "lesion-phantom.png"
        scan.write_bytes(encode(phantom(256, lesion=True), "PNG"))
        page.goto(map_server)
        page.get_by_text("Upload a scan to see the model's call and its tumour outline").wait_for()
        upload(page, scan)
        # The call box carries the area: pixels, as a PNG gives no pixel spacing.
        page.locator("text=/Tumour outline: [0-9,]+ pixels/").first.wait_for()
        page.get_by_text(OUTLINE_CAPTION).wait_for()  # the outline, drawn on the head crop, in place of a heat map
        images = page.locator("[data-testid='stImage'] img")
        images.nth(1).wait_for()  # the head crop and the outline
        assert images.evaluate_all("all => all.every(i => i.complete && i.naturalWidth > 0)")
        assert page.get_by_text(f"{QUICK_METHOD} for").count() == 0  # no heat map until one is chosen
        assert_no_exception(page)
        page.screenshot(path=str(ARTIFACTS / "outline.png"), full_page=True)

        # A DICOM with its pixel spacing: the area in mm². A fresh session, so the DICOM is the only case.
        dicom = tmp_path / "lesion-phantom.dcm"
        dicom.write_bytes(make_dicom(phantom(256, lesion=True).astype(np.uint16) * 4, PixelSpacing=[0.5, 0.5]))
        page.goto(map_server)
        page.get_by_text("Upload a scan to see").wait_for()
        upload(page, dicom)
        page.locator("text=/Tumour outline: [0-9,.]+ mm²/").first.wait_for()
        page.get_by_text(OUTLINE_CAPTION).wait_for()
        assert_no_exception(page)
        page.screenshot(path=str(ARTIFACTS / "outline-dicom.png"), full_page=True)
    finally:
        page.close()
