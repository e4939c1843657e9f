"""The engine on real Keras: the states it records are the layer's, and they obey Keras."""
import threading
import time

import numpy as np
import pytest

from models import engine, layouts, trace as trace_mod
from models.config import RunConfig
from models.engine import Engine

import keras  # noqa: E402  (after models pinned the backend)

SMALL = RunConfig(sequences=60, seq_len=20, batch_size=10, layout="chunks", length=5,
                  stateful=True, shuffle="off", reset="sequence", epochs=2, units=6)


def run(cfg, **kw):
    eng = Engine(cfg)
    try:
        return eng, eng.run(**kw)
    finally:
        eng.close()


def test_stateful_chunks_carry_exactly_and_reset_to_zero():
    _, r = run(SMALL)
    t = r.trace
    check = t.carry_check()
    assert check["carried"] > 0 and check["max_carry_error"] == 0.0
    assert check["max_fresh_abs"] == 0.0 and check["contaminated"] == 0
    assert check["continuation"] == check["carried"] and check["broken"] == 0
    # resets after every 4th chunk (a sequence ends), nowhere else
    assert t.reset_before.tolist()[:9] == [True, False, False, False, True, False, False, False, True]
    k = 2  # a carried transition: slot i continues with the state it ended with
    np.testing.assert_array_equal(t.h0[k], t.hT[k - 1])
    np.testing.assert_array_equal(t.c0[k], t.cT[k - 1])
    assert np.abs(t.hT[k]).max() > 0  # the state really moved


def test_naive_chunks_skip_parts_and_land_on_other_sequences():
    """Batch 2, four chunks a sequence, in sequence order: slot 0 gets s·p0 then s·p2 (a skipped
    part: broken), then the next sequence (contaminated); slot 1 the same with p1 and p3."""
    _, r = run(SMALL.replace(layout="naive_chunks", batch_size=2, reset="never", epochs=1))
    t = r.trace
    c = t.carry_check()
    assert t.n == 100 and t.part[:2].tolist() == [[0, 1], [2, 3]]
    assert (c["carried"], c["continuation"], c["broken"], c["contaminated"]) == (198, 0, 100, 98)
    assert c["max_carry_error"] == 0.0 and c["max_replay_error"] < 1e-5


def test_stateless_every_sample_starts_from_zero():
    _, r = run(SMALL.replace(stateful=False))
    t = r.trace
    assert (t.h0 == 0).all() and (t.c0 == 0).all() and np.abs(t.hT).max() > 0
    check = t.carry_check()
    assert check["carried"] == 0 and check["fresh_starts"] == t.n * t.batch_size


@pytest.mark.parametrize("policy", ["never", "epoch"])
def test_reset_policy_across_epochs(policy):
    _, r = run(SMALL.replace(reset=policy))
    t = r.trace
    first_of_epoch2 = int(np.nonzero(t.epoch == 2)[0][0])
    assert t.reset_before[first_of_epoch2] == (policy == "epoch")
    if policy == "never":
        np.testing.assert_array_equal(t.h0[first_of_epoch2], t.hT[first_of_epoch2 - 1])
    else:
        assert (t.h0[first_of_epoch2] == 0).all()
    assert t.carry_check()["max_carry_error"] == 0.0


def test_shuffle_lands_carried_state_on_other_sequences():
    _, r = run(SMALL.replace(shuffle="samples", reset="never"))
    check = r.trace.carry_check()
    assert check["contaminated"] > 0 and check["max_carry_error"] == 0.0
    _, rb = run(SMALL.replace(shuffle="batch", reset="never"))
    assert rb.trace.carry_check()["contaminated"] > 0


def test_validation_does_not_touch_the_training_state():
    a = Engine(SMALL)
    ra = a.run(validate=True)
    ha = a.final_state()
    a.close()
    b = Engine(SMALL)
    rb = b.run(validate=False)
    hb = b.final_state()
    b.close()
    assert ra.epochs[0]["val_accuracy"] is not None and rb.epochs[0]["val_accuracy"] is None
    np.testing.assert_array_equal(ha[0], hb[0])
    np.testing.assert_array_equal(ra.trace.h0, rb.trace.h0)
    for wa, wb in zip(ra.weights, rb.weights):
        np.testing.assert_array_equal(wa, wb)


