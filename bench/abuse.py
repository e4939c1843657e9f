"""Issue 9's attacks, replayed against a real server on loopback; prints what they did.

Starts `streamlit run app.py` (bench/_server.py) on 127.0.0.1 (or uses --url, which must be a
loopback address) and plays careless or hostile visitors with bench/ws_load.py's websocket
session client (Streamlit's own protocol, no browsers). Bounded: at most --sessions (<= 60)
sessions per scenario, --budget seconds per scenario (<= 600), and the whole run stops by
itself. Scenarios:

  open     N sessions open the issue's largest link (no Train): peak RSS, and how many pages
           said the settings are over the server's budget.
  train    N sessions open it and press Train: peak RSS, refusals, runs that started anyway.
  flood    one browser (N tabs sharing one XSRF cookie, as a browser's tabs do) presses Train on
           N distinct runs; then a newcomer (another browser) presses Train: the newcomer's
           queue positions and wait until its result, and the refused submissions.
  markup   links whose values are Markdown, HTML, KaTeX and control characters: how many
           rendered as markup (links, bold, maths, tags) in the page's text elements.
  churn    C cycles of (open, Train a new run, close the tab): RSS before and after.
  shapes   C new net shapes (distinct units, 1 epoch) trained one after another, each to its
           result: RSS (the server and its trainer process) at start, peak and end. Target: end
           within 100 MB of start.

    python bench/abuse.py [--scenario open,train,flood,markup,churn] [--sessions 30]
                          [--cycles 20] [--budget 120] [--json] [--url URL --pid PID]

Targets (issue 9): peak RSS <= 1.5 GB in every scenario; the newcomer starts within one queue
turn of the abuser (queue position <= 2 with one abusing client); 0 rendered links or markup.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._server import rss_bytes  # noqa: E402
from bench.ws_load import (Session, expected_config, header_for, log,  # noqa: E402
                           run_against_server, xsrf_cookie)
from models.config import RunConfig  # noqa: E402  (no TensorFlow, no streamlit)

MAX_SESSIONS, MAX_BUDGET_S, MAX_CYCLES = 60, 600.0, 200
RSS_TARGET_GB = 1.5
LARGEST = "layout=windows&length=100&units=64&sequences=5000&seq_len=200&batch_size=1000"
FLOOD_PRESET = "seed004-steps-stateful"  # 40,000 batches: seconds each, so a queue forms
VICTIM_PRESET = "seed004-streams-stateful"
REFUSAL_RE = re.compile(r"LSTM_MAX_|at most \d+ (?:per page|on this server)|server is busy|"
                        r"already has \d+ runs?", re.I)
# Hostile values for every query parameter (issue 9): Markdown links and emphasis, raw HTML,
# KaTeX, control characters.
HOSTILE = ("[click me](https://evil.example/p)", "**bold**", "<a href='https://evil.example'>x</a>",
           "$\\frac{a}{b}$", "<img src=x onerror=alert(1)>", "line\r\nbreak\x00\x1b[31m",
           "`code`", "# heading")
PARAMS = ("preset", "run", "lock", "task", "layout", "units", "seed", "shuffle", "compare", "x")
# Markup that the frontend would render in a Markdown body (st.markdown / alerts / captions).
# Escaped forms (\[, \*, \$, &lt;) do not match.
RENDERED = {
    "link": re.compile(r"(?<!\\)\[[^\]\n]*(?<!\\)\]\((?:https?:)?//evil\.example"),
    "html": re.compile(r"<(?:a|img)\b", re.I),
    "bold": re.compile(r"(?<!\\)\*\*bold(?<!\\)\*\*"),
    "katex": re.compile(r"(?<!\\)\$\\frac\{a\}\{b\}(?<!\\)\$"),
}


@dataclass
class Probe(Session):
    """A ws_load session that also keeps every text element it was sent (alerts, markdown,
    captions): what the abuse scenarios inspect."""
    texts: list = field(default_factory=list)  # (kind, body, allows HTML)

    def _element(self, el, path):
        et = el.WhichOneof("type")
        if et == "alert":
            self.texts.append(("alert", el.alert.body, False))
        elif et == "markdown":
            self.texts.append(("markdown", el.markdown.body, el.markdown.allow_html))
        elif et == "exception":
            self.texts.append(("exception", el.exception.message, False))
        super()._element(el, path)

    def plain(self) -> list[tuple[str, str]]:
        """(kind, body) with Markdown escapes removed (the app escapes what visitors send:
        'LSTM\\_MAX\\_RUN\\_MB' reads as LSTM_MAX_RUN_MB)."""
        return [(k, re.sub(r"\\(.)", r"\1", b)) for k, b, _ in self.texts]

    def refusals(self) -> list[str]:
        return [b for k, b in self.plain() if k == "alert" and REFUSAL_RE.search(b)]

    def rendered(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for kind, body, html in self.texts:
            if kind == "exception":
                continue
            for name, rx in RENDERED.items():
                if name == "html" and not html:
                    continue  # Streamlit shows tags as text unless unsafe_allow_html
                n = len(rx.findall(body))
                if n:
                    out[name] = out.get(name, 0) + n
        return out


def probe(i: int, base: str, query: str, cfg: RunConfig | None = None,
          cookie: str | None = None) -> Probe:
    cfg = cfg or RunConfig()
    return Probe(i, base, query, header_for(cfg), cfg.to_query(), cookie=cookie)


async def open_all(sessions: list[Probe], deadline: float) -> None:
    async def one(s):
        try:
            await s.open()
            await asyncio.wait_for(s.loaded.wait(), max(0.1, deadline - time.monotonic()))
        except (asyncio.TimeoutError, TimeoutError):
            pass
        except Exception as e:
            s.problems.append(f"{type(e).__name__}: {e}"[:200])
    await asyncio.gather(*(one(s) for s in sessions))


async def settle(sessions: list[Probe], seconds: float) -> None:
    """Let the pages' reruns (live panels, queue positions) go on for a while."""
    await asyncio.sleep(max(0.0, seconds))


