"""The app in a real browser: ``assetlens ui`` on a free localhost port, driven by headless Chromium.

The server is reached as a user reaches it: through the URL with the access token that the command
printed.

Needs Debian's chromium and chromium-driver (scripts/test.sh installs them) and
Selenium. Screenshots of each step are saved in test-artifacts/browser/.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
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

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
WAIT_S = 90
CARD = "div[class*='st-key-card-']"
# File names that Markdown would make a link, a remote image or an autolink: copies of one photo.
CRAFTED = ("[x](https:evil.example).jpg", "![](https:evil.example).jpg", "www.evil.example.jpg")
BULK_COPIES = 60  # per catalogue JPEG, for an index run long enough to reload the page during it


def _need(ok: bool, what: str) -> None:
    """Skip on a developer machine without the browser; in CI a missing browser is a failure."""
    if not ok:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(f"{what} is not installed; run scripts/test.sh")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str  # without the token
    token: str
    stub: GeminiStub
    out: Path
    log: Path
    crafted: Path  # the folder of CRAFTED, indexed, and the photo they copy
    photo: Path


@pytest.fixture
def server(tmp_path: Path, catalogue: list[tuple[Path, object]], catalogue_dir: Path) -> Iterator[Server]:
    """``assetlens ui`` on a library of the catalogue and of CRAFTED."""
    db, out, log = tmp_path / "lib.db", tmp_path / "generated", tmp_path / "server.log"
    photo = next(path for path, _ in catalogue if path.suffix == ".jpg" and "mug" in path.name)
    crafted = tmp_path / "crafted"
    crafted.mkdir()
    for i, name in enumerate(CRAFTED):  # one more byte each: distinct files, the same picture
        (crafted / name).write_bytes(photo.read_bytes() + b"\x01" * (i + 1))
    pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    # Indexed by another process that then exits: Milvus Lite lets one process at a time hold a library.
    for folder in (catalogue_dir, crafted):
        command = [sys.executable, "-m", "assetlens", "index", str(folder), "--db", str(db), "--model", "demo"]
        subprocess.run(
            [*command, "--device", "cpu"],
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
            [token] = re.findall(r"open http://127\.0\.0\.1:\d+/\?token=(\S+)", log.read_text())
            yield Server(url, token, stub, out, log, crafted, photo)
        finally:  # the server and anything it started: its own process group
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


class Browser:
    """Headless Chromium on the app, with the waits the tests need."""

    def __init__(self, profile: Path) -> None:
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
            f"--user-data-dir={profile}",
            "--window-size=1400,1800",
        ):
            options.add_argument(flag)
        self.driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
        self.wait = WebDriverWait(self.driver, WAIT_S, ignored_exceptions=(StaleElementReferenceException,))

    def css(self, selector: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def idle(self) -> None:
        """Wait for the script run to finish (Streamlit shows a status widget while it runs)."""
        time.sleep(0.3)
        self.wait.until(lambda d: not self.css("[data-testid='stStatusWidget']"))

    def shot(self, name: str) -> None:
        self.driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))

    def tab(self, name: str) -> None:
        [tab] = [t for t in self.css("[role='tab']") if t.text.strip() == name]
        tab.click()

    def text(self) -> str:
        return str(self.driver.find_element(By.TAG_NAME, "body").text)


@pytest.fixture
def browser(server: Server) -> Iterator[Browser]:
    _need(bool(CHROMIUM and CHROMEDRIVER), "Debian's chromium and chromium-driver")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    b = Browser(server.out.parent / "chromium-profile")
    try:
        yield b
    finally:
        b.driver.quit()


def test_search_more_like_this_and_generate_in_chromium(server: Server, browser: Browser) -> None:
    css, idle, shot, wait = browser.css, browser.idle, browser.shot, browser.wait

    def watch_card() -> WebElement:
        """The first result card showing a watch (by file name), else the first card."""
        cards = css(CARD)
        return next((c for c in cards if "watch" in c.text), cards[0])

    try:
        browser.driver.get(f"{server.url}/?token={server.token}")
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

        browser.tab("Generate")
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
        browser.driver.execute_script("document.querySelector(\"div[class*='st-key-result-']\").scrollIntoView()")
        time.sleep(0.5)
        shot("3-generate")
        page = browser.driver.page_source
    except Exception:
        shot("failed")  # what the page showed when a step timed out
        raise

    [sent] = server.stub.requests
    assert sent.prompt == "A summer promo of this watch on a sunny beach towel" and len(sent.images) == 2
    [gen] = load_gallery(server.out)
    assert [Path(r.path).name for r in gen.references] == [p.split("·", 1)[1].strip() for p in picked]
    assert gen.image.is_file()
    assert "More like" in page and "Download PNG" in page
    assert STUB_KEY not in page and STUB_KEY not in server.log.read_text()


def test_token_escaped_names_and_background_indexing_in_chromium(
    server: Server, browser: Browser, catalogue: list[tuple[Path, object]], tmp_path: Path
) -> None:
    css, idle, shot, wait = browser.css, browser.idle, browser.shot, browser.wait
    jpegs = [path for path, _ in catalogue if path.suffix == ".jpg"]
    bulk = tmp_path / "bulk"
    bulk.mkdir()
    for i in range(BULK_COPIES):  # one more byte each: every copy is a new file to encode
        for path in jpegs:
            (bulk / f"{i:02d}-{path.name}").write_bytes(path.read_bytes() + bytes(i + 1))
    total = BULK_COPIES * len(jpegs)
    try:
        for query in ("", "?token=", "?token=wrong", f"?token={server.token}x"):
            browser.driver.get(f"{server.url}/{query}")
            wait.until(lambda d: "Open the URL that assetlens ui printed" in browser.text())
            idle()
            assert not css("input") and not css("img") and not css("[role='tab']"), query
        shot("4-no-token")

        # the right token; the crafted names, found by their photo, are shown as text
        url = f"{server.url}/?token={server.token}"
        browser.driver.get(url)
        wait.until(lambda d: css("input[type='file']"))[0].send_keys(str(server.photo))
        wait.until(lambda d: len(css(CARD + " img")) == 12)
        idle()
        shot("5-crafted-names")
        shown = [c.text.splitlines()[0].split("·", 1)[1].strip() for c in css(CARD)]
        cards = [name.replace("\u2060", "") for name in shown]  # the word joiner that keeps www.x from a link
        # the photo (the example shows itself, as in the app's own test) and its copies: the same pixels, tied
        assert set(cards[: len(CRAFTED) + 1]) == {*CRAFTED, server.photo.name}
        assert not css("a[href*='evil'], img[src*='evil'], [srcset*='evil']")
        assert "evil.example" not in "".join(a.get_attribute("href") or "" for a in css("a"))

        # an index run goes on through a query typed and a page reload, and shows its progress after them
        browser.tab("Library")
        box = wait.until(lambda d: css("input[aria-label='Folder to index']"))[0]
        box.send_keys(str(bulk), Keys.ENTER)
        idle()
        wait.until(lambda d: css("div.st-key-index_go button:not([disabled])"))[0].click()
        wait.until(lambda d: f"of {total} new or changed files" in browser.text())
        browser.driver.refresh()
        wait.until(lambda d: css("[role='tab']"))
        browser.tab("Library")
        wait.until(lambda d: re.search(rf"Indexing .*bulk: \d+ of {total} new or changed files", browser.text()))
        shot("6-progress-after-reload")
        browser.tab("Search")
        css("input[aria-label='Search']")[0].send_keys("a watch", Keys.ENTER)
        wait.until(lambda d: len(css(CARD + " img")) == 12)
        browser.tab("Library")
        wait.until(lambda d: f"{total} indexed, 0 unchanged" in browser.text())
        idle()
        shot("7-indexed")
        metrics = [m.text for m in css("[data-testid='stMetricValue']")]
    except Exception:
        shot("failed")
        raise
    assert metrics[0] == str(len(catalogue) + len(CRAFTED) + total)
