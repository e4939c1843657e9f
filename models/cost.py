"""What a run will cost, from its settings alone: bytes and seconds, before anything is built.

Pure arithmetic on the RunConfig (no arrays, no TensorFlow), cheap enough for
`RunConfig.problems()` on every rerun. Each figure follows what the code really allocates:

- task data (models/tasks.py): x and y of every sequence, float32 / int32.
- arranged data (models/layouts.py `cut`/`arrange`): every sample materialised, N*P*L*F
  float32 values (windows: P = T-L+1, so N*(T-L+1)*L*F), its label, seq_id, part, last, and
  the int64 batch order; the same for validation (padded), plus the engine's per-epoch
  validation gather (x[order]) and one chunk of K batches in flight.
- trace (models/engine.py, models/trace.py): the recorded batches (thinned to
  limits.MAX_RECORDED_* by whole epochs; the recorder keeps whole chunks of K batches alive),
  the same again for the live snapshot a running job publishes, and the engine's buffer of
  the newest batches (RECENT_BATCHES plus one chunk). Per batch and slot: h0, c0, hT, cT
  (4 x units float32) plus seq_id and part.
- figures: JSON of the flow page, hidden-state heatmap, layout grid and curves, per drawn
  cell, measured with viz/ (see `python -m models.cost`).

Seconds: (training + validation batches) x a *conservative estimate* of seconds per batch:
a fit to a table measured on a 2-core machine (`MEASURED`), times 2 (`SAFETY`), plus the few
seconds a new shape takes to compile. Compare it with a new measurement on any machine:
`python -m models.cost --measure`.

`problems(cfg)` turns an over-budget config into sentences that say which setting to lower and
to what; `upload_problems(cfg, n_values)` does the same for an uploaded series.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from models import limits
from models.config import FIELD, RunConfig

MB = 1024 * 1024
F = 1  # features per timestep: every task (tasks.py) and an uploaded series have one
RECENT_BATCHES = 64  # models/engine.py RECENT_BATCHES (a test keeps them equal)
COMPILE_SECONDS = 5.0  # a shape not in the pool compiles in ~3 s (README); rounded up

# Seconds per batch, measured (engine.run, record=True, validate=False; best of 2 epochs, XLA
# chunks; a 2-core VM shared with other work; the slower of two sessions, one under load):
# (B, L, units) -> seconds per batch.
MEASURED = {
    (1, 1, 10): 3.9e-05, (100, 1, 10): 3.1e-04, (100, 10, 10): 1.95e-03,
    (50, 10, 64): 4.54e-03, (1000, 1, 64): 6.5e-03, (200, 20, 32): 3.4e-03,
    (1000, 10, 64): 3.14e-02, (1000, 50, 64): 1.33e-01,
}
# The fit (least squares on log time): a cost per batch growing like (B*units)^0.74 (Python,
# recording B x units states), plus per timestep a cost growing like (B*units)^0.25 and the
# gate matmuls (B x units x (units + F + 1) x 4). It is within 0.5-1.5x of every measured
# shape; times SAFETY, so it over-estimates each of them (by 1.4-4x).
SAFETY = 2.0
PER_BATCH, PER_BATCH_POW = 1.15e-6, 0.74
PER_STEP, PER_STEP_POW = 2.05e-5, 0.25
PER_STEP_FLOP = 1.28e-10

# Figure bytes per drawn item. Measured (len(fig.to_json()) of viz.flow_figure,
# hidden_heatmap, batch_curves, layout_figure on traces of 20-2000 batches, 10-1000 slots,
# 10-64 units): flow 300-360 B a cell, heatmap 13-18 B a value, curves 42-457 B a point
# (a ~9 KB frame), layout 18-32 B a cell. Counted at 3x that: an allowance, not a
# measurement, for the plotly object beside its JSON and the message Streamlit keeps.
FIG_FLOW_CELL = 1100     # per (batch, slot) cell of one flow page
FIG_HEAT_VALUE = 55      # per (recorded batch, unit) of the hidden heatmap
FIG_CURVE_POINT = 250    # per recorded batch on the batch curves
FIG_LAYOUT_CELL = 100    # per (batch, slot) cell of the layout view
FIG_FIXED = 100_000      # layouts, axes, titles of the few figures a run shows
FLOW_PAGE, FLOW_SLOTS, LAYOUT_BATCHES = 20, 32, 40  # ui/views.py FLOW_PAGE, viz max_slots


@dataclass(frozen=True)
class Cost:
    n_train: int            # training sequences
    n_val: int              # validation sequences
    batches_per_epoch: int  # training
    val_batches: int        # per epoch (padded)
    total_batches: int      # epochs x batches_per_epoch
    recorded_batches: int   # kept in the trace
    data_bytes: int         # task data + arranged train and validation sets + gathers
    trace_bytes: int        # recorded trace, its live copy, the engine's recent buffer
    figure_bytes: int
    seconds: float          # conservative estimate, compile included
    seconds_per_batch: float
    kept_bytes: int = 0     # what a session holds after the run: its trace and figures

    @property
    def bytes(self) -> int:
        return self.data_bytes + self.trace_bytes + self.figure_bytes

    @property
    def mb(self) -> float:
        return self.bytes / MB


def sequence_counts(cfg: RunConfig, n_sequences: int | None = None) -> tuple[int, int]:
    """(train, validation) sequences: from cfg.sequences, or the real count (an upload)."""
    n = cfg.sequences if n_sequences is None else int(n_sequences)
    n_val = max(1, n // 6)
    return max(0, n - n_val), n_val


def seconds_per_batch(batch_size: int, sample_len: int, units: int) -> float:
    """Conservative seconds per training batch of this shape (see MEASURED)."""
    B, L, u = batch_size, sample_len, units
    return SAFETY * (PER_BATCH * (B * u) ** PER_BATCH_POW
                     + L * (PER_STEP * (B * u) ** PER_STEP_POW + PER_STEP_FLOP * B * u * (u + F + 1) * 4))


def chunk_batches(cfg: RunConfig) -> int:
    """K, the batches per compiled call (models/engine.py Net)."""
    return int(max(4, min(256, 32768 // (cfg.batch_size * cfg.sample_len))))


def _batches(cfg: RunConfig, n: int, pad: bool) -> int:
    """layouts.count_batches without its errors (0: nothing fits, refused elsewhere)."""
    from models import layouts
    try:
        return layouts.count_batches(cfg.replace(remainder="trim"), n, pad=pad)
    except Exception:
        return 0


def arranged_bytes(cfg: RunConfig, n_sequences: int, pad: bool = False) -> int:
    """Peak bytes of layouts.arrange() for n_sequences: what it keeps (every cut sample's x,
    y, seq_id, part, last, and the int64 batch order) plus its largest temporary (the samples'
    x is gathered, then copied by reshape; the order is built through int64 temporaries)."""
    from models import layouts
    n, P = int(n_sequences), layouts.parts_per_sequence(cfg)
    x = n * P * cfg.sample_len * F * 4
    order = _batches(cfg, n, pad) * cfg.batch_size * 8
    return n * P * (cfg.sample_len * F * 4 + 4 + 4 + 4 + 1) + order + max(x, order)


def estimate(cfg: RunConfig, n_sequences: int | None = None) -> Cost:
    """The cost of a config whose fields are valid (field ranges are not re-checked)."""
    from models import layouts
    from models.trace import recorded_epochs
    B, L, T, u = cfg.batch_size, cfg.sample_len, cfg.seq_len, cfg.units
    n_tr, n_val = sequence_counts(cfg, n_sequences)
    P = layouts.parts_per_sequence(cfg)
    nb, nvb = _batches(cfg, n_tr, False), _batches(cfg, n_val, True)
    K = chunk_batches(cfg)
    sample = L * F * 4 + 4 + 4 + 4 + 1           # x, y, seq_id, part, last
    data = (n_tr + n_val) * T * (F * 4 + 4)       # tasks.py x (float32) and y
    if cfg.task == "sine":
        data += (n_tr + n_val) * (T + 1) * 8 * 3  # float64 t, clean, noise while generating
    data += arranged_bytes(cfg, n_tr) + arranged_bytes(cfg, n_val, pad=True)
    data += nvb * B * (L * F * 4 + 4 + 4)         # validation gather x[idx], y[idx], w
    data += K * B * (L * F * 4 + 4)               # one training chunk in flight

    cap = max(1, min(limits.MAX_RECORDED_BATCHES, limits.MAX_RECORDED_SLOTS // B))
    keep, per = recorded_epochs(cfg.epochs, max(nb, 1), cap)
    recorded = len(keep) * per if nb else 0
    chunked = len(keep) * min(math.ceil(per / K) * K, math.ceil(nb / K) * K) if nb else 0
    # stacked layers, and a Bidirectional layer's two directions: each records its own states
    nl = cfg.layers * (2 if cfg.bidirectional else 1)
    per_batch = B * (16 * u * nl + 8) + 40        # states, seq_id, part; per-batch scalars
    recent = min(nb * cfg.epochs, RECENT_BATCHES + K - 1)
    trace = (chunked + recorded + recent) * per_batch + 4 * K * B * u * 4 * nl  # + chunk outputs

    S = min(B, FLOW_SLOTS)
    figures = (FIG_FIXED + min(recorded, FLOW_PAGE) * S * FIG_FLOW_CELL + recorded * u * FIG_HEAT_VALUE
               + recorded * FIG_CURVE_POINT + min(nb, LAYOUT_BATCHES) * S * FIG_LAYOUT_CELL)

    spb = seconds_per_batch(B, L, u) * nl  # measured on one layer; each layer or direction is another pass
    total = nb * cfg.epochs
    seconds = COMPILE_SECONDS + spb * (total + nvb * cfg.epochs)
    return Cost(n_tr, n_val, nb, nvb, total, recorded, int(data), int(trace), int(figures),
                seconds, spb, int(recorded * per_batch + figures))


# ---- refusing --------------------------------------------------------------------------------

# Settings a user can lower to make a run cheaper, in the order they are suggested.
# A stacked run's layers come first: one layer fewer is the change that keeps the experiment.
_LOWER = {"bytes": ("layers", "sequences", "seq_len", "batch_size", "units", "epochs"),
          "kept": ("layers", "batch_size", "units", "epochs"),
          "seconds": ("layers", "epochs", "sequences", "seq_len", "units"),
          "batches": ("epochs", "sequences")}


def kept_budget() -> float:
    """Bytes a session may keep of a finished run (trace, figures): a third of the run budget,
    so 40 sessions' results stay within the sizing in models/limits.py."""
    return limits.MAX_RUN_MB * MB / 3


