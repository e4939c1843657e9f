"""A waiting page's queue line keeps itself current from the queue board (ui/queue_line.py),
without the script reruns that froze it under a class (bench/ws_load.py at 80 sessions).

One worker; A trains a long run, C and B wait behind it. The live panel's own reruns are set
to once a minute (LSTM_QUEUE_POLL, LSTM_QUEUE_SAFETY_POLL), so anything B shows sooner came
from its line reading the board: its place when C stops, its run when A stops.
"""
from __future__ import annotations

import re
import time

import pytest

from bench._server import wait_for_app_loaded, wait_for_app_run
from tests.conftest import serving
from tests.test_browser import button, shot

pytestmark = pytest.mark.browser

PRESET = "seed004-streams-stateful"
LINE = "div.qline"  # inside the component's shadow root: Playwright's CSS pierces it


@pytest.fixture(scope="module")
def one_worker_server():
    env = {"LSTM_MAX_CONCURRENT_JOBS": "1", "LSTM_QUEUE_POLL": "60",
           "LSTM_QUEUE_SAFETY_POLL": "60", "LSTM_PREWARM": "0", "LSTM_MAX_RUN_SECONDS": "900",
           "LSTM_MAX_TOTAL_BATCHES": "1000000"}
    with serving(env, "queue-line-server.log") as url:
        yield url


def _page(browser, url: str):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(60_000)
    page = context.new_page()
    page.goto(url, wait_until="domcontentloaded")
    wait_for_app_loaded(page)
    # Past the first paint's second run (the views): a Train pressed while that run was cut
    # short once trained every setting at its minimum under load (see the note of 2026-12-02).
    page.get_by_role("tab", name="Data layout").wait_for()
    wait_for_app_run(page, settle_ms=1000)
    return page


def _wait_for_line(page, artifacts, name: str) -> None:
    try:
        page.locator(LINE).first.wait_for(timeout=60_000)
    except Exception:
        shot(page, artifacts, f"queue-line-missing-{name}")
        raise AssertionError(f"{name} shows no queue line: "
                             + page.get_by_test_id("stMain").inner_text()[:600])


def _place(page) -> str | None:
    line = page.locator(LINE)
    return line.first.get_attribute("data-pos") if line.count() else None


def _until(cond, seconds: float) -> float | None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        if cond():
            return time.monotonic() - t0
        time.sleep(0.1)
    return None


def test_a_waiting_page_sees_its_place_and_its_start_without_rerunning(one_worker_server, browser,
                                                                       artifacts):
    url = one_worker_server
    a = _page(browser, f"{url}/?preset={PRESET}&epochs=400&seq_len=200&seed=71")  # minutes
    button(a, "Train").click()
    a.get_by_text(re.compile(r"epoch \d+/400")).first.wait_for(timeout=180_000)
    c = _page(browser, f"{url}/?preset={PRESET}&epochs=3&seed=72")
    button(c, "Train").click()
    _wait_for_line(c, artifacts, "C")
    b = _page(browser, f"{url}/?preset={PRESET}&epochs=3&seed=73")
    button(b, "Train").click()
    _wait_for_line(b, artifacts, "B")
    assert _place(b) == "2", (b.locator(LINE).first.inner_text(), c.url, b.url,
                              c.get_by_test_id("stMain").inner_text()[:400])
    assert "waiting in the queue, position 2" in b.locator(LINE).first.inner_text()
    shot(b, artifacts, "queue-line-waiting")

    button(c, "Stop").click()
    moved = _until(lambda: _place(b) == "1", 20)
    assert moved is not None, f"B still shows position {_place(b)} 20 s after C stopped"
    assert "position 1" in b.locator(LINE).first.inner_text()

    button(a, "Stop").click()
    started = _until(lambda: b.get_by_text(re.compile(r"epoch \d+/\d+|^Last run")).count() > 0, 30)
    shot(b, artifacts, "queue-line-started")
    assert started is not None, "B's run did not show 30 s after A stopped (its panel reruns " \
                                "once a minute: the line's trigger should have rerun it)"
    print(f"B at position 1 {moved:.1f} s after C's Stop; B's run shown {started:.1f} s after "
          f"A's Stop")
    for p in (a, b, c):
        p.context.close()
