"""A class on one server: N real browser sessions against one real `streamlit run app.py`.

Loopback only (127.0.0.1). One headless Chromium, one context (= one Streamlit session) per
student. Every session is timed inside its own page (Train click -> first State-flow figure
drawn), so polling N pages from Python does not distort the figures.

  A: all N open ?preset=seed004-streams-stateful and click Train at once (same config: the
     server may train one shared copy). Report finished count and p50/p95 (target p95 <= 3 s).
  B: N sessions with distinct configs (?preset=...&seed=<i>): every session must finish or be
     visibly queued (queue position shown); none lost.
Server RSS (process tree, /proc or psutil) is sampled throughout; target max <= 1.5 GB.

Bounded: pages are opened in waves of --wave (default: all N at once), and the whole bench
stops by itself after --budget seconds (default 600), reporting what was unfinished.

    python bench/load.py [--sessions 40] [--scenario A|B|both] [--epochs E] [--json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._server import (CHROMIUM, CHROMIUM_ARGS, click_train_and_probe, pct,  # noqa: E402
                           read_probe, rss_bytes, start_server, wait_for_app_loaded)

PRESET = "seed004-streams-stateful"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
P95_TARGET_S = 3.0
RSS_TARGET_GB = 1.5
MAX_SESSIONS = 100
EXTRA_ARGS = ["--disable-background-timer-throttling", "--disable-renderer-backgrounding",
              "--disable-backgrounding-occluded-windows"]


class RssSampler(threading.Thread):
    def __init__(self, pid: int, every: float = 0.5):
        super().__init__(daemon=True)
        self.pid, self.every, self.max, self.samples = pid, every, 0, 0
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            self.max = max(self.max, rss_bytes(self.pid))
            self.samples += 1
            self._halt.wait(self.every)

    def stop(self):
        self._halt.set()
        self.join(5)


def log(msg: str) -> None:
    print(f"[load {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def open_pages(browser, urls: list[str], deadline: float) -> list:
    pages = []
    for url in urls:
        ctx = browser.new_context(viewport={"width": 1280, "height": 900})
        ctx.set_default_timeout(max(1_000, int((deadline - time.monotonic()) * 1000)))
        page = ctx.new_page()
        page.goto(url, wait_until="commit")
        pages.append(page)
    for page in pages:
        wait_for_app_loaded(page, timeout_ms=max(1_000, int((deadline - time.monotonic()) * 1000)))
    return pages


def run_scenario(browser, base: str, name: str, urls: list[str], wave: int,
                 deadline: float) -> dict:
    """Open the pages (in waves), click Train in each wave at once, wait for all (bounded)."""
    t_start = time.monotonic()
    results, all_pages = [], []
    try:
        for w in range(0, len(urls), wave):
            log(f"{name}: opening {len(urls[w:w + wave])} pages")
            pages = open_pages(browser, urls[w:w + wave], deadline)
            log(f"{name}: clicking Train in {len(pages)} pages")
            all_pages += pages
            for p in pages:  # as close to "at once" as one driver can: ~ms apart
                click_train_and_probe(p)
            pending = dict(enumerate(pages, start=w))
            last = {}
            while pending and time.monotonic() < deadline:
                for i, p in list(pending.items()):
                    pr = read_probe(p) or {}
                    last[i] = pr
                    if pr.get("ms") is not None:
                        pending.pop(i)
                time.sleep(0.25)
                if int(time.monotonic()) % 10 == 0:
                    log(f"{name}: {len(pages) - len(pending)}/{len(pages)} drawn")
            for i in range(w, w + len(pages)):
                pr = last.get(i) or {}
                page = all_pages[i]
                queued_now = page.get_by_text("waiting in the queue").count() > 0
                running_now = page.locator("[data-testid='stProgress']").count() > 0
                if pr.get("ms") is None and not queued_now and not running_now:
                    page.screenshot(path=str(ARTIFACTS / f"load-lost-{name}-{i}.png"))
                results.append({
                    "session": i, "ms": pr.get("ms"), "queued_polls": pr.get("queued", 0),
                    "max_queue_position": pr.get("maxPos", 0), "errors": pr.get("errors", []),
                    "state": ("done" if pr.get("ms") is not None else
                              "queued" if queued_now else "running" if running_now else "lost"),
                })
            if time.monotonic() >= deadline:
                for i in range(len(results), len(urls)):
                    results.append({"session": i, "ms": None, "queued_polls": 0,
                                    "max_queue_position": 0, "errors": [], "state": "not started"})
                break
    finally:
        for p in all_pages:
            try:
                p.context.close()
            except Exception:
                pass
    done = [r["ms"] / 1000 for r in results if r["ms"] is not None]
    states = {}
    for r in results:
        states[r["state"]] = states.get(r["state"], 0) + 1
    return {"scenario": name, "sessions": len(urls), "finished": len(done), "states": states,
            "saw_queue": sum(1 for r in results if r["queued_polls"]),
            "max_queue_position": max((r["max_queue_position"] for r in results), default=0),
            "errors": sorted({e for r in results for e in r["errors"]}),
            "p50_s": pct(done, 50), "p95_s": pct(done, 95), "max_s": max(done, default=None),
            "wall_s": time.monotonic() - t_start, "per_session": results}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=40)
    ap.add_argument("--scenario", choices=("A", "B", "both"), default="both")
    ap.add_argument("--wave", type=int, default=0, help="pages opened and clicked at once "
                    "(default: all sessions in one wave)")
    ap.add_argument("--epochs", type=int, default=0, help="override the preset's epochs "
                    "(default: the preset's)")
    ap.add_argument("--budget", type=float, default=600, help="total seconds, then stop")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    n = max(1, min(args.sessions, MAX_SESSIONS))
    wave = args.wave if args.wave > 0 else n
    deadline = time.monotonic() + args.budget
    extra = f"&epochs={args.epochs}" if args.epochs else ""

    from playwright.sync_api import sync_playwright
    out = {"sessions": n, "wave": wave, "budget_s": args.budget, "scenarios": []}
    log_path = Path(__file__).resolve().parent.parent / "test-artifacts" / "load-server.log"
    log_path.parent.mkdir(exist_ok=True)
    server = start_server(log_path=log_path)  # kept: app errors under load are read from it
    sampler = RssSampler(server.pid)
    sampler.start()
    pw = sync_playwright().start()
    try:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=CHROMIUM_ARGS + EXTRA_ARGS)
        # Warm the server (TensorFlow import, first compile) with a config no scenario uses.
        t = time.monotonic()
        run_scenario(browser, server.url, "warm-up", [f"{server.url}/?preset={PRESET}&seed=999{extra}"],
                     1, deadline)
        out["warmup_s"] = time.monotonic() - t
        if args.scenario in ("A", "both"):
            urls = [f"{server.url}/?preset={PRESET}{extra}"] * n
            out["scenarios"].append(run_scenario(browser, server.url, "A", urls, wave, deadline))
        if args.scenario in ("B", "both") and time.monotonic() < deadline:
            urls = [f"{server.url}/?preset={PRESET}&seed={100 + i}{extra}" for i in range(n)]
            out["scenarios"].append(run_scenario(browser, server.url, "B", urls, wave, deadline))
        browser.close()
    finally:
        try:
            pw.stop()
            sampler.stop()
        finally:
            server.stop()
        out["server_rss_max_gb"] = sampler.max / 1e9
        out["rss_samples"] = sampler.samples

    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"{n} Chromium sessions (one browser, one context each) against one server on "
          f"127.0.0.1; waves of {wave}; warm-up {out['warmup_s']:.1f} s"
          + (f"; epochs={args.epochs}" if args.epochs else ""))
    print(f"{'scen':4} {'finished':>9} {'p50 s':>7} {'p95 s':>7} {'max s':>7} {'queued':>7} "
          f"{'maxpos':>6} {'wall s':>7}  states")
    f = lambda x: "-" if x is None else f"{x:.2f}"  # noqa: E731
    for s in out["scenarios"]:
        print(f"{s['scenario']:4} {s['finished']:>4}/{s['sessions']:<4} {f(s['p50_s']):>7} "
              f"{f(s['p95_s']):>7} {f(s['max_s']):>7} {s['saw_queue']:>7} "
              f"{s['max_queue_position']:>6} {s['wall_s']:7.1f}  {s['states']}")
        for e in s["errors"]:
            print(f"     error seen: {e}")
    print(f"targets: scenario A p95 <= {P95_TARGET_S:.0f} s; B none lost (done or visibly "
          f"queued); server RSS <= {RSS_TARGET_GB} GB")
    print(f"server RSS max: {out['server_rss_max_gb']:.2f} GB ({out['rss_samples']} samples)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
