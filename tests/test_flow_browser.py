"""The State-flow view in headless Chromium against a real `streamlit run app.py`: colour by the
readout from h0, Play reveals the batches one by one (the cover over unrevealed batches shrinks,
then nothing is covered), a click on a cell follows its sequence, and a phone (390 px, a Mobile
user agent) gets fewer, larger batches. Screenshots go to test-artifacts/flow-*.png."""
from __future__ import annotations

import pytest

from bench._server import wait_for_app_loaded, wait_for_app_run
from test_browser import button


def shot(page, artifacts, name: str, selector: str | None = None) -> None:
    """The chart (or the page) as a PNG in test-artifacts/."""
    target = page.locator(selector).first if selector else page
    target.screenshot(path=str(artifacts / f"{name}.png"))

pytestmark = pytest.mark.browser

URL = "/?preset=chunks-stateful&epochs=3"
CHART = ".st-key-flow_fig [data-testid='stPlotlyChart']"
COVER_JS = """() => {
  const gd = document.querySelector('.st-key-flow_fig .js-plotly-plot');
  const t = gd && gd.data.find(d => d.name === 'not revealed yet');
  if (!t) return null;
  const xs = Array.from(t.x).filter(v => v !== null && !Number.isNaN(v));
  return xs.length ? Math.min(...xs) : -1;
}"""
TITLE_JS = """() => {
  const gd = document.querySelector('.st-key-flow_fig .js-plotly-plot');
  return gd ? gd.layout.title.text : '';
}"""


def _poll(page, js: str, pred, timeout_s: float = 30):
    """Evaluate js every 0.25 s until pred(value) holds; returns the value (fails after timeout)."""
    v = None
    for _ in range(int(timeout_s * 4)):
        v = page.evaluate(js)
        if pred(v):
            return v
        page.wait_for_timeout(250)
    raise AssertionError(f"still {v!r} after {timeout_s} s")


def _train(page, url):
    page.goto(url, wait_until="domcontentloaded")
    wait_for_app_loaded(page)
    button(page, "Train").click()
    page.locator(CHART).wait_for(state="visible", timeout=120_000)
    page.locator(".st-key-flow_fig .main-svg").first.wait_for(state="visible")
    wait_for_app_run(page, timeout_ms=60_000)


def _colour(page, label: str) -> None:
    page.locator(".st-key-flow_colour").get_by_text(label, exact=True).click()
    wait_for_app_run(page)
    page.locator(CHART).wait_for(state="visible")


def test_play_reveals_batches_and_a_click_follows_a_sequence(streamlit_server, browser_page,
                                                             artifacts):
    page = browser_page
    page.set_viewport_size({"width": 1280, "height": 1000})
    _train(page, streamlit_server + URL)
    _colour(page, "readout from h0 vs target")
    _poll(page, TITLE_JS, lambda t: "readout from h0" in t)
    # the last page: the trained model (epoch 1's first batches start untrained, near 0.5)
    thumb = page.locator(".st-key-flow_first input[type='range']")
    thumb.focus()
    thumb.press("End")
    wait_for_app_run(page)
    _poll(page, TITLE_JS, lambda t: "readout from h0" in t)
    assert page.evaluate(COVER_JS) == -1  # as drawn: every batch shown
    shot(page, artifacts, "flow-1280-readout", CHART)
    # Play: the cover over unrevealed batches starts after the first column and moves right,
    # batch by batch, until nothing is covered
    page.locator(CHART).get_by_text("▶ play").click()
    seen = []
    for _ in range(80):
        v = page.evaluate(COVER_JS)
        if v is not None and (not seen or v != seen[-1]):
            seen.append(v)
            if 8 < v < 12 and not any(8 < x < v for x in seen[:-1]):
                shot(page, artifacts, "flow-1280-playing", CHART)
        if len(seen) > 3 and v == -1:
            break
        page.wait_for_timeout(250)
    print("cover starts after column:", seen)
    revealing = [v for v in seen if v != -1]
    assert len(revealing) >= 5 and revealing == sorted(revealing) and revealing[0] < 5, seen
    assert seen[-1] == -1, seen  # the last frame reveals every batch
    # Click a cell (column 3, slot 2): its sequence is followed, in words in the title
    grid = page.locator(CHART).locator(".nsewdrag").first.bounding_box()
    n = 20
    page.mouse.click(grid["x"] + grid["width"] * 3.5 / n, grid["y"] + grid["height"] * 2.5 / 32)
    title = _poll(page, TITLE_JS, lambda t: "following s" in t)
    assert "it stays in slot 2" in title, title  # chunks in order: the sequence keeps its slot
    shot(page, artifacts, "flow-1280-follow", CHART)
    # where the gradient stops
    page.locator(".st-key-flow_gradients label").first.click()
    page.locator(".st-key-grad_fig .main-svg").first.wait_for(state="visible", timeout=30_000)
    shot(page, artifacts, "flow-1280-gradients", ".st-key-grad_fig")


def test_a_phone_gets_fewer_larger_batches(streamlit_server, browser, browser_page, artifacts):
    """Trained on a desktop page; its link (run=...) opened on a phone shows the stored run."""
    _train(browser_page, streamlit_server + URL)
    link = browser_page.url
    assert "run=" in link
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                              user_agent="Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) "
                                         "AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148")
    ctx.set_default_timeout(30_000)
    page = ctx.new_page()
    try:
        page.goto(link, wait_until="domcontentloaded")
        wait_for_app_loaded(page)
        page.locator(CHART).wait_for(state="visible", timeout=60_000)
        ticks = page.locator(CHART).locator(".xtick text").all_text_contents()
        assert 0 < len(ticks) <= 8, ticks
        shot(page, artifacts, "flow-390", CHART)
        _colour(page, "readout from h0 vs target")
        shot(page, artifacts, "flow-390-readout", CHART)
    finally:
        ctx.close()
