"""Browser timings of the real app in headless Chromium (no assertions: prints figures).

1. Train click -> first State-flow figure drawn (ms), for 3 presets (--presets all: every
   preset, or a comma-separated list), median of 3 each (--repeat; the presets take turns,
   round by round), on a warmed server (one Train done first, so TensorFlow is imported). Each measurement uses a fresh
   browser session and its own seed (?seed=...), so it trains for real and is not served from
   the result store. Target: <= 1.0 s. --new-shapes: also a first Train of a shape no preset
   has (units 40, 41, ...: it compiles first).
2. Cold `streamlit run app.py` -> page interactive (Train button visible), median of 3 cold
   starts. Target: <= 5 s.

    python bench/browser_first_frame.py [--repeat 3] [--presets all|a,b,...] [--no-cold] [--json]
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

from bench._server import (click_train_and_probe, launch_chromium, read_probe,  # noqa: E402
                           start_server, wait_for_app_loaded, wait_until_quiet)

PRESETS = ("seed004-streams-stateful", "chunks-stateful", "stateless-resets")
FIRST_FRAME_TARGET_S = 1.0
COLD_TARGET_S = 5.0
TIMEOUT_S = 180


def new_page(browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    ctx.set_default_timeout(60_000)
    return ctx.new_page()


AFTER_VIEWS = False  # --after-views: click Train once the page has painted its views


def first_frame_ms(browser, url: str) -> float:
    page = new_page(browser)
    try:
        page.goto(url, wait_until="domcontentloaded")
        wait_for_app_loaded(page)
        if AFTER_VIEWS:  # a new page paints its sidebar first and its views (plotly.js) a tick later
            page.get_by_role("tab", name="Data layout").first.wait_for(state="visible")
            page.locator(".js-plotly-plot").first.wait_for(state="visible")
        if not click_train_and_probe(page):
            raise RuntimeError("no Train button")
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            p = read_probe(page)
            if p and p["ms"] is not None:
                return p["ms"]
            if p and p["errors"]:
                raise RuntimeError("; ".join(p["errors"]))
            time.sleep(0.05)
        raise TimeoutError(f"no flow figure within {TIMEOUT_S} s")
    finally:
        page.context.close()


def cold_start_s(browser) -> tuple[float, float]:
    """(seconds to /_stcore/health ok, seconds to Train button visible), from process spawn."""
    server = start_server()
    try:
        health = server.healthy_at - server.started_at
        page = new_page(browser)
        page.goto(server.url, wait_until="commit")
        page.locator(".st-key-btn_train button").or_(
            page.get_by_role("button", name="Train", exact=True)).first.wait_for(state="visible")
        interactive = time.perf_counter() - server.started_at
        page.context.close()
        return health, interactive
    finally:
        server.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--after-views", action="store_true",
                    help="click Train once the views are painted (a reader's click), not at once")
    ap.add_argument("--presets", default=",".join(PRESETS),
                    help="comma-separated preset names, or 'all'")
    ap.add_argument("--no-cold", action="store_true", help="skip the cold-start timings")
    ap.add_argument("--settle", type=float, default=0.0,
                    help="wait at least this many seconds after the warm-up (a loaded machine "
                         "can look quiet while the presets still compile)")
    ap.add_argument("--new-shapes", action="store_true",
                    help="also a first Train of a shape no preset has (it compiles first)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    global AFTER_VIEWS
    AFTER_VIEWS = args.after_views
    from models.presets import PRESETS as ALL
    names = list(ALL) if args.presets == "all" else args.presets.split(",")

    pw, browser = launch_chromium()
    out = {"first_frame_ms": {}, "cold": {}}
    try:
        server = start_server()
        try:
            t = time.perf_counter()
            first_frame_ms(browser, f"{server.url}/?preset={PRESETS[0]}&seed=999")  # warm-up
            out["warmup_s"] = time.perf_counter() - t
            # "Server warm": the app compiles every preset's net in the background at start.
            time.sleep(args.settle)
            out["settle_s"] = args.settle + wait_until_quiet(server.pid)
            # Interleaved rounds (every preset once a round, the order reversed every other
            # round): on a loaded machine, drift hits every preset alike.
            runs = {name: [] for name in names}
            for r in range(args.repeat):
                for name in (names if r % 2 == 0 else names[::-1]):
                    i = names.index(name)
                    runs[name].append(first_frame_ms(
                        browser, f"{server.url}/?preset={name}&seed={1000 + 10 * i + r}"))
            for name in names:
                out["first_frame_ms"][name] = {"runs": runs[name],
                                               "median": statistics.median(runs[name])}
            if args.new_shapes:  # units 40.. : no preset's shape, so each one compiles first
                runs = [first_frame_ms(browser, f"{server.url}/?units={40 + r}")
                        for r in range(args.repeat)]
                out["first_frame_ms"]["new shape"] = {"runs": runs,
                                                      "median": statistics.median(runs)}
        finally:
            server.stop()
        colds = [] if args.no_cold else [cold_start_s(browser) for _ in range(args.repeat)]
        if colds:
            out["cold"] = {"health_s": [c[0] for c in colds], "interactive_s": [c[1] for c in colds],
                           "median_health_s": statistics.median(c[0] for c in colds),
                           "median_interactive_s": statistics.median(c[1] for c in colds)}
    finally:
        browser.close()
        pw.stop()

    out["targets"] = {"first_frame_s": FIRST_FRAME_TARGET_S, "cold_interactive_s": COLD_TARGET_S}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"warm-up Train (TensorFlow import + first run): {out['warmup_s']:.1f} s; "
          f"server quiet (presets compiled) {out['settle_s']:.0f} s later\n")
    print("Train click -> first State-flow figure drawn (fresh session, own seed)")
    print(f"{'preset':32} {'runs (s)':>22} {'median':>8} {'target':>7} {'ratio':>6}")
    for name, r in out["first_frame_ms"].items():
        med = r["median"] / 1000
        runs = " ".join(f"{x / 1000:.2f}" for x in r["runs"])
        print(f"{name:32} {runs:>22} {med:8.2f} {FIRST_FRAME_TARGET_S:7.1f} "
              f"{med / FIRST_FRAME_TARGET_S:6.1f}x")
    c = out["cold"]
    if not c:
        return 0
    print("\nCold `streamlit run app.py` -> Train button visible")
    print(f"  health ok: {' '.join(f'{x:.2f}' for x in c['health_s'])} s "
          f"(median {c['median_health_s']:.2f})")
    print(f"  interactive: {' '.join(f'{x:.2f}' for x in c['interactive_s'])} s "
          f"(median {c['median_interactive_s']:.2f}); target {COLD_TARGET_S:.0f} s, ratio "
          f"{c['median_interactive_s'] / COLD_TARGET_S:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
