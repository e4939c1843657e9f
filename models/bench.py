"""Performance figures, measured side by side in one run (shared machines are noisy: the
ratios matter more than any single number). Used by `python -m models bench`.
"""
from __future__ import annotations

import statistics
import sys
import time

import numpy as np

from models.config import RunConfig
from models.presets import PRESETS


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def steps_per_second(n_steps: int = 600) -> dict:
    """Stateful LSTM(10), batch 1, one step per batch: engine vs train_on_batch vs fit."""
    from models.engine import Engine
    cfg = PRESETS["seed004-steps-stateful"].config.replace(epochs=1)
    out = {}
    # Side by side, twice in alternation (a shared machine drifts): recording states, readout and
    # gradients (the default), states and readout only, nothing.
    variants = {"engine": dict(record=True), "engine_no_gradients": dict(record=True, gradients=False),
                "engine_no_record": dict(record=False)}
    for name, kw in variants.items():  # compile each net outside the timing
        eng = Engine(cfg, **kw)
        eng.warm_up()
        eng.close()
    for _ in range(2):
        for name, kw in variants.items():
            eng = Engine(cfg, **kw)
            t = time.perf_counter()
            eng.run(validate=False)
            out[name] = max(out.get(name, 0.0), eng.total / (time.perf_counter() - t))
            eng.close()
    out.update(chunk_steps_per_second())
    eng = Engine(cfg)
    x = eng.train.x[eng.train.order.reshape(-1)][:n_steps]
    y = eng.train.y[eng.train.order.reshape(-1)][:n_steps].astype("float32")[:, None]
    eng.close()

    import keras
    inp = keras.Input(batch_shape=(1, 1, 1))
    lstm = keras.layers.LSTM(10, stateful=True)
    model = keras.Model(inp, keras.layers.Dense(1, activation="sigmoid")(lstm(inp)))
    model.compile(keras.optimizers.Adam(0.01), "binary_crossentropy", steps_per_execution=1)
    model.train_on_batch(x[:1], y[:1])
    t = time.perf_counter()
    for i in range(n_steps):
        model.train_on_batch(x[i:i + 1], y[i:i + 1])
    out["train_on_batch"] = n_steps / (time.perf_counter() - t)
    model.fit(x[:2], y[:2], batch_size=1, shuffle=False, verbose=0)
    t = time.perf_counter()
    model.fit(x, y, batch_size=1, shuffle=False, verbose=0)
    out["fit"] = n_steps / (time.perf_counter() - t)
    return out


STACKS = (2, 3)  # stacked LSTM layers measured beside the one-layer cells
# Cases whose engine/train_on_batch ratio must be at least the LSTM's of the same run (issue 14)
TARGETED = ("GRU", "SimpleRNN", "BiLSTM")
BEFORE = " before"  # suffix of a case built as before cells.unroll (--before): engine.UNROLL off


def _cases(before: bool = False) -> dict[str, RunConfig]:
    """Per cell (one layer), per stack of LSTM layers and a Bidirectional LSTM (BiLSTM):
    seed004-steps-stateful with that change, one epoch (stateful, batch 1, one step per batch).
    With `before`, also "GRU before" and "SimpleRNN before": the same, built without unroll
    (as every net was before cells.unroll), measured in the same interleaved rounds."""
    from models.cells import CELLS, unroll
    base = PRESETS["seed004-steps-stateful"].config.replace(epochs=1)
    out = {cell: base.replace(cell=cell) for cell in CELLS}
    if before:
        out.update({cell + BEFORE: c for cell, c in list(out.items())
                    if unroll(cell, c.sample_len)})
    return {**out, **{f"LSTMx{n}": base.replace(layers=n) for n in STACKS},
            "BiLSTM": base.replace(bidirectional=True)}


def _engine(name: str, cfg: RunConfig):
    """The engine of one case: a "... before" case's net built with engine.UNROLL off (the
    signature says so, so its net is pooled apart from the unrolled one)."""
    from models import engine
    engine.UNROLL = not name.endswith(BEFORE)
    try:
        return engine.Engine(cfg)
    finally:
        engine.UNROLL = True


