"""Flow figure budget: 200 batches x 32 slots must build in <= 300 ms and serialise to <= 1 MB.

Run: python bench/flow_figure.py   (prints figures, asserts nothing: timing depends on the box)
"""
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from models.trace import Trace  # noqa: E402
from viz.flow import flow_figure  # noqa: E402

BUDGET_MS, BUDGET_BYTES = 300, 1_000_000


def random_trace(n=200, B=32, units=16, reset_every=20, seed=0) -> Trace:
    """Stateful run, reset every `reset_every` batches, a few slots shuffled (contamination)."""
    rng = np.random.default_rng(seed)
    hT = np.tanh(rng.normal(size=(n, B, units))).astype(np.float32)
    cT = rng.normal(size=(n, B, units)).astype(np.float32)
    reset = np.arange(n) % reset_every == 0
    h0, c0 = np.zeros_like(hT), np.zeros_like(cT)
    keep = ~reset[1:]
    h0[1:][keep], c0[1:][keep] = hT[:-1][keep], cT[:-1][keep]
    seq = (np.arange(B)[None, :] + B * (np.arange(n) // reset_every)[:, None]).astype(np.int32)
    seq[rng.random((n, B)) < 0.02] = -1  # some padding
    part = np.tile((np.arange(n) % reset_every)[:, None], (1, B)).astype(np.int32)
    return Trace(h0, c0, hT, cT, seq, part, (np.arange(n) // 100 + 1).astype(np.int32),
                 (np.arange(n) % 100).astype(np.int32), reset,
                 rng.random(n).astype(np.float32), rng.random(n).astype(np.float32),
                 json.dumps({"stateful": True, "reset": "sequence"}))


def contaminated_trace(units=16, seed=0) -> Trace:
    """The worst case for bytes: every carry lands on another sequence (a new one each batch)."""
    t = random_trace(units=units, reset_every=10**9, seed=seed)
    rng = np.random.default_rng(seed)
    t.seq_id = np.stack([rng.permutation(t.batch_size) + t.batch_size * k
                         for k in range(t.n)]).astype(np.int32)
    return t


def with_readout(t: Trace, seed=0) -> Trace:
    """Binary readout and targets, as the engine records them (readout colour mode)."""
    rng = np.random.default_rng(seed)
    t.readout_h0 = rng.random(t.seq_id.shape + (1,)).astype(np.float32)
    t.target = (rng.random(t.seq_id.shape) < 0.5).astype(np.float32)
    t.config = json.dumps({"stateful": True, "reset": "sequence", "task": "first_element"})
    return t


def measure(units: int, repeats: int = 5, make=random_trace, **kw) -> tuple:
    """Median wall and CPU ms of a build (CPU time moves less when other work shares the
    cores), the JSON size and the time to_json took."""
    times, cpu, size = [], [], 0
    for seed in range(repeats):
        t = make(units=units, seed=seed)
        start, c0 = time.perf_counter(), time.process_time()
        fig = flow_figure(t, **kw)
        times.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
        t0 = time.perf_counter()
        size = len(fig.to_json())
        to_json_ms = (time.perf_counter() - t0) * 1000
    return statistics.median(times), statistics.median(cpu), size, to_json_ms


def main() -> None:
    flow_figure(random_trace(n=3, B=2))  # warm imports and plotly validators
    print(f"flow_figure, 200 batches x 32 slots (median of 5 builds); budgets "
          f"{BUDGET_MS} ms, {BUDGET_BYTES:,} bytes")
    cases = [(f"units={u:>2}", dict(units=u)) for u in (10, 16, 64)] + [
        ("every carry contaminated, units=16", dict(units=16, make=contaminated_trace)),
        ("colour: readout vs target, units=16",
         dict(units=16, make=lambda **k: with_readout(random_trace(**k)), colour="readout")),
        ("colour: |h0|, units=16", dict(units=16, colour="norm")),
        ("following a sequence, units=16", dict(units=16, follow=5)),
        ("phone layout, readout, units=16",
         dict(units=16, make=lambda **k: with_readout(random_trace(**k)), colour="readout",
              compact=True))]
    for name, kw in cases:
        ms, cpu_ms, size, json_ms = measure(**kw)
        print(f"  {name:<36} build {ms:6.1f} ms ({ms / BUDGET_MS:.2f} of budget, cpu {cpu_ms:5.1f})  "
              f"json {size:>9,} bytes ({size / BUDGET_BYTES:.2f} of budget)  "
              f"[to_json {json_ms:.0f} ms]")


if __name__ == "__main__":
    main()