async def close_all(sessions: list[Probe]) -> None:
    await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)


class RSS:
    """Peak RSS of the server's process tree, sampled every 0.25 s while a scenario runs."""

    def __init__(self, pid: int | None):
        self.pid, self.peak, self._halt, self._task = pid, 0, asyncio.Event(), None

    async def __aenter__(self):
        if self.pid:
            self.start = await asyncio.to_thread(rss_bytes, self.pid)
            self.peak = self.start
            self._task = asyncio.create_task(self._sample())
        return self

    async def _sample(self):
        while not self._halt.is_set():
            self.peak = max(self.peak, await asyncio.to_thread(rss_bytes, self.pid))
            try:
                await asyncio.wait_for(self._halt.wait(), 0.25)
            except (asyncio.TimeoutError, TimeoutError):
                pass

    async def __aexit__(self, *exc):
        self._halt.set()
        if self._task:
            await self._task
            self.end = await asyncio.to_thread(rss_bytes, self.pid)

    def report(self) -> dict:
        if not self.pid:
            return {"rss_peak_gb": None}
        return {"rss_start_gb": round(self.start / 1e9, 3), "rss_peak_gb": round(self.peak / 1e9, 3),
                "rss_end_gb": round(self.end / 1e9, 3)}


# ---- scenarios --------------------------------------------------------------------------------

async def sc_open(base, pid, n, budget, train=False) -> dict:
    deadline = time.monotonic() + budget
    sessions = [probe(i, base, LARGEST) for i in range(n)]
    async with RSS(pid) as rss:
        await open_all(sessions, deadline)
        if train:
            await asyncio.gather(*(s.press_train() for s in sessions if s.loaded.is_set()),
                                 return_exceptions=True)
            await settle(sessions, min(15.0, max(0.0, deadline - time.monotonic())))
        else:
            await settle(sessions, min(3.0, max(0.0, deadline - time.monotonic())))
        out = {"sessions": n, "loaded": sum(s.loaded.is_set() for s in sessions),
               "pages_saying_over_budget": sum(any("LSTM_MAX_RUN" in b for _, b in s.plain())
                                               for s in sessions),
               "runs_started": sum(bool(s.queue_positions) or s.run_live == "running"
                                   or s.t_result is not None for s in sessions),
               # ... of the largest config itself (a refused link falls back to the defaults,
               # which Train then runs): its header names layout windows and batch size 1000
               "largest_runs_started": sum("layout windows, batch size 1000" in (s.header or "")
                                           for s in sessions),
               "examples": sorted({b[:160] for s in sessions for b in s.refusals()})[:2]}
        await close_all(sessions)
    out.update(rss.report())
    return out


