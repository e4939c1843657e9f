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


OVERLAPS_JS = """() => {
  const gd = document.querySelector('.st-key-flow_fig .js-plotly-plot');
  const box = el => el.getBoundingClientRect();
  const hit = (a, b) => a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1
                        && b.top < a.bottom - 1;
  const named = (sel, name) => Array.from(gd.querySelectorAll(sel)).map(e => [name, box(e)]);
  // the play and speed buttons, the slider's label and rail, the legend
  const parts = [...named('.updatemenu-button', 'button'),
                 ...named('.slider-currentvalue', 'slider label'),
                 ...named('.slider-rail-rect', 'slider'), ...named('.legend .bg', 'legend')];
  const out = [];
  for (let i = 0; i < parts.length; i++)
    for (let j = i + 1; j < parts.length; j++)
      if (hit(parts[i][1], parts[j][1])) out.push(parts[i][0] + ' / ' + parts[j][0]);
  // every cell label against every carry arrowhead and target square
  const labels = Array.from(gd.querySelectorAll('.hm text, .heatmaplayer text')).map(box);
  const marks = Array.from(gd.querySelectorAll('.scatterlayer .points path')).map(box)
    .filter(b => b.width > 2 && b.width < 20);
  let covered = 0;
  for (const l of labels) for (const m of marks) if (hit(l, m)) covered++;
  return {overlaps: out, labels: labels.length, marks: marks.length, covered,
          width: gd.getBoundingClientRect().width,
          yticks: Array.from(gd.querySelectorAll('.ytick text')).map(t => t.textContent)};
}"""


def _phone(browser):
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                              has_touch=True,
                              user_agent="Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) "
                                         "AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148")
    ctx.set_default_timeout(30_000)
    return ctx


def _drawn(page) -> dict:
    page.locator(CHART).wait_for(state="visible", timeout=60_000)
    page.locator(".st-key-flow_fig .main-svg").first.wait_for(state="visible")
    page.locator(CHART).scroll_into_view_if_needed()
    return page.evaluate(OVERLAPS_JS)


def test_a_phone_gets_fewer_larger_batches_and_nothing_covers_a_label(streamlit_server, browser,
                                                                     browser_page, artifacts):
    """Trained on a desktop page; its link (run=...) opened on a phone shows the stored run:
    five batches, bare slot numbers, no button on the slider's label, no arrowhead or target
    square on a cell's label, in both colourings and in large type."""
    _train(browser_page, streamlit_server + URL)
    link = browser_page.url
    assert "run=" in link
    desk = _drawn(browser_page)
    assert desk["overlaps"] == [] and desk["covered"] == 0, desk
    browser_page.locator(".st-key-flow_large label").first.click()  # projector on a desktop
    wait_for_app_run(browser_page)
    desk = _drawn(browser_page)
    assert desk["overlaps"] == [] and desk["covered"] == 0, ("large", desk)
    assert len(browser_page.locator(CHART).locator(".xtick text").all_text_contents()) == 8
    shot(browser_page, artifacts, "flow-1400-large", CHART)
    ctx = _phone(browser)
    page = ctx.new_page()
    try:
        page.goto(link, wait_until="domcontentloaded")
        wait_for_app_loaded(page)
        seen = _drawn(page)
        ticks = page.locator(CHART).locator(".xtick text").all_text_contents()
        assert 0 < len(ticks) <= 5, ticks  # a desktop page shows 20
        assert page.locator(".st-key-flow_compact input").is_checked()  # on by itself
        assert seen["yticks"][:2] == ["0", "1"], seen
        assert seen["width"] <= 390
        assert seen["labels"] >= 5 * 10 and seen["marks"] > 0, seen
        assert seen["overlaps"] == [] and seen["covered"] == 0, seen
        shot(page, artifacts, "flow-390", CHART)
        for label in ("readout from h0 vs target", "|h0|"):
            _colour(page, label)
            seen = _drawn(page)
            assert seen["overlaps"] == [] and seen["covered"] == 0, (label, seen)
        shot(page, artifacts, "flow-390-norm", CHART)
        page.locator(".st-key-flow_large label").first.click()  # projector: large type
        wait_for_app_run(page)
        seen = _drawn(page)
        assert seen["overlaps"] == [] and seen["covered"] == 0, ("large", seen)
        size = page.locator(CHART).locator(".xtick text").first.evaluate(
            "t => parseFloat(getComputedStyle(t).fontSize)")
        assert size >= 15, size  # 10 px without large type
        shot(page, artifacts, "flow-390-large", CHART)
    finally:
        ctx.close()


def test_on_a_phone_the_sidebar_gets_out_of_the_way_after_train(streamlit_server, browser):
    """A phone opens the sidebar to press Train (it covers the page); after Train it closes by
    itself and the run's flow is on screen. A desktop's sidebar stays (see the next test)."""
    ctx = _phone(browser)
    page = ctx.new_page()
    sidebar = page.locator("[data-testid='stSidebar']")
    try:
        page.goto(streamlit_server + URL, wait_until="domcontentloaded")
        wait_for_app_loaded(page)
        assert sidebar.get_attribute("data-collapsed") == "true"  # a phone starts without it
        page.locator("[data-testid='stExpandSidebarButton']").click()
        _poll(page, "() => document.querySelector(\"[data-testid='stSidebar']\")"
                    ".getAttribute('data-collapsed')", lambda v: v == "false")
        # (a phone's page holds a second, hidden Train button: click the one on screen)
        page.locator(".st-key-btn_train button:visible").first.click()
        _poll(page, "() => document.querySelector(\"[data-testid='stSidebar']\")"
                    ".getAttribute('data-collapsed')", lambda v: v == "true")
        page.locator(CHART).wait_for(state="visible", timeout=120_000)
        wait_for_app_run(page, timeout_ms=60_000)
        assert sidebar.get_attribute("data-collapsed") == "true"
    finally:
        ctx.close()


def test_on_a_desktop_the_sidebar_stays_after_train(streamlit_server, browser_page):
    page = browser_page
    _train(page, streamlit_server + URL)
    assert page.locator("[data-testid='stSidebar']").get_attribute("data-collapsed") == "false"