def _keras_model(cfg: RunConfig):
    """The same layers in plain Keras, for the train_on_batch loop."""
    import keras
    inp = keras.Input(batch_shape=(1, 1, 1))
    h = inp
    rnn = getattr(keras.layers, cfg.cell)
    for i in range(cfg.layers):
        layer = rnn(cfg.units, stateful=True, return_sequences=i < cfg.layers - 1)
        if cfg.bidirectional:
            layer = keras.layers.Bidirectional(layer, backward_layer=rnn(
                cfg.units, stateful=True, go_backwards=True))
        h = layer(h)
    model = keras.Model(inp, keras.layers.Dense(1, activation="sigmoid")(h))
    model.compile(keras.optimizers.Adam(cfg.lr), "binary_crossentropy")
    return model


def cell_steps_per_second(n_steps: int = 600, repeat: int = 1, before: bool = False) -> dict:
    """Per cell (LSTM, GRU, SimpleRNN), per stack (2, 3 LSTM layers) and BiLSTM, side by side in one
    process: the engine (recording states, readout and gradients) vs a train_on_batch loop over
    the same layers. Everything is compiled first; then `repeat` rounds, each timing every case
    (engine, then train_on_batch) in turn, the order reversed every other round, so a loaded
    machine's drift hits all cases alike. Returns per case the steps/s of each round and the
    engine/train_on_batch ratio of each round (the medians are the figures to read). With
    `before`, also the GRU and SimpleRNN built as before (see _cases), side by side; their
    train_on_batch loop is the same plain Keras model as the unrolled case's (the yardstick is
    the layer a user writes, Keras's defaults, for both)."""
    cases, ready = _cases(before), {}
    for name, cfg in cases.items():  # compile outside the timing
        eng = _engine(name, cfg)
        eng.warm_up()
        x = eng.train.x[eng.train.order.reshape(-1)][:n_steps]
        y = eng.train.y[eng.train.order.reshape(-1)][:n_steps].astype("float32")[:, None]
        eng.close()
        model = _keras_model(cfg)
        model.train_on_batch(x[:1], y[:1])
        ready[name] = (cfg, model, x, y)
    out = {name: {"engine": [], "train_on_batch": [], "ratio": []} for name in cases}
    for r in range(repeat):
        for name in (list(cases) if r % 2 == 0 else list(cases)[::-1]):
            cfg, model, x, y = ready[name]
            eng = _engine(name, cfg)
            t = time.perf_counter()
            eng.run(validate=False)
            e = eng.total / (time.perf_counter() - t)
            eng.close()
            t = time.perf_counter()
            for i in range(n_steps):
                model.train_on_batch(x[i:i + 1], y[i:i + 1])
            k = n_steps / (time.perf_counter() - t)
            for key, v in (("engine", e), ("train_on_batch", k), ("ratio", e / k)):
                out[name][key].append(round(v, 2))
    return out


def cell_summary(runs: dict) -> dict:
    """Medians per case: engine steps/s, train_on_batch steps/s, and the median of the
    per-round ratios."""
    import statistics
    return {name: {k: round(statistics.median(v), 2) for k, v in m.items()}
            for name, m in runs.items()}


def cell_targets(runs: dict) -> dict:
    """Per targeted case (TARGETED, and their "before" builds): its median ratio, the LSTM's
    median ratio of the same run, and whether it meets the target (at least the LSTM's)."""
    med = cell_summary(runs)
    if "LSTM" not in med:
        return {}
    lstm = med["LSTM"]["ratio"]
    return {name: {"ratio": m["ratio"], "lstm_ratio": lstm, "meets": m["ratio"] >= lstm}
            for name, m in med.items() if name.removesuffix(BEFORE) in TARGETED}


