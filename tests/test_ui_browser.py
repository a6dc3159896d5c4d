"""The browser page: served with its assets, and in headless Chromium against `pagelens serve` (ask, cite, open pages)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pagelens.settings import Settings
from tests.processes import stop_process

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1280,1700")
QUESTION = "What is the calibration interval of the robot arm?"
READY_TIMEOUT_S = 180  # the server loads MiniLM before /readyz turns 200
ANSWER_TIMEOUT_S = 90
# The page image shades the cited box in translucent amber (pagelens.pageimage.HIGHLIGHT_FILL) over white paper.
AMBER_PIXELS_JS = """
const img = document.getElementById('page-image');
const canvas = document.createElement('canvas');
canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
const ctx = canvas.getContext('2d');
ctx.drawImage(img, 0, 0);
const px = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
let amber = 0;
for (let i = 0; i < px.length; i += 4) {
  if (px[i] > 230 && px[i + 1] > 200 && px[i + 1] < 250 && px[i + 2] > 120 && px[i + 2] < 200) amber++;
}
return amber / (px.length / 4);
"""


def _cli(data_dir: Path, *args: str, timeout: float = 600) -> str:
    """Run the `pagelens` console script against `data_dir`; its stdout."""
    env = {**os.environ, "PAGELENS_DATA_DIR": str(data_dir), "OMP_THREAD_LIMIT": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([str(Path(sys.executable).with_name("pagelens")), *args], env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"pagelens {' '.join(args)} failed:\n{done.stderr[-2000:]}"
    return done.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(base_url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"pagelens serve exited with {server.returncode}:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{base_url}/readyz", timeout=3) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    pytest.fail(f"pagelens serve was not ready within {READY_TIMEOUT_S} s:\n{log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def served_api(sample_docs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(base URL, token) of `pagelens serve` on a free 127.0.0.1 port over the ingested samples (namespace demo)."""
    workdir = tmp_path_factory.mktemp("ui")
    data_dir, refused = workdir / "data", workdir / "refused"
    refused.mkdir()
    (refused / "broken.pdf").write_bytes(b"")  # quarantined: empty
    (refused / "garbage.pdf").write_bytes(b"%PDF-1.4 this is not a PDF")  # quarantined: corrupt
    _cli(data_dir, "ingest", str(sample_docs), str(refused), "--namespace", "demo")
    token = _cli(data_dir, "token", "create", "--namespace", "demo", "--label", "browser test").strip().splitlines()[-1]
    port, log = _free_port(), workdir / "serve.log"
    env = {**os.environ, "PAGELENS_DATA_DIR": str(data_dir), "OMP_THREAD_LIMIT": "1", "HF_HUB_OFFLINE": "1"}
    with log.open("wb") as out:
        server = subprocess.Popen([str(Path(sys.executable).with_name("pagelens")), "serve", "--host", "127.0.0.1",
                                   "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base_url, server, log)
        yield base_url, token
    finally:
        stop_process(server, timeout=15)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} and {CHROMEDRIVER} are required in CI: run `make system-deps`")
        pytest.skip("chromium/chromedriver are not installed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)  # a driver path: no selenium-manager
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _ask(driver: Any, base_url: str, token: str, namespace: str = "demo", question: str = QUESTION) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{base_url}/")
    driver.execute_script("sessionStorage.clear()")
    for field, value in (("token", token), ("namespace", namespace), ("question", question)):
        element = driver.find_element(By.ID, field)
        element.clear()
        element.send_keys(value)
    driver.find_element(By.ID, "ask").click()


def _wait_for(driver: Any, condition: str, timeout: float = ANSWER_TIMEOUT_S) -> None:
    """Wait until a JS expression is truthy."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout, poll_frequency=0.2).until(lambda d: d.execute_script(f"return {condition}"))


def test_page_and_its_assets_are_served_without_a_token(settings: Settings) -> None:
    from query_api import create_app

    client = create_app(settings.model_copy(update={"api_warm_on_start": False})).test_client()
    page = client.get("/")
    assert page.status_code == 200 and b'<script src="static/app.js"' in page.data
    assert "script-src" not in page.headers["Content-Security-Policy"]  # default-src 'self': no inline scripts
    assert "img-src 'self' blob:" in page.headers["Content-Security-Policy"]
    for asset, kind in (("app.js", "javascript"), ("documents.js", "javascript"), ("app.css", "text/css")):
        response = client.get(f"/static/{asset}")
        assert response.status_code == 200 and kind in response.content_type
    assert client.get("/static/../ui.py").status_code == 404


@pytest.mark.integration
def test_answer_cites_pages_and_opens_the_highlighted_page(served_api: tuple[str, str], browser: Any,
                                                         tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    base_url, token = served_api
    _ask(browser, base_url, token)
    _wait_for(browser, "!document.getElementById('answer').hidden || !document.getElementById('error').hidden")
    assert browser.find_element(By.ID, "error").is_displayed() is False, browser.find_element(By.ID, "error").text
    assert "450 operating hours" in browser.find_element(By.ID, "answer-text").text
    assert browser.find_element(By.ID, "answer-mode").text == "extractive"
    # the token's namespaces are offered to pick from (GET /v1/namespaces)
    _wait_for(browser, "document.querySelectorAll('#namespaces option').length > 0", timeout=10)
    offered = browser.execute_script("return [...document.querySelectorAll('#namespaces option')].map(o => o.value)")
    assert offered == ["demo"]
    inline = browser.find_elements(By.CSS_SELECTOR, "#answer-text button.cite")
    assert inline and inline[0].text == "[Page 4]"
    citations = browser.find_elements(By.CSS_SELECTOR, "#citations button.citation")
    assert citations[0].text == "acme_annual_report.pdf — Page 4"

    inline[0].click()
    _wait_for(browser, "document.getElementById('page-image').complete && "
                       "document.getElementById('page-image').naturalWidth > 0")
    image = browser.find_element(By.ID, "page-image")
    assert image.get_attribute("src").startswith("blob:")
    requested = image.get_attribute("data-source")
    assert requested.startswith("v1/documents/acme_annual_report.pdf/pages/4.png?") and "bbox=" in requested
    assert browser.execute_script(AMBER_PIXELS_JS) > 0.02, "the cited region is not shaded on the page image"
    assert "page 4" in browser.find_element(By.ID, "page-caption").text
    browser.save_screenshot(str(tmp_path / "answer_with_cited_page.png"))

    browser.refresh()  # the token stays for the tab (sessionStorage), so a reload does not ask for it again
    assert browser.find_element(By.ID, "token").get_attribute("value") == token


@pytest.mark.integration
@pytest.mark.parametrize(("token_of", "namespace", "shown"), [
    (lambda token: "pl_not-a-real-token", "demo", "401 (invalid_token) the bearer token is unknown or revoked"),
    (lambda token: token, "finance", "403 (forbidden) this token may not read namespace 'finance'"),
])
def test_refused_requests_show_the_reason(served_api: tuple[str, str], browser: Any, token_of: Any, namespace: str,
                                          shown: str) -> None:
    from selenium.webdriver.common.by import By

    base_url, token = served_api
    _ask(browser, base_url, token_of(token), namespace=namespace)
    _wait_for(browser, "!document.getElementById('error').hidden")
    assert shown in browser.find_element(By.ID, "error").text
    assert not browser.find_element(By.ID, "answer").is_displayed()


def _table_rows(driver: Any) -> list[list[str]]:
    return driver.execute_script(
        "return [...document.querySelectorAll('#doc-rows tr')].map(r => [...r.cells].map(c => c.textContent.trim()))")


@pytest.mark.integration
def test_documents_tab_lists_the_ingestion_report_with_filters(served_api: tuple[str, str], browser: Any,
                                                               tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    base_url, token = served_api
    browser.get(f"{base_url}/")
    browser.execute_script("sessionStorage.clear()")
    for field, value in (("token", token), ("namespace", "demo")):
        browser.find_element(By.ID, field).clear()
        browser.find_element(By.ID, field).send_keys(value)
    browser.find_element(By.ID, "tab-documents").click()
    _wait_for(browser, "document.querySelectorAll('#doc-rows tr').length > 0", timeout=30)
    assert not browser.find_element(By.ID, "question").is_displayed()  # the ask form's question is the Ask tab's
    rows = {row[0]: row for row in _table_rows(browser)}
    assert set(rows) == {"acme_annual_report.pdf", "warehouse_inspection_scan.png", "broken.pdf", "garbage.pdf"}
    report = rows["acme_annual_report.pdf"]
    assert report[1] == "indexed" and report[3] == "4" and int(report[4]) >= 1 and int(report[7]) > 0  # pages, OCR, chunks
    assert report[9]  # the model version the document was embedded with
    assert "4 documents" in browser.find_element(By.ID, "doc-summary").text
    assert "2 quarantined" in browser.find_element(By.ID, "doc-summary").text

    browser.find_element(By.ID, "doc-quarantined").click()
    _wait_for(browser, "document.querySelectorAll('#doc-rows tr').length === 2", timeout=30)
    quarantined = {row[0]: row for row in _table_rows(browser)}
    assert quarantined["broken.pdf"][1:3] == ["quarantined", "empty: the file is 0 bytes"]
    assert quarantined["garbage.pdf"][2].startswith("corrupt:")
    offered = [o.get_attribute("value") for o in Select(browser.find_element(By.ID, "doc-reason")).options]
    assert sorted(offered) == ["", "corrupt", "empty"]

    Select(browser.find_element(By.ID, "doc-reason")).select_by_value("corrupt")
    _wait_for(browser, "document.querySelectorAll('#doc-rows tr').length === 1", timeout=30)
    assert [row[0] for row in _table_rows(browser)] == ["garbage.pdf"]
    assert browser.find_element(By.ID, "doc-range").text == "1–1 of 1"
    browser.save_screenshot(str(tmp_path / "documents_tab.png"))

    browser.refresh()  # the tab is in the URL: a reload comes back to it and lists again
    _wait_for(browser, "!document.getElementById('documents-view').hidden && "
                       "document.querySelectorAll('#doc-rows tr').length > 0", timeout=30)
    browser.find_element(By.ID, "tab-ask").click()
    assert browser.find_element(By.ID, "question").is_displayed()
    assert not browser.find_element(By.ID, "documents-view").is_displayed()