def _over(c: Cost) -> dict[str, tuple[float, float]]:
    """Which budgets a cost exceeds: name -> (needed, allowed)."""
    out = {}
    if c.bytes > limits.MAX_RUN_MB * MB:
        out["bytes"] = (c.mb, limits.MAX_RUN_MB)
    elif c.kept_bytes > kept_budget():
        out["kept"] = (c.kept_bytes / MB, kept_budget() / MB)
    if c.seconds > limits.MAX_RUN_SECONDS:
        out["seconds"] = (c.seconds, limits.MAX_RUN_SECONDS)
    if c.total_batches > limits.MAX_TOTAL_BATCHES:
        out["batches"] = (c.total_batches, limits.MAX_TOTAL_BATCHES)
    return out


def _fits(cfg: RunConfig, n_sequences: int | None, which: str) -> bool:
    if cfg.problems(budget=False):
        return False
    return estimate(cfg, n_sequences).batches_per_epoch > 0 and _within(cfg, n_sequences, which)


def _largest_fitting(cfg: RunConfig, name: str, n_sequences, which: str) -> int | None:
    """The largest value of setting `name` below its current one under which the budget
    `which` holds (the other settings unchanged); None if there is none."""
    lo = int(FIELD[name].lo)
    hi = getattr(cfg, name) - 1
    if hi < lo or (name == "sequences" and n_sequences is not None):
        return None  # an upload's sequence count is the file's, not a setting
    ok = lambda v: _fits(cfg.replace(**{name: v}), n_sequences, which)
    # Cost grows with each of these settings, except where a value is not allowed at all
    # (chunk lengths must divide seq_len): bisect on the budget, then walk down to an allowed one.
    a, b = lo, hi
    if not _within(cfg.replace(**{name: a}), n_sequences, which):
        return None
    while a < b:
        m = (a + b + 1) // 2
        if _within(cfg.replace(**{name: m}), n_sequences, which):
            a = m
        else:
            b = m - 1
    for v in range(a, max(lo, a - 2000) - 1, -1):
        if ok(v):
            return v
    return None