async def sc_flood(base, pid, n, budget) -> dict:
    deadline = time.monotonic() + budget
    cookie = await asyncio.to_thread(xsrf_cookie, base, "")  # one browser, n tabs
    flood = [probe(i, base, f"preset={FLOOD_PRESET}&seed={100 + i}",
                   expected_config(FLOOD_PRESET, 100 + i), cookie=cookie) for i in range(n)]
    victim = probe(n, base, f"preset={VICTIM_PRESET}&seed=7", expected_config(VICTIM_PRESET, 7))
    async with RSS(pid) as rss:
        await open_all(flood + [victim], deadline)
        await asyncio.gather(*(s.press_train() for s in flood if s.loaded.is_set()),
                             return_exceptions=True)
        await asyncio.sleep(1.0)  # the flood is queued; then the newcomer presses Train
        await victim.press_train()
        t = time.monotonic()
        try:
            await asyncio.wait_for(victim.finished.wait(), max(0.1, deadline - time.monotonic()))
        except (asyncio.TimeoutError, TimeoutError):
            pass
        wait = time.monotonic() - t if victim.finished.is_set() else None
        refused = sum(bool(s.refusals()) for s in flood)
        out = {"abuser_tabs": n, "abuser_refused": refused,
               "abuser_queued_or_running": sum(bool(s.queue_positions) or s.run_live == "running"
                                               or s.t_result is not None for s in flood),
               "abuser_max_position": max((max(s.queue_positions, default=0) for s in flood),
                                          default=0),
               "victim_positions": sorted(set(victim.queue_positions))[:10],
               "victim_first_position": victim.queue_positions[0] if victim.queue_positions else 0,
               "victim_wait_s": None if wait is None else round(wait, 1),
               "victim_finished": victim.finished.is_set(),
               "victim_refused": victim.refusals()[:1],
               "examples": sorted({b[:160] for s in flood for b in s.refusals()})[:2]}
        await close_all(flood + [victim])
    out.update(rss.report())
    return out


def hostile_queries() -> list[str]:
    out = []
    for value in HOSTILE:
        q = urllib.parse.urlencode({p: value for p in PARAMS})
        out.append(q)
        out.append(urllib.parse.urlencode({value: "1", "preset": value}))  # as a key too
    return out


async def sc_markup(base, pid, n, budget) -> dict:
    deadline = time.monotonic() + budget
    queries = hostile_queries()[:max(1, n)]
    sessions = [probe(i, base, q) for i, q in enumerate(queries)]
    async with RSS(pid) as rss:
        await open_all(sessions, deadline)
        await settle(sessions, min(2.0, max(0.0, deadline - time.monotonic())))
        rendered: dict[str, int] = {}
        examples = []
        for s in sessions:
            for k, v in s.rendered().items():
                rendered[k] = rendered.get(k, 0) + v
                if len(examples) < 3:
                    examples += [b[:160] for _, b, _ in s.texts
                                 if RENDERED[k].search(b)][:1]
        out = {"links": len(queries), "loaded": sum(s.loaded.is_set() for s in sessions),
               "rendered": rendered, "rendered_links": rendered.get("link", 0),
               "exceptions": sum(k == "exception" for s in sessions for k, _, _ in s.texts),
               "examples": examples}
        await close_all(sessions)
    out.update(rss.report())
    return out


async def sc_churn(base, pid, cycles, budget) -> dict:
    deadline = time.monotonic() + budget
    done = 0
    async with RSS(pid) as rss:
        for i in range(cycles):
            if time.monotonic() >= deadline:
                break
            s = probe(i, base, f"preset={FLOOD_PRESET}&seed={5000 + i}",
                      expected_config(FLOOD_PRESET, 5000 + i))
            await open_all([s], deadline)
            if s.loaded.is_set():
                await s.press_train()
                await asyncio.sleep(0.5)  # the run starts (or queues)...
            await s.close()  # ...and the tab closes
            done += 1
        await asyncio.sleep(min(5.0, max(0.0, deadline - time.monotonic())))  # jobs stop
    out = {"cycles": done}
    out.update(rss.report())
    if pid:
        out["rss_growth_mb"] = round((rss.end - rss.start) / 1e6, 1)
    return out