def test_engine_agrees_with_plain_keras_fit():
    """Same stateful config, same initial weights: model.fit and the engine end in the same place.

    Both run XLA-compiled (fit with jit_compile=True): measured bit-identical. Without XLA
    in fit, rounding differs (states by ~4e-6 after 80 batches), hence the 1e-6 bound here.
    """
    cfg = SMALL.replace(reset="never", epochs=2)
    eng = Engine(cfg)
    init = [w.copy() for w in eng.initial_weights]
    r = eng.run(validate=False)
    h_eng, c_eng = eng.final_state()
    eng.close()

    s = eng.train
    x = s.x[s.order.reshape(-1)]
    y = s.y[s.order.reshape(-1)].astype("float32")[:, None]
    inp = keras.Input(batch_shape=(cfg.batch_size, cfg.sample_len, 1))
    lstm = keras.layers.LSTM(cfg.units, stateful=True)
    model = keras.Model(inp, keras.layers.Dense(1, activation="sigmoid")(lstm(inp)))
    model.set_weights(init)
    model.compile(keras.optimizers.Adam(cfg.lr), "binary_crossentropy", jit_compile=True)
    model.fit(x, y, batch_size=cfg.batch_size, epochs=cfg.epochs, shuffle=False, verbose=0)

    werr = max(float(np.abs(a - b).max()) for a, b in zip(model.get_weights(), r.weights))
    serr = max(float(np.abs(lstm.states[0].numpy() - h_eng).max()),
               float(np.abs(lstm.states[1].numpy() - c_eng).max()))
    print(f"engine vs fit: weights differ by {werr:g}, states by {serr:g}")
    assert werr <= 1e-6 and serr <= 1e-6, f"weights differ by {werr:g}, states by {serr:g}"
    np.testing.assert_array_equal(r.trace.hT[-1], h_eng)  # the trace's last state is the layer's


def test_cancel_stops_within_a_second_and_keeps_the_record():
    cfg = RunConfig(layout="steps", batch_size=1, epochs=10, sequences=1200)  # seconds of work
    eng = Engine(cfg)
    eng.warm_up()
    cancel, out = threading.Event(), {}
    th = threading.Thread(target=lambda: out.update(r=eng.run(cancel=cancel)))
    th.start()
    time.sleep(0.5)
    t0 = time.perf_counter()
    cancel.set()
    th.join(5)
    stopped = time.perf_counter() - t0
    eng.close()
    assert not th.is_alive() and stopped < 1.0, f"took {stopped:.2f} s to stop"
    r = out["r"]
    assert r.cancelled and 0 < r.trace.n and r.trace.carry_check()["max_carry_error"] == 0.0


def test_two_engines_in_parallel_threads_match_sequential_runs():
    cfgs = [SMALL, SMALL.replace(seed=7, units=5)]
    alone = [run(c)[1] for c in cfgs]
    results = [None, None]

    def work(i):
        results[i] = run(cfgs[i])[1]
    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    for a, b in zip(alone, results):
        np.testing.assert_array_equal(a.trace.hT, b.trace.hT)
        for wa, wb in zip(a.weights, b.weights):
            np.testing.assert_array_equal(wa, wb)


def test_pooled_net_starts_exactly_like_a_fresh_build():
    _, first = run(SMALL.replace(seed=11))
    assert engine._POOL  # the net went back to the pool ...
    _, again = run(SMALL.replace(seed=11))  # ... and was reused, re-seeded
    for wa, wb in zip(first.weights, again.weights):
        np.testing.assert_array_equal(wa, wb)
    fresh = engine.build_model(SMALL.replace(seed=12), 1, 1, "binary")[0].get_weights()
    eng = Engine(SMALL.replace(seed=12))
    for wa, wb in zip(fresh, eng.initial_weights):
        np.testing.assert_array_equal(wa, wb)
    eng.close()