def _within(cfg: RunConfig, n_sequences, which: str) -> bool:
    """The budget `which` holds (a config too small to fill a batch counts as within). Both
    memory budgets count together, so a suggestion for one does not trip the other."""
    over = _over(estimate(cfg, n_sequences))
    return not ({"bytes", "kept"} & set(over) if which in ("bytes", "kept") else which in over)


def _what(which: str, needed: float, allowed: float, c: Cost) -> str:
    if which == "bytes":
        return (f"This run needs about {needed:,.0f} MB (data {c.data_bytes / MB:,.0f}, states "
                f"{c.trace_bytes / MB:,.0f}, figures {c.figure_bytes / MB:,.0f}); the server "
                f"allows {allowed:,} MB a run (LSTM_MAX_RUN_MB).")
    if which == "kept":
        return (f"This run's record (states of every recorded batch, figures) would take about "
                f"{needed:,.0f} MB per session; the server keeps at most {allowed:,.0f} MB "
                f"(a third of LSTM_MAX_RUN_MB).")
    if which == "seconds":
        return (f"This run would train about {_duration(needed)} ({c.total_batches:,} batches at "
                f"~{_ms(c.seconds_per_batch)} ms, a cautious estimate); the server allows "
                f"{_duration(allowed)} a run (LSTM_MAX_RUN_SECONDS).")
    return (f"This run would train {int(needed):,} batches; the server allows {int(allowed):,} "
            f"(LSTM_MAX_TOTAL_BATCHES).")