def cell_rows(runs: dict) -> list[tuple]:
    """Table rows: per case, the medians and every round's ratio."""
    rows = []
    med, targets = cell_summary(runs), cell_targets(runs)
    for name, m in med.items():
        label = name.replace("x", " x") + " layers" if "x" in name else name
        if name.endswith(BEFORE):
            label += " (no unroll)"
        n = len(runs[name]["ratio"])
        t = targets.get(name)
        verdict = (f">= LSTM's {t['lstm_ratio']:.1f}x: {'meets' if t['meets'] else 'MISSES'}"
                   if t else "")
        rows += [(f"{label}: engine / train_on_batch steps/s (median of {n})",
                  f"{m['engine']:,.0f} / {m['train_on_batch']:,.0f}", ""),
                 (f"{label}: speed-up vs train_on_batch (median; each round)",
                  f"{m['ratio']:.1f}x ({', '.join(f'{v:.0f}' for v in runs[name]['ratio'])})",
                  verdict)]
    for name in med:  # --before: the unrolled engine against its build before, round by round
        if name + BEFORE in runs:
            per = [a / b for a, b in zip(runs[name]["engine"], runs[name + BEFORE]["engine"])]
            rows.append((f"{name}: engine steps/s, unrolled / no unroll (median; each round)",
                         f"{statistics.median(per):.2f}x ({', '.join(f'{v:.2f}' for v in per)})",
                         ""))
    return rows


def chunk_steps_per_second() -> dict:
    """chunks-stateful (batch 50, 5 timesteps a batch): the gradient recording has more to do
    per batch here (|dL/dx_t| over 5 steps), so its cost is measured on this shape too."""
    from models.engine import Engine
    cfg = PRESETS["chunks-stateful"].config.replace(epochs=3)
    # and the same with bidirectional=True: what a Bidirectional layer costs (models/cost.py)
    ways = {"chunks": (cfg, True), "chunks_no_gradients": (cfg, False),
            "chunks_bidirectional": (cfg.replace(bidirectional=True), True)}
    out = {}
    for c, gradients in ways.values():  # compile outside the timing
        eng = Engine(c, gradients=gradients)
        eng.warm_up()
        eng.close()
    for _ in range(2):
        for key, (c, gradients) in ways.items():
            eng = Engine(c, gradients=gradients)
            t = time.perf_counter()
            eng.run(validate=False)
            out[key] = max(out.get(key, 0.0), eng.total * cfg.sample_len / (time.perf_counter() - t))
            eng.close()
    return out


def _parallel_compile(eng) -> None:
    """The two loops' XLA compiles side by side (tried for issue 11, not adopted): traced one
    after the other, then the validation loop compiled in a thread while the train loop
    compiles. Safe before training: the inactive chunk touches no variable and validation puts
    back the state it zeroes."""
    import threading
    chunk, val = eng._blank_chunk(), eng._val_args()
    eng.net.train_chunk.get_concrete_function(*chunk)
    eng.net.val_chunk.get_concrete_function(*val)
    t = threading.Thread(target=eng.net.val_chunk, args=val, name="lstm-bench-compile-val")
    t.start()
    eng.net.train_chunk(*chunk)
    t.join()
    eng.net.warm = True


def _traced_then(eng, compile_fn) -> float:
    """Trace both loops (seconds returned), then compile them with compile_fn(eng)."""
    t = time.perf_counter()
    eng.net.train_chunk.get_concrete_function(*eng._blank_chunk())
    eng.net.val_chunk.get_concrete_function(*eng._val_args())
    traced = time.perf_counter() - t
    compile_fn(eng)
    return traced


def compile_new_shape(rounds: int = 2) -> dict:
    """A shape no preset uses (streams with batch 37+, LSTM(10)): seconds from Engine() to the
    first trained chunk's states (the live view's first frame), compiling the two loops one
    after the other (Engine.warm_up, what runs), side by side (_parallel_compile), and one
    after the other traced with autograph on (engine.AUTOGRAPH: how the loops were traced
    before issue 11). Each measurement gets its own never-seen batch size; the ways alternate
    (ABC CBA), so drift hits them alike. Per way: (compile s, first frame s, trace s)."""
    from models import engine
    from models.engine import Engine
    cfg = PRESETS["seed004-streams-stateful"].config.replace(epochs=1)
    out: dict[str, list[tuple]] = {"sequential": [], "parallel": [], "autograph": []}
    for autograph in (True, False):  # a warm server: TF's and autograph's caches filled
        engine.AUTOGRAPH = autograph  # by an earlier shape, either way
        eng = Engine(cfg.replace(batch_size=35 + autograph * 64))
        eng.warm_up()
        eng.close()
    engine.AUTOGRAPH = False
    b = 37
    for r in range(rounds):
        for way in (list(out) if r % 2 == 0 else list(out)[::-1]):
            first = {}
            t = time.perf_counter()
            engine.AUTOGRAPH = way == "autograph"  # read when the net is built
            try:
                eng = Engine(cfg.replace(batch_size=b))
            finally:
                engine.AUTOGRAPH = False
            traced = _traced_then(eng, Engine.warm_up if way != "parallel" else _parallel_compile)
            compiled = time.perf_counter() - t

            def on_event(e, first=first):
                first.setdefault("s", time.perf_counter() - t)
            eng.run(on_event=on_event)
            eng.close()
            out[way].append((round(compiled, 2), round(first["s"], 2), round(traced, 2)))
            b += 2
    return out


