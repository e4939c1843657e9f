"""End to end: a real `streamlit run app.py`, driven by headless Debian Chromium (Playwright).

Flow: open a preset by URL -> Train -> the State flow grid, the curves and an exact carry check
appear -> Compare -> stateful and stateless curves -> reopen the page's URL in a fresh session:
same settings. Also: picking a preset in the sidebar selectbox loads it and updates the URL.

Screenshots of every step go to test-artifacts/ (gitignored). Waits are generous (CI has 2 slow
cores and the first run imports TensorFlow and compiles); the whole file takes ~1 minute here.
"""
from __future__ import annotations

import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from bench._server import wait_for_app_loaded, wait_for_app_run
from models.presets import PRESETS

pytestmark = pytest.mark.browser

T0 = time.monotonic()
PRESET = "seed004-streams-stateful"
TRAIN_TIMEOUT_MS = 120_000  # first run of the server: TensorFlow import + XLA compile + training
RUN_TIMEOUT_MS = 90_000

SETTINGS_JS = """() => {
  const out = {};
  for (const input of document.querySelectorAll('[data-testid="stSidebar"] input')) {
    const box = input.closest('[data-testid="stElementContainer"]');
    const lab = box && box.querySelector('[data-testid="stWidgetLabel"]');
    const name = (input.getAttribute('aria-label') || (lab && lab.innerText) ||
                  (box && box.innerText) || '').trim();
    out[name] = input.type === 'checkbox' ? input.checked : input.value;
  }
  return out;
}"""


def settings(page) -> dict:
    """Every sidebar widget's label -> shown value."""
    return page.evaluate(SETTINGS_JS)


def query(url: str) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def shot(page, artifacts, name: str) -> None:
    print(f"{time.monotonic() - T0:6.1f} s  {name}")
    page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)


def open_app(page, url: str) -> None:
    page.goto(url, wait_until="domcontentloaded")
    wait_for_app_loaded(page)


def button(page, label: str):
    """A sidebar button, by its widget key (btn_train, ...) or else by its label's first word."""
    by_key = page.locator(f".st-key-btn_{label.lower()} button")
    by_name = page.get_by_test_id("stSidebar").get_by_role(
        "button", name=re.compile(rf"^{label}\b"))
    return by_key.or_(by_name).first


def tab(page, label: str):
    return page.get_by_role("tab", name=label, exact=True)


def show_tab(page, label: str) -> None:
    t = tab(page, label)
    if t.get_attribute("aria-selected") != "true":
        t.click()
    page.wait_for_function(
        "l => [...document.querySelectorAll('[role=tab]')].some("
        "t => t.innerText.trim() === l && t.getAttribute('aria-selected') === 'true')", arg=label)


def legend_names(page, chart_key: str) -> list[str]:
    return page.locator(f".st-key-{chart_key} .legendtext").evaluate_all(
        "els => els.map(e => e.textContent.trim())")


