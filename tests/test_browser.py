"""The app in a real browser: ``assetlens ui`` on a free localhost port, driven by headless Chromium.

Needs Debian's chromium and chromium-driver (scripts/test.sh installs them) and
Selenium. Screenshots of each step are saved in test-artifacts/browser/.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from gemini_stub import STUB_KEY, GeminiStub
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from assetlens.engine.generate import load_gallery

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
WAIT_S = 90
CARD = "div[class*='st-key-card-']"


def _need(ok: bool, what: str) -> None:
    """Skip on a developer machine without the browser; in CI a missing browser is a failure."""
    if not ok:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(f"{what} is not installed; run scripts/test.sh")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path, catalogue_dir: Path) -> Iterator[tuple[str, GeminiStub, Path, Path]]:
    """(app URL, Gemini stub, output folder, server log) for a library of the catalogue."""
    db, out, log = tmp_path / "lib.db", tmp_path / "generated", tmp_path / "server.log"
    pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    # Indexed by another process that then exits: Milvus Lite lets one process at a time hold a library.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "assetlens",
            "index",
            str(catalogue_dir),
            "--db",
            str(db),
            "--model",
            "demo",
            "--device",
            "cpu",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": pythonpath},
        check=True,
        capture_output=True,
        timeout=WAIT_S * 2,
    )
    port = free_port()
    with GeminiStub() as stub, open(log, "wb") as log_file:
        env = {**os.environ, "GEMINI_API_KEY": STUB_KEY, "GOOGLE_GEMINI_BASE_URL": stub.url, "PYTHONPATH": pythonpath}
        env.pop("GOOGLE_API_KEY", None)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "assetlens",
                "ui",
                "--db",
                str(db),
                "--model",
                "demo",
                "--device",
                "cpu",
                "--out",
                str(out),
                "--port",
                str(port),
            ],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + WAIT_S
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                        if answer.read() == b"ok":
                            break
                except OSError:
                    pass
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "the app did not come up:\n" + log.read_text()
                time.sleep(0.5)
            yield url, stub, out, log
        finally:  # the server and anything it started: its own process group
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def test_search_more_like_this_and_generate_in_chromium(server: tuple[str, GeminiStub, Path, Path]) -> None:
    _need(bool(CHROMIUM and CHROMEDRIVER), "Debian's chromium and chromium-driver")
    url, stub, out, log = server
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={out.parent / 'chromium-profile'}",
        "--window-size=1400,1800",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    wait = WebDriverWait(driver, WAIT_S, ignored_exceptions=(StaleElementReferenceException,))

    def css(selector: str) -> list[WebElement]:
        return driver.find_elements(By.CSS_SELECTOR, selector)

    def idle() -> None:
        """Wait for the script run to finish (Streamlit shows a status widget while it runs)."""
        time.sleep(0.3)
        wait.until(lambda d: not css("[data-testid='stStatusWidget']"))

    def watch_card() -> WebElement:
        """The first result card showing a watch (by file name), else the first card."""
        cards = css(CARD)
        return next((c for c in cards if "watch" in c.text), cards[0])

    def shot(name: str) -> None:
        driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))

    try:
        driver.get(url)
        box = wait.until(lambda d: css("input[aria-label='Search']"))[0]
        box.send_keys("a watch", Keys.ENTER)
        wait.until(lambda d: len(css(CARD + " img")) == 12)
        idle()
        shot("1-search")

        first = watch_card()
        picked = [first.text.splitlines()[0]]
        first.find_element(By.CSS_SELECTOR, "div[class*='st-key-ref-'] label").click()
        idle()
        watch_card().find_element(By.CSS_SELECTOR, "div[class*='st-key-like-'] button").click()
        wait.until(lambda d: any("More like" in p.text for p in css("p")))
        wait.until(lambda d: len(css(CARD + " img")) == 12)
        idle()
        second = watch_card()
        picked.append(second.text.splitlines()[0])
        second.find_element(By.CSS_SELECTOR, "div[class*='st-key-ref-'] label").click()
        idle()
        wait.until(lambda d: any("2 picked as references" in p.text for p in css("p")))
        shot("2-more-like-this")

        [tab] = [t for t in css("[role='tab']") if t.text.strip() == "Generate"]
        tab.click()
        prompt = wait.until(lambda d: css("textarea[aria-label='Prompt']"))[0]
        prompt.send_keys("A summer promo of this watch on a sunny beach towel", Keys.CONTROL, Keys.ENTER)
        idle()
        wait.until(lambda d: css("div.st-key-generate button:not([disabled])"))[0].click()
        wait.until(lambda d: css("div[class*='st-key-result-'] img"))
        idle()
        wait.until(
            lambda d: d.execute_script(
                "return [...document.querySelectorAll(\"div[class*='st-key-result-'] img\")]"
                ".every(img => img.complete && img.naturalWidth > 0)"
            )
        )
        driver.execute_script("document.querySelector(\"div[class*='st-key-result-']\").scrollIntoView()")
        time.sleep(0.5)
        shot("3-generate")
        page = driver.page_source
    except Exception:
        shot("failed")  # what the page showed when a step timed out
        raise
    finally:
        driver.quit()

    [sent] = stub.requests
    assert sent.prompt == "A summer promo of this watch on a sunny beach towel" and len(sent.images) == 2
    [gen] = load_gallery(out)
    assert [Path(r.path).name for r in gen.references] == [p.split("·", 1)[1].strip() for p in picked]
    assert gen.image.is_file()
    assert "More like" in page and "Download PNG" in page
    assert STUB_KEY not in page and STUB_KEY not in log.read_text()
