"""The cost model (models/cost.py): every config's memory and time, estimated before anything
is built, refuses exactly the configs over the server's budget and says what to lower."""
import math
import tracemalloc

import pytest

from models import cost, layouts, limits
from models.config import RunConfig
from models.presets import PRESETS
from models.tasks import make_task

# The issue's largest config: every setting within its own limit, together far over budget.
LARGEST = dict(layout="windows", length=100, units=64, sequences=5000, seq_len=200,
               batch_size=1000)


def test_every_preset_is_within_the_default_budgets():
    for name, p in PRESETS.items():
        assert p.config.problems() == [], name
        c = cost.estimate(p.config)
        assert c.mb <= limits.MAX_RUN_MB and c.seconds <= limits.MAX_RUN_SECONDS, name
        assert c.kept_bytes <= cost.kept_budget(), name


def test_the_issues_largest_config_is_refused_on_memory_and_time_with_what_to_lower():
    cfg = RunConfig(**LARGEST)
    assert cfg.problems(budget=False) == []  # each setting alone is allowed
    errs = cfg.problems()
    assert len(errs) == 2
    assert "LSTM_MAX_RUN_MB" in errs[0] and "LSTM_MAX_RUN_SECONDS" in errs[1]
    assert "Lower sequences to " in errs[1] and "(now 5,000)" in errs[1]
    # the suggested value really fits that budget, and one more does not
    n = int(errs[1].split("Lower sequences to ")[1].split(" ")[0].replace(",", ""))
    assert 2 <= n < 5000
    fits = cost.estimate(cfg.replace(sequences=n))
    assert fits.seconds <= limits.MAX_RUN_SECONDS < cost.estimate(cfg.replace(sequences=n + 1)).seconds
    # a link with it falls back to runnable settings and says why
    back, msgs = RunConfig.from_mapping({k: str(v) for k, v in LARGEST.items()})
    assert back == RunConfig() and any("LSTM_MAX_RUN_MB" in m for m in msgs)


@pytest.mark.parametrize("change", [dict(units=10, batch_size=100, sequences=250),
                                    dict(length=10, seq_len=20, units=10, batch_size=100,
                                         sequences=1200)])
def test_neighbours_of_the_largest_config_under_budget_are_accepted(change):
    cfg = RunConfig(**{**LARGEST, **change})
    c = cost.estimate(cfg)
    assert c.mb <= limits.MAX_RUN_MB and c.seconds <= limits.MAX_RUN_SECONDS
    assert cfg.problems() == []


def _grid():
    for layout, length, seq_len in (("windows", 10, 40), ("chunks", 5, 40), ("steps", 1, 40),
                                    ("full", 40, 40), ("naive_chunks", 8, 40)):
        for units in (8, 64):
            for B in (1, 30, 500):
                for seqs in (300, 3000):
                    yield RunConfig(layout=layout, length=length, seq_len=seq_len, units=units,
                                    batch_size=B, sequences=seqs, epochs=20)


def test_refuses_exactly_the_configs_over_budget():
    """A budget set exactly at a config's estimate accepts it; one unit less refuses it."""
    seen = {"ok": 0, "over": 0}
    for cfg in _grid():
        c = cost.estimate(cfg)
        if c.batches_per_epoch == 0:
            continue  # too few samples for one batch: arrange's own message
        over = (c.bytes > limits.MAX_RUN_MB * 2**20 or c.kept_bytes > limits.MAX_RUN_MB * 2**20 / 3
                or c.seconds > limits.MAX_RUN_SECONDS or c.total_batches > limits.MAX_TOTAL_BATCHES)
        assert bool(cfg.problems()) == over, cfg
        seen["over" if over else "ok"] += 1
    assert seen["ok"] >= 10 and seen["over"] >= 10  # the grid straddles the budget


def test_the_budget_boundary_is_exact(monkeypatch):
    cfg = RunConfig(layout="windows", length=50, seq_len=100, batch_size=100, units=8, sequences=800)
    c = cost.estimate(cfg)
    assert c.mb > 3 * c.kept_bytes / 2**20  # the run's peak, not what it keeps, decides here
    monkeypatch.setattr(limits, "MAX_RUN_MB", math.ceil(c.mb))
    monkeypatch.setattr(limits, "MAX_RUN_SECONDS", math.ceil(c.seconds))
    assert cfg.problems() == []
    monkeypatch.setattr(limits, "MAX_RUN_MB", math.ceil(c.mb) - 1)
    (msg,) = cfg.problems()
    assert "a run (LSTM_MAX_RUN_MB)" in msg and "Lower " in msg
    monkeypatch.setattr(limits, "MAX_RUN_MB", 10_000)
    monkeypatch.setattr(limits, "MAX_RUN_SECONDS", math.floor(c.seconds) - 1)
    (msg,) = cfg.problems()
    assert "LSTM_MAX_RUN_SECONDS" in msg