def time_to_accuracy(target: float = 0.99, max_epochs: int = 10) -> dict:
    """seed004-streams-stateful: seconds after the model is built to val accuracy >= target,
    for the engine and for a plain Keras loop (train_on_batch, reset_state per sequence,
    evaluate with the training state saved and restored)."""
    from models.engine import Engine
    cfg = PRESETS["seed004-streams-stateful"].config.replace(epochs=max_epochs)
    eng = Engine(cfg)
    eng.warm_up()
    t0, hit = time.perf_counter(), {}

    def on_event(e):
        if e.kind == "epoch" and "engine" not in hit and e.data["val_accuracy"] >= target:
            hit["engine"] = time.perf_counter() - t0
    eng.run(on_event=on_event)
    s, v = eng.train, eng.val
    eng.close()

    import keras
    B = cfg.batch_size
    inp = keras.Input(batch_shape=(B, 1, 1))
    lstm = keras.layers.LSTM(cfg.units, stateful=True)
    model = keras.Model(inp, keras.layers.Dense(1, activation="sigmoid")(lstm(inp)))
    model.compile(keras.optimizers.Adam(cfg.lr), "binary_crossentropy", metrics=["accuracy"])
    xv = v.x[np.maximum(v.order, 0)]
    yv = v.y[np.maximum(v.order, 0)].astype("float32")
    t0 = time.perf_counter()
    for epoch in range(max_epochs):
        for k, row in enumerate(s.order):
            if k % cfg.seq_len == 0:
                lstm.reset_state()
            model.train_on_batch(s.x[row], s.y[row].astype("float32")[:, None])
        saved = [st.numpy() for st in lstm.states]
        accs = []
        for k in range(len(xv)):
            if k % cfg.seq_len == 0:
                lstm.reset_state()
            p = model.predict_on_batch(xv[k])
            accs.append(((p[:, 0] > 0.5) == yv[k])[v.order[k] >= 0].mean())
        for st, val in zip(lstm.states, saved):
            st.assign(val)
        if np.mean(accs) >= target:
            hit["keras_loop"] = time.perf_counter() - t0
            break
    return {k: hit.get(k) for k in ("engine", "keras_loop")}


def run_all(repeat: int = 1, before: bool = False) -> dict:
    _log("bench: steps/s (engine with/without gradients, without recording, train_on_batch, fit)...")
    sps = steps_per_second()
    _log("bench: seconds to 0.99 validation accuracy on seed004-streams-stateful...")
    tta = time_to_accuracy()
    _log(f"bench: steps/s per cell (LSTM, GRU, SimpleRNN) and stack (LSTM x{STACKS}), engine vs "
         f"train_on_batch, {repeat} interleaved round(s)...")
    cells = cell_steps_per_second(repeat=repeat, before=before)
    _log("bench: first compile of a new shape, sequential vs side by side...")
    comp = compile_new_shape()
    return {
        "compile_new_shape": comp,
        "cells": cells,  # per cell and stack: each round's steps/s and ratio
        "cells_median": cell_summary(cells),
        "cells_target": cell_targets(cells),  # per targeted case: ratio, LSTM's ratio, meets
        # the cost model's assumption (models/cost.py): a Bidirectional layer costs 2x a plain one
        "bidirectional_cost_chunks": round(sps["chunks"] / sps["chunks_bidirectional"], 3),
        "steps_per_second": {k: round(v, 1) for k, v in sps.items()},
        "speedup_vs_train_on_batch": round(sps["engine"] / sps["train_on_batch"], 2),
        "speedup_vs_fit": round(sps["engine"] / sps["fit"], 2),
        "recording_cost": round(sps["engine_no_record"] / sps["engine_no_gradients"], 3),
        "gradient_cost": round(sps["engine_no_gradients"] / sps["engine"], 3),
        "gradient_cost_chunks": round(sps["chunks_no_gradients"] / sps["chunks"], 3),
        "seconds_to_0.99": {k: (round(v, 3) if v is not None else None) for k, v in tta.items()},
        "targets": {"speedup": ">= 7x vs both", "cells": "GRU, SimpleRNN, BiLSTM at least as "
                    "far ahead of train_on_batch as the LSTM (median ratios)",
                    "recording_cost": "<= 1.15x",
                    "gradient_cost": "<= 1.3x (else optional)",
                    "seconds_to_0.99": "<= 1.0 s (engine)"},
    }


