"""The engine alone, each cell built unrolled (models/cells.unroll) and as before (engine.UNROLL
off), on seed004-steps-stateful (batch 1, one step per batch, one epoch), run back to back in
pairs, the order flipped every round: microseconds per batch and, per round, loop / unrolled.
An LSTM has no unrolled build (cells.unroll), so its pair is the same net twice: the spread of
its per-round ratio around 1 is the machine's noise.

    python bench/unroll_pairs.py [--cells GRU,SimpleRNN,LSTM] [--rounds 8]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models import engine  # noqa: E402
from models.presets import PRESETS  # noqa: E402


def _engine(cfg, unroll: bool):
    engine.UNROLL = unroll  # read by signature(): the two builds are pooled apart
    try:
        return engine.Engine(cfg)
    finally:
        engine.UNROLL = True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", default="GRU,SimpleRNN,LSTM")
    ap.add_argument("--rounds", type=int, default=8)
    a = ap.parse_args()
    base = PRESETS["seed004-steps-stateful"].config.replace(epochs=1)
    cells = a.cells.split(",")
    for cell in cells:  # compile outside the timing
        for unroll in (True, False):
            e = _engine(base.replace(cell=cell), unroll)
            e.warm_up()
            e.close()
    us = {(c, u): [] for c in cells for u in (True, False)}
    for r in range(a.rounds):
        for cell in cells:
            for unroll in ((True, False) if r % 2 == 0 else (False, True)):
                e = _engine(base.replace(cell=cell), unroll)
                t = time.perf_counter()
                e.run(validate=False)
                us[(cell, unroll)].append((time.perf_counter() - t) / e.total * 1e6)
                e.close()
    for cell in cells:
        u, lo = us[(cell, True)], us[(cell, False)]
        print(f"{cell}: us/batch unrolled {statistics.median(u):.1f} ({' '.join(f'{x:.0f}' for x in u)}), "
              f"no unroll {statistics.median(lo):.1f} ({' '.join(f'{x:.0f}' for x in lo)}); "
              f"no unroll / unrolled per round, median {statistics.median(b / a for a, b in zip(u, lo)):.2f}")


if __name__ == "__main__":
    main()
