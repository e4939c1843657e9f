"""Screenshots of a Bidirectional run's backward direction (Hidden state tab, gradient view)
and of its batch-1 copy streamed one sample per call (Answers, question 8),
from the real app in headless Chromium, desktop (1280 px) and phone (390 px, a phone's user
agent: the app's phone layout).

    python bench/bidir_shots.py [--out docs] [--what flow,hidden,gradient,inference]
    python bench/bidir_shots.py --query "preset=bidirectional-chunks-stateful&layers=2" \
        --prefix stacked-bidir --what flow,hidden      # a stacked Bidirectional run

Look at the pictures before you commit them.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._server import (launch_chromium, start_server, wait_for_app_loaded,  # noqa: E402
                           wait_for_app_run)

PHONE_UA = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1")
PRESET = "bidirectional-chunks-stateful"


def _tab(page, label: str) -> None:
    page.get_by_role("tab", name=label, exact=True).click()
    wait_for_app_run(page, timeout_ms=120_000)


def _backward(page, key: str) -> None:
    radio = page.locator(f".st-key-{key}").get_by_text("backward (last step → first)")
    radio.wait_for(state="visible", timeout=120_000)
    radio.click()
    wait_for_app_run(page, timeout_ms=120_000)


def _figure(page, key: str):
    """The figure under `key`, drawn, scrolled to, with no hover label on it."""
    f = page.locator(f".st-key-{key}")
    f.locator(".main-svg").first.wait_for(state="visible", timeout=120_000)
    f.scroll_into_view_if_needed()
    page.mouse.move(2, 2)
    page.wait_for_timeout(1500)
    return f


def shoot(browser, url: str, out: Path, name: str, phone: bool, what: list[str],
          query: str = f"preset={PRESET}", prefix: str = "bidir") -> str:
    ctx = browser.new_context(viewport={"width": 390 if phone else 1280, "height": 1100 if phone else 900},
                              user_agent=PHONE_UA if phone else None, is_mobile=phone,
                              has_touch=phone,
                              device_scale_factor=1)
    page = ctx.new_page()
    if phone:  # the desktop page's link (run=...): the stored run, opened on a phone
        page.goto(url)
        wait_for_app_loaded(page)
    else:
        page.goto(f"{url}/?{query}")
        wait_for_app_loaded(page)
        page.locator(".st-key-btn_train button:visible").first.click()
    page.locator(".st-key-flow_fig .main-svg").first.wait_for(state="visible", timeout=480_000)
    wait_for_app_run(page, timeout_ms=120_000)
    link = page.url
    if "flow" in what:  # the layer shown is the top one until the user picks another
        _backward(page, "flow_direction")
        f = _figure(page, "flow_fig")
        if not phone:  # the controls, then the grid (a phone's controls fill its screen)
            controls = page.locator(".st-key-flow_layer, .st-key-flow_direction").first
            controls.evaluate("e => e.scrollIntoView({block: 'start'})")
            page.wait_for_timeout(500)
        else:
            f.evaluate("e => e.scrollIntoView({block: 'start'})")
            page.wait_for_timeout(500)
        page.screenshot(path=str(out / f"{prefix}-flow-{name}.png"))
        print("saved", out / f"{prefix}-flow-{name}.png")
    if "hidden" in what:
        _tab(page, "Hidden state")
        _backward(page, "hidden_direction")
        fig = page.locator(".st-key-hidden_fig .main-svg").first
        fig.wait_for(state="visible", timeout=60_000)
        page.mouse.move(2, 2)
        page.wait_for_timeout(1500)
        page.locator(".st-key-hidden_direction").scroll_into_view_if_needed()
        page.locator(".st-key-hidden_fig").scroll_into_view_if_needed()
        page.wait_for_timeout(500)
        page.screenshot(path=str(out / f"{prefix}-hidden-{name}.png"))
        print("saved", out / f"{prefix}-hidden-{name}.png")
    if "gradient" in what:
        _tab(page, "State flow")
        _backward(page, "flow_direction")
        page.locator(".st-key-flow_gradients label").first.click()
        wait_for_app_run(page, timeout_ms=120_000)
        g = _figure(page, "grad_fig")
        g.screenshot(path=str(out / f"{prefix}-gradient-{name}.png"))
        print("saved", out / f"{prefix}-gradient-{name}.png")
    if "inference" in what:
        _tab(page, "Answers")
        toggle = page.locator(".st-key-inference_on label").first
        toggle.scroll_into_view_if_needed()
        toggle.click()
        wait_for_app_run(page, timeout_ms=120_000)
        _figure(page, "inference_fig")
        page.screenshot(path=str(out / f"{prefix}-inference-{name}.png"))
        print("saved", out / f"{prefix}-inference-{name}.png")
    ctx.close()
    return link


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs"))
    ap.add_argument("--what", default="hidden,gradient,inference")
    ap.add_argument("--query", default=f"preset={PRESET}", help="the run's settings (URL query)")
    ap.add_argument("--prefix", default="bidir", help="file names: <prefix>-<view>-<device>.png")
    a = ap.parse_args(argv)
    server = start_server("app.py", cwd=ROOT)
    pw, browser = launch_chromium()
    try:
        what = a.what.split(",")
        link = shoot(browser, server.url, Path(a.out), "desktop", False, what, a.query, a.prefix)
        assert "run=" in link, link
        shoot(browser, link, Path(a.out), "mobile", True, what, a.query, a.prefix)
    finally:
        browser.close()
        pw.stop()
        server.stop()


if __name__ == "__main__":
    main()
