"""Server memory over a soak, side by side: one `streamlit run app.py` per checkout, run at once.

For each --root (a checkout, e.g. a throwaway worktree of main and this one): start a server,
open one page (its first paint starts the presets' prewarm), wait until the server tree is
quiet, then play bench/abuse.py's `shapes` (C new net shapes, each trained to its result) and
`churn` (open, Train, close) scenarios against it. RSS is the server and all its children
(the trainer process), from /proc, also split into the web process and its children, with
the number of children started during each scenario. Prints one line per root and scenario.

    python bench/server_memory.py --root /tmp/base-main --root . [--shapes 40] [--churn 100]

Target (issue 9): after 40 new shapes the server ends within 100 MB of where it began.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._server import (_children, _rss_one, rss_bytes, start_server,  # noqa: E402
                           wait_until_quiet)
from bench.abuse import open_all, probe, sc_churn, sc_shapes  # noqa: E402
from bench.ws_load import log  # noqa: E402


def split(pid: int) -> dict:
    """RSS of the web process alone and of its children (the trainer), GB."""
    return {"web_gb": round(_rss_one(pid) / 1e9, 3),
            "children_gb": round(sum(rss_bytes(c) for c in _children(pid)) / 1e9, 3)}


async def watch_children(pid: int, seen: set) -> None:
    """Every child process the server starts (fresh trainers replacing full ones)."""
    while True:
        seen.update(_children(pid))
        await asyncio.sleep(0.5)


async def soak(root: str, base: str, pid: int, shapes: int, churn: int, budget: float) -> dict:
    seen: set = set()
    watcher = asyncio.create_task(watch_children(pid, seen))
    first = probe(0, base, "")
    await open_all([first], time.monotonic() + 120)
    await asyncio.sleep(3.0)  # the views' tick: the page has painted, the prewarm starts
    await first.close()
    waited = await asyncio.to_thread(wait_until_quiet, pid, 600.0)
    out = {"root": root, "quiet_after_s": round(waited, 1),
           "rss_quiet_gb": round(rss_bytes(pid) / 1e9, 3)}
    out.update(split(pid))
    log(f"{root}: quiet after {waited:.0f} s, RSS {out['rss_quiet_gb']} GB")
    for name, n, play in (("shapes", shapes, sc_shapes), ("churn", churn, sc_churn)):
        if n:
            before = len(seen)
            out[name] = {**await play(base, pid, n, budget), **split(pid)}
            out[name]["children_started"] = len(seen) - before
            log(f"{root}: {name} {out[name]}")
    watcher.cancel()
    return out


async def main_async(args) -> list[dict]:
    env = dict(e.split("=", 1) for e in args.env)
    servers = [start_server(cwd=Path(r).resolve(), env=env) for r in args.root]
    try:
        return await asyncio.gather(*[soak(r, s.url, s.pid, args.shapes, args.churn, args.budget)
                                      for r, s in zip(args.root, servers)])
    finally:
        for s in servers:
            s.stop()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", action="append", required=True, help="a checkout to serve")
    ap.add_argument("--shapes", type=int, default=40)
    ap.add_argument("--churn", type=int, default=100)
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE for every server")
    ap.add_argument("--budget", type=float, default=900.0, help="seconds per scenario")
    args = ap.parse_args(argv)
    out = asyncio.run(main_async(args))
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
