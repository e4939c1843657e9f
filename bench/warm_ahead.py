"""A student's own shape: Train -> first State-flow frame in headless Chromium, side by side.

Each --root (a checkout; e.g. /work/base before and . after) runs its own `streamlit run
app.py`; both are warmed (one Train, then quiet: the presets are compiled). Then, round by
round and root by root, a fresh page opens a link whose settings no preset has (units 11, 12,
... on the default settings, the presets' units skipped: every measurement a shape that server never compiled;
the page's address must keep those units, else the link fell back to other settings), waits until the page has painted
its views, waits THINK more seconds (a student reading the settings they just chose) and
clicks Train. The figure is the in-page time from the click to the first State-flow figure.
With compiling ahead (ui/runs.warm_ahead), the page asks the trainer to compile the shape
when the settings appear; without it, Train waits for XLA. Prints medians per root and think
time and the ratio. Target (issue 11): <= 1.0 s for any config within the limits.

    python bench/warm_ahead.py --root /work/base --root . [--think 0,2,5] [--repeat 3]
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

from bench._server import (check_kept_units, click_train_and_probe,  # noqa: E402
                           launch_chromium, new_shape_units, read_probe, start_server,
                           wait_for_app_loaded, wait_until_quiet)

TARGET_S = 1.0
TIMEOUT_S = 180


def first_frame_s(browser, url: str, think: float) -> float:
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    ctx.set_default_timeout(60_000)
    page = ctx.new_page()
    try:
        page.goto(url, wait_until="domcontentloaded")
        wait_for_app_loaded(page)
        check_kept_units(page, url)
        page.get_by_role("tab", name="Data layout").first.wait_for(state="visible")
        page.locator(".js-plotly-plot").first.wait_for(state="visible")
        time.sleep(think)
        if not click_train_and_probe(page):
            raise RuntimeError("no Train button")
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            p = read_probe(page)
            if p and p["ms"] is not None:
                return p["ms"] / 1000
            if p and p["errors"]:
                raise RuntimeError("; ".join(p["errors"]))
            time.sleep(0.02)
        raise TimeoutError(url)
    finally:
        ctx.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", action="append", required=True, help="a checkout (repeatable)")
    ap.add_argument("--think", default="0,2,5", help="seconds between the painted page and Train")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    roots = [Path(r).resolve() for r in args.root]
    thinks = [float(t) for t in args.think.split(",")]
    pw, browser = launch_chromium()
    servers = {}
    out: dict = {"roots": [str(r) for r in roots], "thinks": thinks, "runs": {}}
    try:
        for root in roots:  # one at a time: each compiles its presets while the other is quiet
            s = servers[root] = start_server(cwd=root)
            first_frame_s(browser, f"{s.url}/?preset=chunks-stateful&seed=999", 0)
            wait_until_quiet(s.pid)
        units = new_shape_units()  # 11, 12, ...: no preset's units
        for r in range(args.repeat):
            for think in thinks:
                u = next(units)  # the same new shape on every root, in turn
                for root in (roots if r % 2 == 0 else roots[::-1]):
                    wait_until_quiet(servers[root].pid)
                    t = first_frame_s(browser, f"{servers[root].url}/?units={u}&seed={u}", think)
                    out["runs"].setdefault(f"{root}|{think}", []).append(t)
    finally:
        for s in servers.values():
            s.stop()
        browser.close()
        pw.stop()
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print("A new shape (units 11+): Train clicked THINK s after the page painted -> first "
          f"State-flow frame (s; median of {args.repeat}; target {TARGET_S:.1f} s)")
    print(f"{'think':>6} " + " ".join(f"{r.name[:28]:>30}" for r in roots)
          + ("   ratio" if len(roots) == 2 else ""))
    for think in thinks:
        meds = [statistics.median(out["runs"][f"{r}|{think}"]) for r in roots]
        cells = [f"{m:5.2f} ({' '.join(f'{x:.2f}' for x in out['runs'][f'{r}|{think}'])})"
                 for m, r in zip(meds, roots)]
        ratio = f"  {meds[0] / meds[1]:5.1f}x" if len(roots) == 2 else ""
        print(f"{think:6.1f} " + " ".join(f"{c:>30}" for c in cells) + ratio)
    return 0


if __name__ == "__main__":
    sys.exit(main())