def _ms(s: float) -> str:
    ms = s * 1000
    return f"{ms:,.0f}" if ms >= 10 else f"{ms:.2g}"


def _duration(s: float) -> str:
    if s < 120:
        return f"{s:,.0f} s"
    if s < 7200:
        return f"{s / 60:,.0f} min"
    return f"{s / 3600:,.1f} h"


def problems(cfg: RunConfig, n_sequences: int | None = None) -> list[str]:
    """Budget problems of a config whose settings are otherwise valid (empty: it fits).
    Cached per config and limits: the page asks on every rerun."""
    if cfg.task == "user" and n_sequences is None:
        return []  # the sequence count comes from the upload: see upload_problems
    budgets = (limits.MAX_RUN_MB, limits.MAX_RUN_SECONDS, limits.MAX_TOTAL_BATCHES,
               limits.MAX_RECORDED_BATCHES, limits.MAX_RECORDED_SLOTS)
    return list(_problems(cfg, n_sequences, budgets))


@functools.lru_cache(maxsize=512)
def _problems(cfg: RunConfig, n_sequences: int | None, budgets: tuple) -> tuple[str, ...]:
    c = estimate(cfg, n_sequences)
    if c.batches_per_epoch == 0:
        return []  # nothing fits a batch: layouts.count_batches says so, with the fix
    out = []
    for which, (needed, allowed) in _over(c).items():
        fixes = []
        for name in _LOWER[which]:
            v = _largest_fitting(cfg, name, n_sequences, which)
            if v is not None:
                fixes.append(f"{FIELD[name].label.lower()} to {v:,} (now {getattr(cfg, name):,})")
            if len(fixes) == 2:
                break
        if which == "batches" and cfg.batch_size < FIELD["batch_size"].hi:
            fixes.append("a larger batch size")
        if fixes:
            how = " Lower " + ", or ".join(fixes) + "."
        elif which in ("bytes", "kept"):  # no one setting is enough: name the biggest part's settings
            how = (" No one setting is enough: lower sequences and sequence length together."
                   if c.data_bytes >= c.trace_bytes else
                   " No one setting is enough: lower batch size and units together.")
        else:
            how = " No one setting is enough: lower epochs and sequences together."
        out.append(_what(which, needed, allowed, c) + how)
    return tuple(out)