def test_each_net_compiles_its_loops_once_and_logs_no_retracing(caplog):
    """Runs of a pooled shape reuse its compiled loops; nets of new shapes (servers build
    many) each trace once and must not flood the log with TF's "retracing" warning."""
    import tensorflow as tf
    tf_log = tf.get_logger()  # does not propagate to the root logger: listen to it directly
    tf_log.addHandler(caplog.handler)
    nets = []
    try:
        for units in range(2, 7):  # five new shapes in a row: TF warns at the fifth trace
            eng = Engine(SMALL.replace(units=units, epochs=1, sequences=20))
            nets.append(eng.net)
            eng.run()
            eng.close()
        run(SMALL.replace(units=2, epochs=1, sequences=20, seed=3))  # pooled: no new trace
    finally:
        tf_log.removeHandler(caplog.handler)
    assert [(n.train_chunk.experimental_get_tracing_count(),
             n.val_chunk.experimental_get_tracing_count()) for n in nets] == [(1, 1)] * 5
    assert not [r for r in caplog.records if "retracing" in r.getMessage()]


def test_prewarm_compiles_each_shape_once_and_later_runs_start_compiled(monkeypatch):
    # A server prewarms into an empty pool; earlier tests in this process may have filled it
    # (a full pool drops what is released), so this test gets an empty one of its own.
    monkeypatch.setattr(engine, "_POOL", {})
    a, b = SMALL.replace(units=13, sequences=20), SMALL.replace(units=14, sequences=20)
    # two presets of one shape (only the seed differs) share a net: two nets compiled, not three
    assert engine.prewarm([a, a.replace(seed=5), b]) == 2
    eng = Engine(a.replace(seed=9))
    try:
        assert eng.compiled  # a Train of that shape skips the XLA compile
    finally:
        eng.close()


def test_the_pool_holds_a_net_for_every_preset_shape():
    """The server compiles every preset ahead (prewarm) only if the pool can keep them all."""
    from models import limits
    from models.presets import PRESETS
    from models.tasks import make_task
    shapes = {engine.signature(p.config, make_task(p.config)) for p in PRESETS.values()}
    assert len(shapes) <= limits.MAX_POOLED_NETS, (len(shapes), limits.MAX_POOLED_NETS)


def test_events_report_progress_resets_and_epochs():
    events = []
    _, r = run(SMALL, on_event=events.append)
    kinds = [e.kind for e in events]
    assert kinds[-1] == "done" and kinds.count("epoch") == 2 and "reset" in kinds
    assert events[-1].done == events[-1].total == 2 * 20


def test_thinned_trace_keeps_whole_epochs_and_says_so(monkeypatch):
    from models import limits
    monkeypatch.setattr(limits, "MAX_RECORDED_BATCHES", 40)
    _, r = run(SMALL.replace(epochs=5))
    t = r.trace
    assert t.thinned and t.n == 40 and set(t.epoch.tolist()) == {1, 5}
    assert t.carry_check()["max_carry_error"] == 0.0
    back = type(t).from_bytes(t.to_bytes())
    np.testing.assert_array_equal(back.recorded, t.recorded)
    np.testing.assert_array_equal(back.h0, t.h0)


@pytest.mark.parametrize("n_epochs, per_epoch, cap, kept, per", [
    (10, 20, 1000, set(range(1, 11)), 20),  # everything fits
    (10, 20, 40, {1, 10}, 20),              # two whole epochs: the first and the last
    (10, 20, 100, {1, 3, 6, 8, 10}, 20),    # five: first, last, evenly spaced between
    (10, 20, 30, {10}, 20),                 # one whole epoch fits: the last
    (10, 50, 40, {1, 10}, 20),              # one epoch exceeds the cap: half of first and last
    (1, 50, 40, {1}, 40),                   # a one-epoch run: its first cap batches
])
def test_recorded_epochs_keeps_first_and_last_within_the_cap(n_epochs, per_epoch, cap, kept, per):
    got, got_per = trace_mod.recorded_epochs(n_epochs, per_epoch, cap)
    assert (got, got_per) == (kept, per)
    assert len(got) * got_per <= cap


def test_an_epoch_longer_than_the_cap_keeps_the_start_of_the_first_and_last_epochs(monkeypatch):
    from models import limits
    monkeypatch.setattr(limits, "MAX_RECORDED_BATCHES", 12)
    _, r = run(SMALL.replace(epochs=3))  # 20 batches an epoch
    t = r.trace
    assert t.thinned and t.n == 12
    assert t.epoch.tolist() == [1] * 6 + [3] * 6 and t.batch.tolist() == list(range(6)) * 2
    c = t.carry_check()
    assert c["max_carry_error"] == 0.0 and c["continuation"] > 0
    assert c["replayed"] == 2 and c["max_replay_error"] < 1e-5
    from viz import flow_figure
    assert "from the first 6 batches of epochs 1, 3 of 3" in flow_figure(t).layout.title.text