def test_each_suggested_value_fits_and_the_next_one_up_does_not():
    checked = [0]
    for cfg in _grid():
        for msg in cfg.problems():
            for name in ("sequences", "units", "batch_size", "epochs"):
                label = {"batch_size": "batch size"}.get(name, name)
                key = f"Lower {label} to " if f"Lower {label} to " in msg else f"or {label} to "
                if key not in msg:
                    continue
                v = int(msg.split(key)[1].split(" ")[0].replace(",", ""))
                fixed = cfg.replace(**{name: v})
                # a memory fix must clear both memory budgets (run peak, what a session keeps)
                which = next(w for w in ("LSTM_MAX_RUN_MB", "LSTM_MAX_RUN_SECONDS",
                                         "LSTM_MAX_TOTAL_BATCHES") if w in msg)
                assert not any(which in m for m in fixed.problems()), (cfg, msg)
                if name != "batch_size":  # cost grows with the others: v is the largest
                    assert any(which in m for m in cfg.replace(**{name: v + 1}).problems())
                checked[0] += 1
    assert checked[0] >= 10


@pytest.mark.parametrize("cfg", [
    RunConfig(layout="windows", length=100, seq_len=200, sequences=600, batch_size=100),
    RunConfig(layout="windows", length=10, sequences=1200, batch_size=100),
    RunConfig(layout="chunks", length=5, sequences=1200, batch_size=50),
    RunConfig(layout="steps", sequences=1200, batch_size=100),
    RunConfig(layout="full", length=20, sequences=1200, batch_size=200),
    RunConfig(layout="naive_chunks", length=10, seq_len=100, sequences=2000, batch_size=7),
], ids=lambda c: f"{c.layout}{c.length}")
def test_byte_estimate_is_within_a_stated_factor_of_what_arrange_allocates(cfg):
    """Measured with tracemalloc: the estimate is at least what arrange() keeps and within
    0.7-1.7x of its peak (temporaries included)."""
    d = make_task(cfg)
    for x, y, pad in ((d.x_train, d.y_train, False), (d.x_val, d.y_val, True)):
        tracemalloc.start()
        try:
            s = layouts.arrange(x, y, cfg, pad=pad)
            kept, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        est = cost.arranged_bytes(cfg, x.shape[0], pad)
        assert kept <= est * 1.07 and 0.7 * peak <= est <= 1.7 * peak, (pad, est, kept, peak)
        del s


def test_the_windows_layout_costs_what_it_materialises():
    """N*(T-L+1)*L values: doubling the window count doubles the data part."""
    a = cost.arranged_bytes(RunConfig(layout="windows", length=10, seq_len=20), 1000)
    b = cost.arranged_bytes(RunConfig(layout="windows", length=10, seq_len=31), 1000)
    assert b / a == pytest.approx(22 / 11, rel=0.01)


def test_an_uploads_budget_uses_the_files_real_sequence_count():
    cfg = RunConfig(task="user", layout="windows", length=50, seq_len=100, batch_size=100,
                    units=64)
    assert cfg.problems() == []  # the count is unknown until the upload
    assert cost.upload_sequences(cfg, 100_000) == 999
    errs = cost.upload_problems(cfg, 100_000)
    assert errs and "LSTM_MAX_RUN" in errs[0]
    n = int(errs[-1].split("Or upload at most ")[1].split(" ")[0].replace(",", ""))
    assert cost.upload_problems(cfg, n) == [] and cost.upload_problems(cfg, n + cfg.seq_len)
    assert cost.upload_problems(cfg, 300) == []


def test_engine_constants_the_model_copies_stay_in_step():
    from models import engine
    assert cost.RECENT_BATCHES == engine.RECENT_BATCHES
    cfg = PRESETS["chunks-stateful"].config
    eng = engine.Engine(cfg)
    try:
        assert cost.chunk_batches(cfg) == eng.K
        c = cost.estimate(cfg)
        assert (c.batches_per_epoch, c.val_batches) == (eng.train.n_batches, eng.val.n_batches)
        assert c.total_batches == eng.total
    finally:
        eng.close()
