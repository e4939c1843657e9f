"""Worker memory under many new shapes, with and without the worker's memory bound.

    python bench/worker_memory.py [--shapes 12] [--bound 1500]

Starts a redis-server on loopback, queues N runs of distinct shapes (batch sizes no preset
uses: each compiles a new net, and TensorFlow keeps ~35 MB of every compile), and works them
off twice, side by side in one run: (a) one worker without a bound (`--max-rss-mb 0`), (b) a
worker with `--max-rss-mb BOUND`, restarted whenever it quits (what systemd's Restart=always or
compose's restart policy does). Prints each way's peak worker RSS, restarts and wall time.
"""
from __future__ import annotations

import argparse
import functools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from bench._server import free_port, quiet_env  # noqa: E402


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return 0.0


def _configs(n: int):
    from models.presets import PRESETS
    base = PRESETS["seed004-streams-stateful"].config
    used = {p.config.batch_size for p in PRESETS.values()}
    sizes = [b for b in range(11, 400) if b not in used][:n]
    return [base.replace(batch_size=b, epochs=1) for b in sizes]


def work_off(url: str, configs, bound: float, tmp: str) -> dict:
    import redis
    from models import jobs
    from models.hosting.rq_jobs import RQJobs
    from models.training import train_job
    redis.Redis.from_url(url).flushall()
    m = RQJobs(url, per_session=1000, per_client=1000, max_queued=1000)
    ids = [m.submit(functools.partial(train_job, c, None, run_id=None), owner=f"o{i}")
           for i, c in enumerate(configs)]
    peak, starts, t0 = 0.0, 0, time.monotonic()
    proc = None
    while not all((s := m.status(j)) is not None and s.state in jobs.FINISHED for j in ids):
        if proc is None or proc.poll() is not None:
            proc = subprocess.Popen(
                [sys.executable, "-m", "models", "worker", "--url", url, "--no-prewarm",
                 "--max-rss-mb", str(bound)], cwd=ROOT, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, env=quiet_env({"LSTM_DATA_DIR": tmp}))
            starts += 1
        peak = max(peak, _rss_mb(proc.pid))
        time.sleep(0.2)
    proc.terminate()
    proc.wait(30)
    states = [m.status(j).state for j in ids]
    return {"bound_mb": bound, "peak_rss_mb": round(peak), "worker_starts": starts,
            "seconds": round(time.monotonic() - t0, 1),
            "done": states.count(jobs.DONE), "runs": len(ids)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", type=int, default=12)
    ap.add_argument("--bound", type=float, default=1500)
    a = ap.parse_args(argv)
    redis_bin = shutil.which("redis-server") or "/usr/bin/redis-server"
    port, tmp = free_port(), tempfile.mkdtemp(prefix="lstm-wmem-")
    srv = subprocess.Popen([redis_bin, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                            "--dir", tmp], stdout=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        url, configs = f"redis://127.0.0.1:{port}/0", _configs(a.shapes)
        rows = [work_off(url, configs, 0, tmp), work_off(url, configs, a.bound, tmp)]
    finally:
        srv.terminate()
    for r in rows:
        way = "no bound" if not r["bound_mb"] else f"--max-rss-mb {r['bound_mb']:.0f}"
        print(f"{way:>20}: peak worker RSS {r['peak_rss_mb']} MB, {r['worker_starts']} worker "
              f"start(s), {r['done']}/{r['runs']} runs done, {r['seconds']} s")


if __name__ == "__main__":
    main()