def test_alphabet_probe_shows_positions_not_letters():
    from models.presets import PRESETS
    cfg = PRESETS["alphabet-batch1-positions"].config
    _, r = run(cfg)
    assert r.epochs[-1]["accuracy"] == 1.0
    from_a = engine.probe_alphabet(r.weights, cfg, "A", 3)
    from_m = engine.probe_alphabet(r.weights, cfg, "M", 3)
    assert from_a == ["B", "C", "D"]
    assert from_m[0] != "N"  # a fresh state reads 'M' as position 0


def test_a_run_of_the_shape_the_prewarm_is_compiling_gets_that_net(monkeypatch):
    """A first Train of a preset while the prewarm compiles that preset's shape waits for
    the prewarm's net (compiled, from the pool) instead of compiling a second one beside it."""
    import threading
    monkeypatch.setattr(engine, "_POOL", {})
    cfg = SMALL.replace(units=15, sequences=20)
    built = []
    real_warm_up = Engine.warm_up

    def warm_up(self):  # the prewarm's compile, held until a Train of its shape is waiting
        built.append(self.net)
        while not waiting.is_set():
            waiting.wait(0.01)
        real_warm_up(self)
    monkeypatch.setattr(Engine, "warm_up", warm_up)
    waiting = threading.Event()
    t = threading.Thread(target=engine.prewarm, args=([cfg],))
    t.start()
    while not engine._WARMING:  # the prewarm has built its net and is compiling it
        t.join(0.01)
    sig = next(iter(engine._WARMING))
    got = []
    waiter = threading.Thread(target=lambda: got.append(engine.acquire_net(sig, 3, 0.01)))
    waiter.start()
    waiting.set()
    waiter.join()
    t.join()
    assert got[0] is built[0] and got[0].warm  # the prewarm's own net, compiled
    engine.release_net(got[0])


class _AutographNet(engine.Net):
    """The compiled loops as written before issue 11: Python `for` over tf.range, which
    autograph turned into the while loop. The reference the hand-written loops must match."""

    def _train_chunk_py(self, xs, ys, active, reset):
        import tensorflow as tf
        blank = tuple(self._outputs())
        n_out = len(blank)
        arrays = [tf.TensorArray(tf.float32, size=self.K) for _ in range(n_out)]
        for k in tf.range(self.K):
            def run(k=k):
                self._reset_if(reset[k])
                return self._step(xs[k], ys[k])[-n_out:]
            out = tf.cond(active[k], run, lambda: blank)
            arrays = [a.write(k, o) for a, o in zip(arrays, out)]
        return [a.stack() for a in arrays]

    def _val_chunk_py(self, xs, ys, w, reset):
        import tensorflow as tf
        saved = self.read_state()
        if self.stateful:
            for v in self.lstm.states:
                v.assign(tf.zeros_like(v))
        loss_sum, metric_sum = tf.constant(0.0), tf.constant(0.0)
        for k in tf.range(tf.shape(xs)[0]):
            self._reset_if(reset[k])
            p = self.model(xs[k], training=False)[0]
            loss_sum += tf.reduce_sum(engine._per_sample_loss(self.kind, ys[k], p) * w[k])
            metric_sum += tf.reduce_sum(engine._metric(self.kind, ys[k], p) * w[k])
        if self.stateful:
            for v, s in zip(self.lstm.states, saved):
                v.assign(s)
        return loss_sum / tf.reduce_sum(w), metric_sum / tf.reduce_sum(w)


