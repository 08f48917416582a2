"""The web page at GET /, driven in a real headless Chromium (Debian's /usr/bin/chromium via Playwright).

A real uvicorn server on 127.0.0.1 (free port, background thread) serves the tiny model; the browser
types a text, clicks Classify and must show one of the model's labels with probability bars. Screenshots
go to $BERTCLS_SCREENSHOT_DIR when set (CI keeps them as artifacts), else to the test's tmp dir.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium: apt-get install -y chromium"
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_server(clf, model_dir: Path) -> Iterator[str]:
    import uvicorn

    from bertcls.deploy.serve import ServeConfig, create_app

    port = free_port()
    app = create_app(clf, ServeConfig(model_dir=str(model_dir), port=port))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@pytest.fixture(scope="module")
def clf(trained_tiny):
    from bertcls import TextClassifier

    return TextClassifier.from_pretrained(trained_tiny, device="cpu")


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield b
        b.close()


def shot_dir(tmp_path: Path) -> Path:
    d = Path(os.environ.get("BERTCLS_SCREENSHOT_DIR") or tmp_path)
    d.mkdir(parents=True, exist_ok=True)
    return d


def test_page_classifies_a_text(browser, clf, trained_tiny, tmp_path, monkeypatch):
    monkeypatch.delenv("BERTCLS_API_TOKEN", raising=False)
    with running_server(clf, trained_tiny) as url:
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url + "/")
        assert page.is_hidden("#token-box")
        page.fill("#texts", "the film was great great and lovely")
        page.click("#classify")
        page.wait_for_selector(".result .label", timeout=30_000)
        label = page.text_content(".result .label").strip()
        assert label in clf.labels
        assert label == clf.predict("the film was great great and lovely")
        bars = page.query_selector_all(".result .bar")
        assert len(bars) == len(clf.labels)
        widths = [
            float(b.query_selector(".fill").get_attribute("style").split(":")[1].strip(" %;")) for b in bars
        ]
        assert abs(sum(widths) - 100) < 0.5 and widths[0] >= widths[1]  # best label first, probabilities
        page.wait_for_function("document.getElementById('model-name').textContent.includes('tiny')")
        shot = shot_dir(tmp_path) / "webpage-classify.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.read_bytes()[:4] == b"\x89PNG"
        assert not errors, errors
        page.close()


def test_page_with_token(browser, clf, trained_tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("BERTCLS_API_TOKEN", "page-token")
    with running_server(clf, trained_tiny) as url:
        page = browser.new_page()
        page.goto(url + "/")
        assert page.is_visible("#token")
        page.fill("#texts", "awful awful plot")
        page.click("#classify")
        page.wait_for_selector("#status.error", timeout=30_000)
        assert "Token" in page.text_content("#status")
        page.fill("#token", "page-token")
        page.click("#classify")
        page.wait_for_selector(".result .label", timeout=30_000)
        assert page.text_content(".result .label").strip() in clf.labels
        page.screenshot(path=str(shot_dir(tmp_path) / "webpage-token.png"), full_page=True)
        page.close()


def test_page_explains_a_prediction(browser, clf, trained_tiny, tmp_path, monkeypatch):
    """ "why?" under the bars asks /v1/explain and highlights the user's own words, scored."""
    monkeypatch.delenv("BERTCLS_API_TOKEN", raising=False)
    text = "the film was great great and lovely"
    with running_server(clf, trained_tiny) as url:
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url + "/")
        page.fill("#texts", text)
        page.click("#classify")
        page.click(".result .why-button", timeout=30_000)
        page.wait_for_selector(".result .why mark", timeout=30_000)
        marks = page.query_selector_all(".result .why mark")
        assert [m.text_content() for m in marks] == text.split()  # the user's words, in order
        expected = clf.explain(text).targets[0].scores
        shown = [float(m.get_attribute("data-score")) for m in marks]
        assert shown == pytest.approx(expected, abs=1e-4)
        assert clf.predict(text) in page.text_content(".result .why")
        page.screenshot(path=str(shot_dir(tmp_path) / "webpage-explain.png"), full_page=True)
        assert not errors, errors
        page.close()