def test_train_compare_and_share(streamlit_server, browser_page, artifacts):
    page = browser_page
    open_app(page, f"{streamlit_server}/?preset={PRESET}&epochs=3")
    shot(page, artifacts, "01-loaded")
    before = settings(page)
    assert before["Preset"] == PRESETS[PRESET].title
    assert before["Epochs"] == "3" and before["Layout"] == "steps" and before["Stateful"] is True
    assert "epochs" in query(page.url)

    # Train: the live panel runs, then the flow grid, the exact carry check and the curves.
    button(page, "Train").click()
    flow = page.locator(".st-key-flow_fig [data-testid='stPlotlyChart']")
    flow.wait_for(state="visible", timeout=TRAIN_TIMEOUT_MS)
    wait_for_app_run(page)
    flow.locator(".main-svg").first.wait_for(state="visible")
    shot(page, artifacts, "02-trained-flow")
    carry = page.get_by_text(re.compile(r"^Carry check:")).first
    carry.wait_for(state="visible")
    text = carry.inner_text()
    assert re.search(r"largest \|h0\[k\+1\]−hT\[k\]\| = 0 \(exact\)", text), text
    assert re.search(r"largest \|h0\| = 0 \(exact\)", text), text
    assert re.search(r"\b0 contaminated", text), text
    # Hovering a cell shows where its state came from and its h vector.
    flow.scroll_into_view_if_needed()  # below the colour and follow controls, as a user scrolls
    grid = flow.locator(".nsewdrag").first.bounding_box()
    page.mouse.move(grid["x"] + grid["width"] * 2.5 / 20, grid["y"] + grid["height"] * 1.5 / 32)
    hover = flow.locator(".hoverlayer .hovertext").first
    hover.wait_for(state="visible")
    tip = hover.text_content()
    assert "carried: → continues the same sequence" in tip and "hT:" in tip and "slot 1" in tip, tip

    show_tab(page, "Curves")
    page.locator(".st-key-epoch_fig .main-svg").first.wait_for(state="visible")
    page.locator(".st-key-batch_fig .main-svg").first.wait_for(state="visible")
    shot(page, artifacts, "03-trained-curves")

    # Compare: the same settings stateful and stateless, both curves in one chart.
    button(page, "Compare").click()
    # Both runs collected: the page offers to show either.
    page.get_by_test_id("stRadio").get_by_text("Stateless", exact=True).wait_for(
        state="visible", timeout=RUN_TIMEOUT_MS)
    wait_for_app_run(page)
    show_tab(page, "Curves")
    compare = page.locator(".st-key-compare_fig .main-svg").first
    compare.wait_for(state="visible")
    page.wait_for_function(
        "() => document.querySelectorAll('.st-key-compare_fig .legendtext').length >= 2",
        timeout=30_000)
    names = legend_names(page, "compare_fig")
    assert "stateful" in names and "stateless" in names, names
    shot(page, artifacts, "04-compare")

    # Share: the page's share link (the address bar too) holds the settings; a fresh session
    # opening it shows the same.
    url = page.get_by_test_id("stCode").filter(has_text="epochs=3").first.inner_text().strip()
    assert url.startswith(streamlit_server + "/?") and query(url) == query(page.url), \
        (url, page.url)
    assert query(url).get("epochs") == "3", url
    page2 = page.context.browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    try:
        open_app(page2, url)
        shot(page2, artifacts, "05-reopened")
        after = settings(page2)
        assert {k: v for k, v in after.items() if k != "Preset"} == \
            {k: v for k, v in before.items() if k != "Preset"}
        assert not page2.get_by_test_id("stAlert").filter(
            has_text="could not be used").count()
    finally:
        page2.context.close()


def test_pick_preset_in_sidebar(streamlit_server, browser_page, artifacts):
    page = browser_page
    open_app(page, f"{streamlit_server}/?preset=chunks-stateful")
    assert settings(page)["Layout"] == "chunks"
    assert query(page.url).get("preset") == "chunks-stateful"

    page.get_by_role("combobox", name="Preset").click()
    page.get_by_role("option", name=PRESETS[PRESET].title, exact=True).click()
    wait_for_app_run(page)
    page.wait_for_function(f"() => location.search.includes('preset={PRESET}')", timeout=30_000)
    shot(page, artifacts, "06-picked-preset")
    s = settings(page)
    cfg = PRESETS[PRESET].config
    assert s["Preset"] == PRESETS[PRESET].title
    assert (s["Layout"], s["Batch size"], s["Epochs"], s["Stateful"]) == \
        (cfg.layout, str(cfg.batch_size), str(cfg.epochs), cfg.stateful)
    assert query(page.url) == {"preset": PRESET}


def server_line(page) -> str:
    loc = page.get_by_text(re.compile(r"^Server: \d+ run\(s\) training"))
    loc.first.wait_for(state="visible")
    return loc.first.inner_text()