@pytest.mark.parametrize("cfg,gradients", [
    (SMALL, True),  # LSTM, stateful, states + readout + gradients recorded
    (SMALL.replace(cell="GRU", stateful=False, layout="windows", shuffle="samples"), False),
    (SMALL.replace(task="sine", layout="steps", reset="never", batch_size=8, length=4), True),
])
def test_autograph_free_loops_are_bit_identical_to_the_autograph_ones(monkeypatch, cfg, gradients):
    """Every recorded array, the weights and the validation metrics, exactly equal."""
    def one(autograph: bool):
        with monkeypatch.context() as m:
            m.setattr(engine, "_POOL", {})  # a net of each kind, never the other's
            if autograph:
                m.setattr(engine, "AUTOGRAPH", True)
                m.setattr(engine, "Net", _AutographNet)
            eng = Engine(cfg, gradients=gradients)
            assert isinstance(eng.net, _AutographNet) == autograph
            try:
                return eng.run()
            finally:
                eng.close()

    new, ref = one(False), one(True)
    fields = [f for f in ("h0", "c0", "hT", "cT", "loss", "accuracy", "readout_h0", "grad_h0",
                          "grad_c0", "grad_x") if getattr(ref.trace, f) is not None]
    assert {"h0", "hT", "loss"} <= set(fields) and (not gradients or "grad_x" in fields)
    for f in fields:
        np.testing.assert_array_equal(getattr(new.trace, f), getattr(ref.trace, f), err_msg=f)
    for a, b in zip(new.weights, ref.weights, strict=True):
        np.testing.assert_array_equal(a, b)
    def drop_time(es):
        return [{k: v for k, v in e.items() if k != "seconds"} for e in es]
    assert drop_time(new.epochs) == drop_time(ref.epochs)  # losses, metrics, val_*
    assert all("val_loss" in e for e in new.epochs)


def test_chunk_bounds_cut_only_the_first_chunk():
    assert engine.chunk_bounds(40, 16) == [(0, 16), (16, 32), (32, 40)]
    assert engine.chunk_bounds(40, 16, 8) == [(0, 8), (8, 16), (16, 32), (32, 40)]
    assert engine.chunk_bounds(5, 16, 8) == [(0, 5)]  # an epoch shorter than the piece
    assert engine.chunk_bounds(12, 16, 8) == [(0, 8), (8, 12)]
    assert engine.chunk_bounds(40, 8, 8) == engine.chunk_bounds(40, 8)  # K no longer than it


@pytest.mark.parametrize("cfg", [
    SMALL.replace(sequences=100, epochs=3),  # stateful LSTM: resets and carries across calls
    SMALL.replace(sequences=100, cell="GRU", layers=2, stateful=False, layout="windows",
                  shuffle="samples"),
])
def test_a_short_first_call_changes_nothing_but_when_the_first_states_come(monkeypatch, cfg):
    """The run's first compiled call trains FIRST_PIECE batches only (the page's first frame
    comes sooner): same compiled loop (one trace), and the trace (replay data included), the
    weights and the epochs' figures are exactly those of a run without the cut. K is forced to
    16 so that an epoch spans several calls and the cut falls inside one."""
    def one(piece: int):
        with monkeypatch.context() as m:
            m.setattr(engine, "_POOL", {})  # a fresh net each: K=16 must not reach other tests
            m.setattr(engine, "chunk_batches", lambda B, L: 16)
            m.setattr(engine, "FIRST_PIECE", piece)
            eng, events = Engine(cfg), []
            try:
                assert eng.K == 16 and eng.train.n_batches >= 2 * 16
                return eng.run(on_event=events.append), events, eng.net
            finally:
                eng.close()

    (cut, ev_cut, net), (whole, ev_whole, _) = one(8), one(0)
    first = [e.done for e in ev_cut if e.kind == "batches"][0]
    assert first == 8 and [e.done for e in ev_whole if e.kind == "batches"][0] == 16
    assert net.train_chunk.experimental_get_tracing_count() == 1  # no second compile
    a, b = cut.trace.to_arrays(), whole.trace.to_arrays()
    assert a.keys() == b.keys() and "replay_x" in a and "h0" in a
    timed = trace_mod.EPOCH_COLUMNS.index("seconds")  # the only column that may differ
    a["val_epochs"], b["val_epochs"] = (np.delete(x["val_epochs"], timed, axis=1) for x in (a, b))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    for wa, wb in zip(cut.weights, whole.weights, strict=True):
        np.testing.assert_array_equal(wa, wb)

    def drop_time(es):
        return [{k: v for k, v in e.items() if k != "seconds"} for e in es]
    assert drop_time(cut.epochs) == drop_time(whole.epochs) and len(cut.epochs) == cfg.epochs
