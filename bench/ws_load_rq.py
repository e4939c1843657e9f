"""bench/ws_load.py against the Redis + RQ deployment, beside the single-process default, in
one run on this machine.

Starts a real redis-server (loopback, free port), M workers (`python -m models worker`, which
compile the presets' nets while idle) and N `streamlit run app.py` processes with
LSTM_REDIS_URL; sessions take turns across the web processes (as a sticky proxy assigns
them). Then, unless --no-default, the same scenarios against one default server (in-process
jobs, SQLite). Prints both tables, the peak RSS of every process, and runs finished per minute
per worker in scenario B (distinct configs: each one trains), for sizing. Where the RQ path's
time goes: each worker logs per job how long it waited in the queue (submit -> a worker took
it) and when its first live values reached Redis (after its start); the table prints their
p50/max per scenario beside Train -> first flow figure (the rest: the web's submit and the
page's polls).

    python bench/ws_load_rq.py [--web 2] [--workers 2] [--sessions 40] [--sessions-b 80]
                               [--budget 600] [--scenario A|B|both] [--no-default]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import ws_load  # noqa: E402
from bench._server import ROOT, free_port, quiet_env, start_server  # noqa: E402

ARTIFACTS = ROOT / "test-artifacts"


def start_redis(tmp: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([shutil.which("redis-server") or "/usr/bin/redis-server", "--port",
                             str(port), "--bind", "127.0.0.1", "--dir", str(tmp), "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    import redis
    r = redis.Redis(port=port)
    for _ in range(100):
        try:
            r.ping()
            break
        except redis.RedisError:
            time.sleep(0.1)
    return proc, f"redis://127.0.0.1:{port}/0"


TIMINGS = re.compile(r"timings: waited ([0-9.]+) s in the queue, first live values ([0-9.]+|-)")


def wait_for_prewarm(logs: list[Path], limit: float = 900.0) -> None:
    """Until every worker has logged the end of its prewarm: a loaded machine starves the
    workers, and "quiet" (a CPU threshold) then ends the wait while they still compile."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        texts = [p.read_text(errors="replace") for p in logs]
        if all("worker prewarm:" in t or "prewarm failed" in t for t in texts):
            return
        time.sleep(1.0)
    ws_load.log(f"the workers' prewarm did not end within {limit:.0f} s: measuring anyway")


def scenario(args, name: str, base: str, pids, sessions: int, scen: str,
             logs: list[Path] = ()) -> dict:
    a = argparse.Namespace(sessions=sessions, scenario=scen, budget=args.budget,
                           presets=args.presets, json=False)
    marks = [p.stat().st_size for p in logs]
    out = asyncio.run(ws_load.bench(a, base, pids))
    out["deployment"] = name
    if logs:  # the jobs this scenario ran (and its warm-up), from the workers' logs
        found = [m.groups() for p, at in zip(logs, marks)
                 for m in TIMINGS.finditer(p.read_text(errors="replace")[at:])]
        out["worker_timings"] = {"jobs": len(found),
                                 "queue_s": [float(w) for w, _ in found],
                                 "first_live_s": [float(f) for _, f in found if f != "-"]}
    return out