def test_closing_the_tab_stops_its_job(streamlit_server, browser_page, artifacts):
    """A student closes the tab mid-run: the server stops that job (it does not train on)."""
    page = browser_page
    open_app(page, f"{streamlit_server}/?preset={PRESET}&epochs=500&seed=77")  # ~10 s of work
    button(page, "Train").click()
    page.get_by_text(re.compile(r"epoch \d+/500")).first.wait_for(state="visible",
                                                                  timeout=TRAIN_TIMEOUT_MS)
    watcher = page.context.browser.new_context().new_page()
    try:
        open_app(watcher, streamlit_server)
        assert server_line(watcher).startswith("Server: 1 run(s) training"), server_line(watcher)
        page.close()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 10:
            watcher.reload()
            wait_for_app_loaded(watcher)
            if server_line(watcher).startswith("Server: 0 run(s) training"):
                break
        took = time.monotonic() - t0
        shot(watcher, artifacts, "07-after-close")
        assert server_line(watcher).startswith("Server: 0 run(s) training"), \
            f"job still training {took:.1f} s after its tab closed"
        print(f"job gone {took:.1f} s after the tab closed (including page reloads)")
    finally:
        watcher.context.close()


def test_a_hostile_link_renders_no_markup(streamlit_server, browser_page, artifacts):
    """Markdown, a bare address, KaTeX and HTML in a link's values and keys: the warning quotes
    them as text (ui/safe.py), and the page holds no link, image, math or bold from them."""
    from urllib.parse import quote
    page = browser_page
    # Each short enough to be quoted whole (a message quotes at most 40 characters).
    marks, link, bare = "**bold** $x^2$ <b>h</b> :red[r]", "[click me](https://evil.example/p)", \
        "www.evil.example"
    open_app(page, f"{streamlit_server}/?preset={quote(marks)}&{quote(link)}=1&units={quote(bare)}")
    alerts = page.locator("[data-testid='stAlert']")
    alerts.first.wait_for(state="visible")
    shot(page, artifacts, "hostile-link")
    text = " ".join(alerts.all_inner_texts())
    for s in (marks, link, bare):
        assert s in text, (s, text)  # quoted, as text
    main = page.locator("[data-testid='stMain']")
    assert main.locator("a[href*='evil']").count() == 0
    for sel in (".katex", "[data-testid='stAlert'] strong", "[data-testid='stAlert'] img",
                "[data-testid='stAlert'] b"):
        assert main.locator(sel).count() == 0, sel


def _type_number(page, label: str, value: int) -> None:
    """Type into a sidebar number input and leave it, as a user does (Tab commits it)."""
    box = page.get_by_test_id("stSidebar").get_by_label(label, exact=True)
    box.scroll_into_view_if_needed()
    box.fill(str(value))
    box.press("Tab")
    wait_for_app_run(page)


def test_typed_settings_stay_and_are_what_trains(streamlit_server, browser_page, artifacts):
    """The sidebar widgets are given their settings as their own defaults too (ui/settings.py):
    values a user types stay put over the reruns that follow, and Train trains them (the
    address bar gets run=<id> only when the run shown has the sidebar's settings)."""
    page = browser_page
    open_app(page, f"{streamlit_server}/?preset={PRESET}&epochs=2")
    _type_number(page, "Units", 7)
    _type_number(page, "Seed", 41)
    page.get_by_test_id("stSidebar").get_by_text("Stateful", exact=True).click()  # off
    wait_for_app_run(page)
    page.wait_for_timeout(1500)  # the page's own reruns (first paint, live panel) come and go
    s = settings(page)
    assert (s["Units"], s["Seed"], s["Stateful"], s["Epochs"]) == ("7", "41", False, "2"), s
    button(page, "Train").click()
    page.wait_for_function("() => location.search.includes('run=')", timeout=TRAIN_TIMEOUT_MS)
    wait_for_app_run(page)
    shot(page, artifacts, "08-typed-settings-trained")
    q = query(page.url)
    assert (q.get("units"), q.get("seed"), q.get("stateful"), q.get("epochs")) == \
        ("7", "41", "false", "2"), q
    s = settings(page)
    assert (s["Units"], s["Seed"], s["Stateful"]) == ("7", "41", False), s
