"""Start-up timings of the real app in headless Chromium (no assertions: prints figures).

Rows (issue 11):
1. cold `streamlit run app.py` -> Train clickable (visible and enabled), from process spawn;
   median of --repeat fresh servers. Target: <= 3 s.
2. new tab on a running server -> Train clickable, from page.goto; --tabs tabs opened one after
   another on a server that has trained once (TensorFlow loaded) and finished compiling the
   presets, two ways, alternating: each tab in a fresh browser profile (a first visit: nothing
   cached), and each a new tab of one browser that had the page open (its HTTP cache holds
   Streamlit's JavaScript, as a student's browser does after the first visit). p50 / p95.
   Target: p95 <= 1.0 s.
3. first Train right after server start -> first State-flow figure: a fresh server, Train
   clicked as soon as it is clickable (TensorFlow not loaded yet), and once more on another
   fresh server, clicked --busy-at seconds after start (the presets compiling in the
   background by then). Each click uses its own seed, so it trains (the store is empty anyway).
   Target: <= 2 s.

    python bench/startup.py [--repeat 3] [--tabs 20] [--busy-at 10] [--vs DIR] [--json]

--vs DIR: the same rows for another checkout of the app (e.g. `git worktree add /tmp/base
<commit>`), alternating with this one row by row: before and after, side by side in one run.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._server import (ROOT, click_train_and_probe, launch_chromium, pct, read_probe,  # noqa: E402
                           start_server, wait_until_quiet)

TRAIN = ".st-key-btn_train button"
TIMEOUT_S = 180


def _context(browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    ctx.set_default_timeout(TIMEOUT_S * 1000)
    return ctx


def _clickable(page) -> None:
    """Until the Train button is visible and enabled (a click would start a run)."""
    b = page.locator(TRAIN).first
    b.wait_for(state="visible")
    deadline = time.monotonic() + TIMEOUT_S
    while not b.is_enabled() and time.monotonic() < deadline:
        page.wait_for_timeout(20)


def _first_frame_s(page) -> float:
    if not click_train_and_probe(page):
        raise RuntimeError("no Train button")
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        p = read_probe(page)
        if p and p["ms"] is not None:
            return p["ms"] / 1000
        if p and p["errors"]:
            raise RuntimeError("; ".join(p["errors"]))
        time.sleep(0.05)
    raise TimeoutError(f"no flow figure within {TIMEOUT_S} s")


def cold_clickable_s(browser, root: Path) -> float:
    server = start_server(cwd=root)
    try:
        ctx = _context(browser)
        page = ctx.new_page()
        page.goto(server.url, wait_until="commit")
        _clickable(page)
        s = time.perf_counter() - server.started_at
        ctx.close()
        return s
    finally:
        server.stop()


def new_tabs_s(browser, root: Path, n: int) -> tuple[list[float], list[float], float]:
    """(seconds to Train clickable for n new tabs in fresh browser profiles (a first visit:
    Streamlit's JavaScript not cached), the same for n new tabs of one browser that has the
    page open before (cached), seconds the warm-up took)."""
    server = start_server(cwd=root)
    try:
        t = time.perf_counter()
        ctx = _context(browser)
        page = ctx.new_page()
        page.goto(f"{server.url}/?seed=998", wait_until="commit")
        _clickable(page)
        _first_frame_s(page)  # TensorFlow loaded, one run done
        ctx.close()
        wait_until_quiet(server.pid)  # the presets' nets compiled: a running, idle server
        warm = time.perf_counter() - t
        fresh, same = [], []
        shared = _context(browser)  # one browser: its tabs share the HTTP cache
        for _ in range(n):  # alternating: a first visit, then a new tab of a returning browser
            for ctx, into in ((_context(browser), fresh), (shared, same)):
                page = ctx.new_page()
                t = time.perf_counter()
                page.goto(server.url, wait_until="commit")
                _clickable(page)
                into.append(time.perf_counter() - t)
                page.close()
                if ctx is not shared:
                    ctx.close()
        shared.close()
        return fresh, same, warm
    finally:
        server.stop()


def first_train_s(browser, root: Path, at: float | None, seed: int) -> tuple[float, float]:
    """(seconds after spawn when Train was clicked, seconds from click to the first frame)."""
    server = start_server(cwd=root)
    try:
        ctx = _context(browser)
        page = ctx.new_page()
        page.goto(f"{server.url}/?seed={seed}", wait_until="commit")
        _clickable(page)
        if at is not None:
            time.sleep(max(0.0, server.started_at + at - time.perf_counter()))
        clicked = time.perf_counter() - server.started_at
        s = _first_frame_s(page)
        ctx.close()
        return clicked, s
    finally:
        server.stop()


def measure(browser, roots: dict[str, Path], a) -> dict:
    """Every row for every checkout, the checkouts alternating within each row."""
    out = {name: {"cold_clickable_s": []} for name in roots}
    for _ in range(a.repeat):
        for name, root in roots.items():
            out[name]["cold_clickable_s"].append(cold_clickable_s(browser, root))
    for name, root in roots.items():
        (out[name]["new_tab_clickable_s"], out[name]["new_tab_same_browser_s"],
         out[name]["warm_up_s"]) = new_tabs_s(browser, root, a.tabs)
    for name, root in roots.items():
        out[name]["first_train_at_once"] = first_train_s(browser, root, None, 997)
    for name, root in roots.items():
        out[name]["first_train_while_prewarm"] = first_train_s(browser, root, a.busy_at, 996)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="cold servers for row 1")
    ap.add_argument("--tabs", type=int, default=20, help="new tabs for row 2")
    ap.add_argument("--busy-at", type=float, default=10.0,
                    help="row 3: seconds after start for the second first-Train")
    ap.add_argument("--vs", type=Path, help="another checkout of the app, measured alongside")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    roots = {"this": ROOT}
    if a.vs:
        if not (a.vs / "app.py").exists():
            print(f"--vs {a.vs}: no app.py there", file=sys.stderr)
            return 2
        roots["vs"] = a.vs.resolve()
    pw, browser = launch_chromium()
    try:
        out = measure(browser, roots, a)
    finally:
        browser.close()
        pw.stop()
    if a.json:
        print(json.dumps(out))
        return 0
    f = " ".join
    print(f"{'row':58} {'checkout':>8} {'runs':>26} {'figure':>8} target")
    for name, r in out.items():
        cold = r["cold_clickable_s"]
        print(f"{'cold streamlit run -> Train clickable (s)':58} {name:>8} "
              f"{f(f'{x:.2f}' for x in cold):>26} {statistics.median(cold):8.2f} <= 3 (median)")
    for key, label in (("new_tab_clickable_s", "new tab, fresh browser profile"),
                       ("new_tab_same_browser_s", "new tab, same browser (JS cached)")):
        for name, r in out.items():
            tabs = r[key]
            print(f"{f'{label}, {len(tabs)} tabs -> Train clickable (s)':58} {name:>8} "
                  f"{'p50 ' + format(pct(tabs, 50), '.2f'):>26} {pct(tabs, 95):8.2f} <= 1.0 (p95)")
    for key, label in (("first_train_at_once", "first Train, clicked as soon as clickable"),
                       ("first_train_while_prewarm", "first Train, while presets compile")):
        for name, r in out.items():
            at, s = r[key]
            print(f"{label + f' at {at:.1f} s -> first frame (s)':58} {name:>8} {'':>26} "
                  f"{s:8.2f} <= 2")
    for name, r in out.items():
        print(f"({name}: new tabs measured after a warm-up Train and the presets' compile, "
              f"{r['warm_up_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