async def sc_shapes(base, pid, cycles, budget) -> dict:
    deadline = time.monotonic() + budget
    done, results = 0, 0
    async with RSS(pid) as rss:
        for i in range(min(cycles, 48)):
            if time.monotonic() >= deadline:
                break
            cfg = RunConfig(units=17 + i, epochs=1)  # presets use units 10 and 16 only
            s = probe(i, base, urllib.parse.urlencode(cfg.to_query()), cfg)
            await open_all([s], deadline)
            if s.loaded.is_set():
                await s.press_train()
                while s.t_result is None and time.monotonic() < deadline:
                    await asyncio.sleep(0.1)
                results += s.t_result is not None
            await s.close()
            done += 1
        await asyncio.sleep(min(5.0, max(0.0, deadline - time.monotonic())))
    out = {"cycles": done, "results": results}
    out.update(rss.report())
    if pid:
        out["rss_growth_mb"] = round((rss.end - rss.start) / 1e6, 1)
    return out


# ---- running ------------------------------------------------------------------------------------

async def run(args, base: str, pid: int | None) -> dict:
    n = max(1, min(args.sessions, MAX_SESSIONS))
    budget = max(5.0, min(args.budget, MAX_BUDGET_S))
    out = {"url": base, "sessions": n, "budget_s": budget, "scenarios": {}}
    for name in args.scenario.split(","):
        name = name.strip()
        log(f"{name}: start")
        t = time.monotonic()
        if name == "open":
            r = await sc_open(base, pid, n, budget)
        elif name == "train":
            r = await sc_open(base, pid, n, budget, train=True)
        elif name == "flood":
            r = await sc_flood(base, pid, n, budget)
        elif name == "markup":
            r = await sc_markup(base, pid, n, budget)
        elif name == "churn":
            r = await sc_churn(base, pid, max(1, min(args.cycles, MAX_CYCLES)), budget)
        elif name == "shapes":
            r = await sc_shapes(base, pid, max(1, min(args.cycles, MAX_CYCLES)), budget)
        else:
            raise SystemExit(f"error: unknown scenario {name!r}")
        r["wall_s"] = round(time.monotonic() - t, 1)
        out["scenarios"][name] = r
        log(f"{name}: {json.dumps(r)[:300]}")
    return out


def verdicts(out: dict) -> list[str]:
    lines = []
    for name, r in out["scenarios"].items():
        peak = r.get("rss_peak_gb")
        if peak is not None:
            lines.append(f"{name}: peak RSS {peak:.2f} GB <= {RSS_TARGET_GB} GB: "
                         f"{'met' if peak <= RSS_TARGET_GB else 'NOT met'}")
    f = out["scenarios"].get("flood")
    if f:
        pos = f["victim_first_position"]
        ok = f["victim_finished"] or (0 < pos <= 2)
        lines.append(f"flood: newcomer first seen at queue position {pos or '-'} "
                     f"(waited {f['victim_wait_s']} s), {f['abuser_refused']} of "
                     f"{f['abuser_tabs']} abuser submissions refused: within one turn "
                     f"{'met' if ok and (pos <= 2) else 'NOT met'}")
    m = out["scenarios"].get("markup")
    if m:
        lines.append(f"markup: {m['rendered_links']} rendered links, other markup {m['rendered']}: "
                     f"{'met' if not m['rendered'] else 'NOT met'}")
    for name in ("open", "train"):
        r = out["scenarios"].get(name)
        if r:
            lines.append(f"{name}: {r['pages_saying_over_budget']}/{r['sessions']} pages said the "
                         f"link is over budget; {r['largest_runs_started']} runs of it started "
                         f"({r['runs_started']} runs of any config)")
    c = out["scenarios"].get("churn")
    if c and "rss_growth_mb" in c:
        lines.append(f"churn: {c['cycles']} open-Train-close cycles, RSS grew "
                     f"{c['rss_growth_mb']} MB (target <= 100 MB): "
                     f"{'met' if c['rss_growth_mb'] <= 100 else 'NOT met'}")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="open,train,flood,markup,churn")
    ap.add_argument("--sessions", type=int, default=30, help=f"per scenario (max {MAX_SESSIONS})")
    ap.add_argument("--cycles", type=int, default=20, help=f"churn cycles (max {MAX_CYCLES})")
    ap.add_argument("--budget", type=float, default=120, help="seconds per scenario (max 600)")
    ap.add_argument("--url", help="a running server on loopback instead of starting one")
    ap.add_argument("--pid", type=int, help="with --url: the server's pid, for RSS")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    return run_against_server(args, "abuse", run, _print)


def _print(out: dict) -> None:
    for name, r in out["scenarios"].items():
        print(f"{name}: {json.dumps(r)}")
    print("\n".join(verdicts(out)))


if __name__ == "__main__":
    sys.exit(main())
