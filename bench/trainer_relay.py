"""Job-level cost of the trainer process, side by side in one run: Train -> first live trace
and -> result, for a preset whose net is already compiled, in the trainer process vs in this
process's threads (LSTM_TRAINER_PROCESS=0), interleaved. Prints medians; asserts nothing.

    python bench/trainer_relay.py [--repeat 5]
"""
import argparse
import functools
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models import jobs, training  # noqa: E402
from models.presets import PRESETS  # noqa: E402
from models.trainer import Trainer  # noqa: E402

CFG = PRESETS["seed004-streams-stateful"].config


def first_live(m, seed: int) -> tuple[float, float]:
    t = time.perf_counter()
    jid = m.submit(functools.partial(training.train_job, CFG.replace(seed=seed), None), owner="x")
    while m.live(jid, "trace") is None and m.status(jid).state not in jobs.FINISHED:
        time.sleep(0.002)
    first = time.perf_counter() - t
    m.wait(jid, 120)
    return first, time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    child, local = jobs.JobManager(trainer=Trainer()), jobs.JobManager()
    try:
        for m in (child, local):
            first_live(m, 1)  # TensorFlow import and the compile
        out = {"trainer process": [], "in-process": []}
        for r in range(args.repeat):
            out["trainer process"].append(first_live(child, 100 + r))
            out["in-process"].append(first_live(local, 200 + r))
    finally:
        child.shutdown()
    for k, v in out.items():
        print(f"{k:16} first live trace {[round(a, 3) for a, _ in v]} s, median "
              f"{statistics.median(a for a, _ in v):.3f}; result median "
              f"{statistics.median(b for _, b in v):.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
