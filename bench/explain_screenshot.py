"""A screenshot of the service page explaining a prediction (issue 13's evidence): serves MODEL_DIR on a
free local port, types the texts, clicks Classify, then "why?" on every result, and saves a PNG.

    python bench/explain_screenshot.py runs/sst2-minilm --out bench/results/explain_page.png \
        --text "a gorgeous, witty, seductive movie" --text "the plot is nothing but boilerplate clichés"

Needs Debian's chromium (/usr/bin/chromium) and the dev extra (playwright).
"""

from __future__ import annotations

import argparse
import socket
import threading
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir")
    p.add_argument("--out", required=True)
    p.add_argument("--text", action="append", required=True)
    a = p.parse_args()

    import uvicorn
    from playwright.sync_api import sync_playwright

    from bertcls import TextClassifier
    from bertcls.deploy.serve import ServeConfig, create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    clf = TextClassifier.from_pretrained(a.model_dir, device="cpu")
    app = create_app(clf, ServeConfig(model_dir=a.model_dir, port=port))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox"], headless=True
        )
        page = browser.new_page(viewport={"width": 900, "height": 700})
        page.goto(f"http://127.0.0.1:{port}/")
        page.fill("#texts", "\n".join(a.text))
        page.click("#classify")
        page.wait_for_selector(".result .why-button", timeout=60_000)
        for i in range(len(a.text)):  # the page's CSP forbids eval, so no wait_for_function
            page.click(".result .why-button", timeout=60_000)
            page.locator(".result .why").nth(i).wait_for(timeout=60_000)
        page.screenshot(path=a.out, full_page=True)
        browser.close()
    server.should_exit = True
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