def compile_rows(comp: dict) -> list[tuple]:
    """(compile s, first state frame s, trace s) per measurement, per way."""
    rows = []
    for way, label in (("sequential", "loops compiled one after the other"),
                       ("autograph", "the same, traced with autograph (before)"),
                       ("parallel", "loops side by side (not adopted)")):
        runs = comp.get(way, [])
        if not runs:
            continue
        rows.append((f"new shape -> first states, {label}",
                     " / ".join(f"{m[1]:.2f}" for m in runs) + " s", "<= 1.0 s"))
        rows.append((f"  of which compiling ({way})",
                     " / ".join(f"{m[0]:.2f}" for m in runs) + " s", ""))
        if all(len(m) > 2 for m in runs):
            rows.append((f"  of which tracing ({way})",
                         " / ".join(f"{m[2]:.2f}" for m in runs) + " s", ""))
    return rows


def format_table(r: dict) -> str:
    sps = r["steps_per_second"]
    tta = r["seconds_to_0.99"]
    rows = [
        ("engine steps/s", f"{sps['engine']:,.0f}", ""),
        ("engine steps/s, no recording", f"{sps['engine_no_record']:,.0f}", ""),
        ("train_on_batch steps/s", f"{sps['train_on_batch']:,.0f}", ""),
        ("fit(steps_per_execution=1) steps/s", f"{sps['fit']:,.0f}", ""),
        ("speed-up vs train_on_batch", f"{r['speedup_vs_train_on_batch']}x", ">= 7x"),
        ("speed-up vs fit", f"{r['speedup_vs_fit']}x", ">= 7x"),
        ("engine steps/s, states + readout, no gradients", f"{sps['engine_no_gradients']:,.0f}", ""),
        ("recording cost (no-record / states + readout)", f"{r['recording_cost']}x", "<= 1.15x"),
        ("gradient cost (states + readout / + gradients)", f"{r['gradient_cost']}x", "<= 1.3x"),
        ("chunks-stateful steps/s, + gradients", f"{sps['chunks']:,.0f}", ""),
        ("chunks-stateful steps/s, no gradients", f"{sps['chunks_no_gradients']:,.0f}", ""),
        ("gradient cost, chunks-stateful", f"{r['gradient_cost_chunks']}x", "<= 1.3x"),
        ("s to val acc 0.99, engine", f"{tta['engine']}", "<= 1.0 s"),
        ("s to val acc 0.99, Keras train_on_batch loop", f"{tta['keras_loop']}", ""),
    ]
    if r.get("cells"):
        rows += cell_rows(r["cells"])
    if "bidirectional_cost_chunks" in r:
        rows.append(("chunks-stateful steps/s, bidirectional", f"{sps['chunks_bidirectional']:,.0f}", ""))
        rows.append(("Bidirectional cost, chunks-stateful", f"{r['bidirectional_cost_chunks']}x",
                     "cost model: 2x"))
    comp = r.get("compile_new_shape")
    if comp:
        rows += compile_rows(comp)
    return align(rows)


def align(rows: list[tuple]) -> str:
    """The rows as a table, each column as wide as its widest cell."""
    w = max(len(a) for a, _, _ in rows)
    v = max(10, *(len(b) for _, b, _ in rows))
    return "\n".join(f"{a:<{w}}  {b:>{v}}  {c}".rstrip() for a, b, c in rows)
