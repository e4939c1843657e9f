"""Server memory over a soak, side by side: one `streamlit run app.py` per checkout, run at once.

For each --root (a checkout, e.g. a throwaway worktree of main and this one): start a server,
open one page (its first paint starts the presets' prewarm), wait until the server tree is
quiet, then play bench/abuse.py's `shapes` (C new net shapes, each trained to its result) and
`churn` (open, Train, close) scenarios against it. RSS is the server and all its children
(the trainer process), from /proc. Prints one line per root and scenario.

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

from bench._server import rss_bytes, start_server, wait_until_quiet  # noqa: E402
from bench.abuse import open_all, probe, sc_churn, sc_shapes  # noqa: E402
from bench.ws_load import log  # noqa: E402


async def soak(root: str, base: str, pid: int, shapes: int, churn: int, budget: float) -> dict:
    first = probe(0, base, "")
    await open_all([first], time.monotonic() + 120)
    await asyncio.sleep(3.0)  # the views' tick: the page has painted, the prewarm starts
    await first.close()
    waited = await asyncio.to_thread(wait_until_quiet, pid, 600.0)
    out = {"root": root, "quiet_after_s": round(waited, 1),
           "rss_quiet_gb": round(rss_bytes(pid) / 1e9, 3)}
    log(f"{root}: quiet after {waited:.0f} s, RSS {out['rss_quiet_gb']} GB")
    if shapes:
        out["shapes"] = await sc_shapes(base, pid, shapes, budget)
        log(f"{root}: shapes {out['shapes']}")
    if churn:
        out["churn"] = await sc_churn(base, pid, churn, budget)
        log(f"{root}: churn {out['churn']}")
    return out


async def main_async(args) -> list[dict]:
    servers = [start_server(cwd=Path(r).resolve()) for r in args.root]
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
    ap.add_argument("--budget", type=float, default=900.0, help="seconds per scenario")
    args = ap.parse_args(argv)
    out = asyncio.run(main_async(args))
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
