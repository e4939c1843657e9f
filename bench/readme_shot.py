"""The README's header screenshot, from the real app in headless Chromium.

    python bench/readme_shot.py [--preset chunks-stateful] [--out docs/screenshot.png]

Starts `streamlit run app.py` on loopback, opens the preset's link at 1400x1700, presses Train,
waits for the state flow and saves a screenshot of the page. Look at the picture before you
commit it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._server import (launch_chromium, start_server, wait_for_app_loaded,  # noqa: E402
                           wait_for_app_run)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="chunks-stateful")
    ap.add_argument("--out", default=str(ROOT / "docs" / "screenshot.png"))
    ap.add_argument("--width", type=int, default=1400)
    ap.add_argument("--height", type=int, default=1700)
    a = ap.parse_args(argv)
    server = start_server("app.py", cwd=ROOT)
    pw, browser = launch_chromium()
    try:
        page = browser.new_page(viewport={"width": a.width, "height": a.height})
        page.goto(f"{server.url}/?preset={a.preset}")
        wait_for_app_loaded(page)
        page.get_by_role("button", name="Train", exact=True).first.click()
        page.locator(".st-key-flow_fig .main-svg").first.wait_for(state="visible", timeout=180_000)
        wait_for_app_run(page, timeout_ms=120_000)
        page.mouse.move(a.width - 5, a.height - 5)  # no tooltip over the picture
        page.wait_for_timeout(1500)  # plotly's second draw after mount
        page.screenshot(path=a.out)
        print(f"saved {a.out}")
    finally:
        browser.close()
        pw.stop()
        server.stop()


if __name__ == "__main__":
    main()