def both_scenarios(args, name: str, base: str, pids, logs: list[Path] = ()) -> list[dict]:
    sizes = {"A": args.sessions, "B": args.sessions_b}
    return [scenario(args, name, base, pids, sizes[s], s, logs) for s in ("A", "B")
            if args.scenario in (s, "both")]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--web", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--sessions", type=int, default=40, help="scenario A (same preset)")
    ap.add_argument("--sessions-b", type=int, default=80, help="scenario B (distinct configs)")
    ap.add_argument("--budget", type=float, default=600)
    ap.add_argument("--presets", default=",".join(ws_load.PRESETS_B))
    ap.add_argument("--scenario", choices=("A", "B", "both"), default="both")
    ap.add_argument("--no-default", action="store_true", help="skip the single-process run")
    args = ap.parse_args()
    ARTIFACTS.mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="lstm-rq-bench-"))
    results, roles = [], {}
    redis_proc, url = start_redis(tmp)
    workers, webs = [], []
    try:
        for i in range(args.workers):
            log = open(ARTIFACTS / f"rq-worker-{i}.log", "w")
            workers.append(subprocess.Popen(
                [sys.executable, "-m", "models", "worker", "--url", url], cwd=ROOT, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
                env=quiet_env({"LSTM_DATA_DIR": str(tmp / f"w{i}")})))
            roles[workers[-1].pid] = f"worker {i}"
        for i in range(args.web):
            webs.append(start_server(env={"LSTM_REDIS_URL": url},
                                     log_path=ARTIFACTS / f"rq-web-{i}.log"))
            roles[webs[-1].pid] = f"web {i}"
        ws_load.log("waiting for the workers' prewarm to end")
        wait_for_prewarm([ARTIFACTS / f"rq-worker-{i}.log" for i in range(args.workers)])
        pids = [w.pid for w in webs] + [w.pid for w in workers]
        results += both_scenarios(args, f"redis+rq ({args.web} web, {args.workers} workers)",
                                  ",".join(w.url for w in webs), pids,
                                  [ARTIFACTS / f"rq-worker-{i}.log" for i in range(args.workers)])
    finally:
        for w in webs:
            w.stop()
        for w in workers:
            w.terminate()
            w.wait(30)
        redis_proc.terminate()
        redis_proc.wait(10)
    if not args.no_default:
        server = start_server(log_path=ARTIFACTS / "rq-default-web.log")
        roles[server.pid] = "default web + its trainer process"
        try:
            results += both_scenarios(args, "default (1 process)", server.url, server.pid)
        finally:
            server.stop()
    (ARTIFACTS / "ws-load-rq.json").write_text(json.dumps(results, indent=2))
    report(results, roles, args.workers)
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


def runs_per_minute(s: dict) -> float | None:
    """Finished runs per minute, Train -> the last result shown (not the scenario's wall time,
    which waits out its budget for a session that never finishes)."""
    ends = [r["result_s"] for r in s["per_session"] if r["state"] == "done" and r["result_s"]]
    return len(ends) / max(ends) * 60 if ends else None


def report(results: list[dict], roles: dict, n_workers: int) -> None:
    f = lambda x: "-" if x is None else f"{x:.2f}"  # noqa: E731
    print(f"{'deployment':34} {'scen':4} {'finished':>9} {'lost':>4} {'p50 s':>6} {'p95 s':>6} "
          f"{'maxpos':>6} {'RSS GB':>6} {'wall s':>6}")
    for out in results:
        for s in out["scenarios"]:
            print(f"{out['deployment']:34} {s['scenario']:4} {s['finished']:>4}/{s['sessions']:<4} "
                  f"{s['lost']:>4} {f(s['p50_s']):>6} {f(s['p95_s']):>6} "
                  f"{s['max_queue_position']:>6} {f(s['server_rss_max_gb']):>6} {s['wall_s']:>6.1f}")
            for p in s["problems"][:5]:
                print(f"     problem: {p}")
            if s["scenario"] == "B":
                rate = runs_per_minute(s)
                per = (f", {rate / n_workers:.1f} per worker"
                       if out["deployment"].startswith("redis") and rate else "")
                print(f"     B: {f(rate)} runs finished per minute until the last result{per} "
                      f"(distinct configs: every one trained)")
        t = out.get("worker_timings")
        if t:
            q, fl = t["queue_s"], t["first_live_s"]
            print(f"     worker side ({t['jobs']} jobs incl. warm-up): submit -> a worker took it "
                  f"p50 {f(_p50(q))} max {f(max(q, default=None))} s; its start -> first live "
                  f"values in Redis p50 {f(_p50(fl))} max {f(max(fl, default=None))} s")
        for pid, gb in out.get("process_rss_max_gb", {}).items():
            print(f"     peak RSS {roles.get(int(pid), pid)}: {gb:.2f} GB")
    print("p50/p95: Train sent -> first State-flow figure; lost: neither finished nor queued at "
          "the end; RSS GB: sum over the deployment's processes (Redis not counted)")


def _p50(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


if __name__ == "__main__":
    sys.exit(main())
