"""Browser timings of the real app in headless Chromium (no assertions: prints figures).

1. Train click -> first State-flow figure drawn (ms), for 3 presets (--presets all: every
   preset, or a comma-separated list), median of 3 each (--repeat; the presets take turns,
   round by round), on a warmed server (one Train done first, so TensorFlow is imported; then
   one Train of each measured preset, so its net is compiled even where a loaded machine hid
   the prewarm from the quiet check). Each measurement uses a fresh
   browser session and its own seed (?seed=...), so it trains for real and is not served from
   the result store. Target: <= 1.0 s. --new-shapes: also a first Train of a shape no preset
   has (units 11, 12, ..., the presets' units skipped: it compiles first; the measurement
   fails if the page did not keep those units).
   --root A --root B (checkouts, e.g. before and after a change): each runs its own server,
   both warmed; every measurement is taken on each root in turn (the order alternating), and
   the figures are printed side by side with the ratio.
2. Cold `streamlit run app.py` -> page interactive (Train button visible), median of 3 cold
   starts (per root, taking turns). Target: <= 5 s.

    python bench/browser_first_frame.py [--repeat 3] [--presets all|a,b,...] [--no-cold] [--json]
        [--root BEFORE --root AFTER]
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

from bench._server import (ROOT, check_kept_units, click_train_and_probe,  # noqa: E402
                           launch_chromium, new_shape_units, read_probe, start_server,
                           wait_for_app_loaded, wait_until_quiet)

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
        check_kept_units(page, url)  # a link that fell back to other settings measures nothing
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


def cold_start_s(browser, root: Path = ROOT) -> tuple[float, float]:
    """(seconds to /_stcore/health ok, seconds to Train button visible), from process spawn."""
    server = start_server(cwd=root)
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
    ap.add_argument("--root", action="append",
                    help="a checkout to measure (repeatable: side by side); default: this one")
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
    roots = [Path(r).resolve() for r in (args.root or [ROOT])]
    labels = [str(r) for r in roots]

    pw, browser = launch_chromium()
    out = {"roots": labels, "first_frame_ms": {}, "cold": {}, "warmup_s": {}, "settle_s": {},
           "load": {"start": _load()}}
    servers = {}
    try:
        try:
            for root, label in zip(roots, labels):  # one at a time: each compiles its presets
                server = servers[label] = start_server(cwd=root)
                t = time.perf_counter()
                first_frame_ms(browser, f"{server.url}/?preset={PRESETS[0]}&seed=999")  # warm-up
                out["warmup_s"][label] = time.perf_counter() - t
                # "Server warm": the app compiles every preset's net in the background at start.
                time.sleep(args.settle)
                out["settle_s"][label] = args.settle + wait_until_quiet(server.pid)
                # ... but at a load average over ~10 on 2 cores a compiling trainer gets under
                # 15% of a core and looks quiet: first rounds then measured XLA compiles. Each
                # measured preset trains once first (its own seed), so its net is compiled.
                for i, name in enumerate(names):
                    first_frame_ms(browser, f"{server.url}/?preset={name}&seed={900 + i}")
            # Interleaved rounds (every preset once a round, the order reversed every other
            # round; each preset on every root in turn, which root goes first alternating): on a
            # loaded machine, drift hits every preset and root alike.
            runs = {(label, name): [] for label in labels for name in names}
            for r in range(args.repeat):
                for name in (names if r % 2 == 0 else names[::-1]):
                    i = names.index(name)
                    for label in (labels if r % 2 == 0 else labels[::-1]):
                        runs[label, name].append(first_frame_ms(
                            browser, f"{servers[label].url}/?preset={name}&seed={1000 + 10 * i + r}"))
                        _progress(r, label, name, runs[label, name][-1])
            if args.new_shapes:  # units 11, 12, ...: no preset's shape, so each one compiles first
                units = new_shape_units()
                for r in range(args.repeat):
                    u = next(units)  # the same new shape on every root
                    for label in (labels if r % 2 == 0 else labels[::-1]):
                        wait_until_quiet(servers[label].pid)
                        runs.setdefault((label, "new shape"), []).append(first_frame_ms(
                            browser, f"{servers[label].url}/?units={u}&seed={u}"))
                        _progress(r, label, f"new shape (units {u})", runs[label, "new shape"][-1])
            for (label, name), xs in runs.items():
                out["first_frame_ms"].setdefault(name, {})[label] = {
                    "runs": xs, "median": statistics.median(xs)}
        finally:
            for server in servers.values():
                server.stop()
        if not args.no_cold:
            colds = {label: [] for label in labels}
            for r in range(args.repeat):
                for root, label in (list(zip(roots, labels))[::1 if r % 2 == 0 else -1]):
                    colds[label].append(cold_start_s(browser, root))
            for label, cs in colds.items():
                out["cold"][label] = {
                    "health_s": [c[0] for c in cs], "interactive_s": [c[1] for c in cs],
                    "median_health_s": statistics.median(c[0] for c in cs),
                    "median_interactive_s": statistics.median(c[1] for c in cs)}
    finally:
        browser.close()
        pw.stop()
    out["load"]["end"] = _load()

    out["targets"] = {"first_frame_s": FIRST_FRAME_TARGET_S, "cold_interactive_s": COLD_TARGET_S}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"load average (1, 5, 15 min): {out['load']['start']} at the start, "
          f"{out['load']['end']} at the end")
    for label in labels:
        print(f"{label}: warm-up Train (TensorFlow import + first run) "
              f"{out['warmup_s'][label]:.1f} s; server quiet (presets compiled) "
              f"{out['settle_s'][label]:.0f} s later")
    print("\nTrain click -> first State-flow figure drawn (fresh session, own seed), seconds: "
          f"runs (median); target {FIRST_FRAME_TARGET_S:.1f} s")
    short = [Path(label).name[:24] for label in labels]
    print(f"{'preset':32} " + " ".join(f"{s:>34}" for s in short)
          + ("   ratio" if len(labels) == 2 else ""))
    for name, per_root in out["first_frame_ms"].items():
        cells, meds = [], []
        for label in labels:
            r = per_root[label]
            meds.append(r["median"] / 1000)
            runs_s = " ".join(f"{x / 1000:.2f}" for x in r["runs"])
            cells.append(f"{runs_s} ({meds[-1]:.2f})")
        ratio = f"  {meds[0] / meds[1]:5.2f}x" if len(labels) == 2 else ""
        print(f"{name:32} " + " ".join(f"{c:>34}" for c in cells) + ratio)
    if not out["cold"]:
        return 0
    print("\nCold `streamlit run app.py` -> Train button visible")
    for label, c in out["cold"].items():
        print(f"  {label}: health ok {' '.join(f'{x:.2f}' for x in c['health_s'])} s "
              f"(median {c['median_health_s']:.2f}); interactive "
              f"{' '.join(f'{x:.2f}' for x in c['interactive_s'])} s "
              f"(median {c['median_interactive_s']:.2f}); target {COLD_TARGET_S:.0f} s")
    return 0


def _progress(r: int, label: str, name: str, ms: float) -> None:
    """Each figure as it comes, on stderr: a long run cut short keeps what it measured."""
    print(f"round {r + 1} {label} {name}: {ms / 1000:.2f} s (load {_load()})", file=sys.stderr,
          flush=True)


def _load() -> str:
    try:
        return " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        return "?"


if __name__ == "__main__":
    sys.exit(main())