def upload_sequences(cfg: RunConfig, n_values: int) -> int:
    """Sequences an uploaded series of n_values makes (models/tasks.py `_user`)."""
    return max(0, (int(n_values) - 1) // cfg.seq_len)


def upload_problems(cfg: RunConfig, n_values: int) -> list[str]:
    """Budget problems of the "user" task for an uploaded series of `n_values` values: what the
    upload path (and Train) call with the real count. Empty: it fits."""
    n = upload_sequences(cfg, n_values)
    if n < 2:
        return []  # tasks.py explains a series too short for two sequences
    out = problems(cfg, n)
    if out:
        shorter = _largest_values(cfg, n_values)
        if shorter:
            out.append(f"Or upload at most {shorter:,} values (now {int(n_values):,}).")
    return out


def _largest_values(cfg: RunConfig, n_values: int) -> int | None:
    a, b = 2 * cfg.seq_len + 1, int(n_values) - 1
    if a > b or problems(cfg, upload_sequences(cfg, a)):
        return None
    while a < b:
        m = (a + b + 1) // 2
        if problems(cfg, upload_sequences(cfg, m)):
            b = m - 1
        else:
            a = m
    return a


# ---- measuring (python -m models.cost [--measure]) --------------------------------------------

def measure(shapes=tuple(MEASURED)) -> dict:
    """Seconds per batch of each (B, L, units), measured with the real engine."""
    import time
    from models.engine import Engine
    out = {}
    saved = limits.MAX_RUN_MB, limits.MAX_RUN_SECONDS
    limits.MAX_RUN_MB = limits.MAX_RUN_SECONDS = 10**9  # the large shapes exceed the budgets
    try:
        for B, L, u in shapes:
            out[(B, L, u)] = _measure_one(B, L, u, Engine, time)
    finally:
        limits.MAX_RUN_MB, limits.MAX_RUN_SECONDS = saved
    return out


def _measure_one(B: int, L: int, u: int, Engine, time) -> float:
    """Best of 2 epochs' seconds per batch for one shape (a warm, compiled net)."""
    cfg = RunConfig(task="first_element", layout="steps" if L == 1 else "chunks", length=L,
                    seq_len=20 if L == 1 else max(2 * L, 20), batch_size=B, units=u, epochs=1,
                    sequences=min(limits.MAX_SEQUENCES, max(2 * B * 6 // 5 + 10, 12)))
    eng = Engine(cfg)
    try:
        eng.warm_up()
        best = math.inf
        for _ in range(2):
            t = time.perf_counter()
            eng.run(validate=False)
            best = min(best, (time.perf_counter() - t) / eng.total)
    finally:
        eng.close()
    return best


def main(argv=None) -> None:
    import argparse
    ap = argparse.ArgumentParser(prog="python -m models.cost",
                                 description="Seconds per batch: estimate vs the table (or a new measurement).")
    ap.add_argument("--measure", action="store_true", help="measure the table's shapes now")
    a = ap.parse_args(argv)
    table = measure() if a.measure else MEASURED
    print(f"{'B':>5} {'L':>4} {'units':>5} {'measured s':>11} {'estimate s':>11} {'ratio':>6}")
    for (B, L, u), t in table.items():
        e = seconds_per_batch(B, L, u)
        print(f"{B:>5} {L:>4} {u:>5} {t:>11.2e} {e:>11.2e} {e / t:>6.1f}")


if __name__ == "__main__":
    main()
