"""LSTM, GRU and SimpleRNN on real Keras: the engine trains the real layer exactly as `fit`
does, records only the state tensors the cell has, and the carry and replay checks (each
cell's own NumPy equations) hold on real runs and fail on corrupted ones."""
import numpy as np
import pytest

from models import cells
from models.codegen import generate
from models.config import RunConfig
from tests.engine_runs import SMALL, trained  # noqa: E402
from models.trace import REPLAY_TOLERANCE, Trace
from viz import carry_summary

import keras  # noqa: E402  (after models pinned the backend)

H_ONLY = ("GRU", "SimpleRNN")


@pytest.fixture(scope="module", params=cells.CELLS)
def stateful(request):
    return trained(SMALL.replace(cell=request.param))


@pytest.fixture(scope="module", params=cells.CELLS)
def stateless(request):
    return trained(SMALL.replace(cell=request.param, stateful=False))[1].trace


def copy(t: Trace) -> Trace:
    return Trace.from_bytes(t.to_bytes())


def _fit_from(eng, init, unroll: bool):
    """model.fit (XLA) over the engine's batches from its initial weights, the layer built with
    `unroll`; returns (|weights - engine's| max, |states - engine's final| max, the layer)."""
    cfg, r, final = eng.cfg, eng.result, eng.final
    s = eng.train
    x = s.x[s.order.reshape(-1)]
    y = s.y[s.order.reshape(-1)].astype("float32")[:, None]
    inp = keras.Input(batch_shape=(cfg.batch_size, cfg.sample_len, 1))
    rnn = getattr(keras.layers, cfg.cell)(cfg.units, stateful=True, unroll=unroll)
    model = keras.Model(inp, keras.layers.Dense(1, activation="sigmoid")(rnn(inp)))
    model.set_weights(init)
    model.compile(keras.optimizers.Adam(cfg.lr), "binary_crossentropy", jit_compile=True)
    model.fit(x, y, batch_size=cfg.batch_size, epochs=cfg.epochs, shuffle=False, verbose=0)
    assert len(rnn.states) == len(final) == len(cells.state_names(cfg.cell))
    werr = max(float(np.abs(a - b).max()) for a, b in zip(model.get_weights(), r.weights))
    serr = max(float(np.abs(v.numpy() - f).max()) for v, f in zip(rnn.states, final))
    return werr, serr, rnn


def _trained(cfg):
    eng, r, init, final = trained(cfg)
    eng.result, eng.final = r, final
    return eng, r, init, final


def test_engine_agrees_with_plain_keras_fit(stateful):
    """The engine and model.fit, both XLA-compiled, from the same initial weights, 80 batches.
    Measured: LSTM and SimpleRNN bit-identical; GRU weights differ by 1.5e-7 and states by
    9e-9, float32 rounding (one ulp of a weight near 1): fit compiles one train step per XLA
    program, the engine K steps in one, and XLA is free to fuse and order the GRU's
    elementwise gate arithmetic (z*h + (1-z)*hh) differently in the two. The bound is the
    LSTM test's (test_engine.py): without XLA in fit, rounding differs by ~1e-6."""
    eng, r, init, final = stateful
    eng.result, eng.final = r, final
    assert not cells.unroll(eng.cfg.cell, eng.cfg.sample_len)  # samples of 5 steps: a loop
    werr, serr, _ = _fit_from(eng, init, unroll=False)
    print(f"{eng.cfg.cell}: engine vs fit: weights differ by {werr:g}, states by {serr:g}")
    assert werr <= 1e-6 and serr <= 1e-6, f"weights differ by {werr:g}, states by {serr:g}"
    np.testing.assert_array_equal(r.trace.hT[-1], final[0])  # the trace's last h is the layer's


# One step per batch (the steps layout), 10 slots: 200 batches over 2 epochs
STEPS = SMALL.replace(layout="steps")


@pytest.mark.parametrize("cell", H_ONLY)
def test_one_step_samples_train_an_unrolled_layer_as_fit_does(cell):
    """A GRU or SimpleRNN reading one-step samples is built with unroll=True (cells.unroll:
    no while loop in the compiled chunk, faster). The engine and model.fit (XLA) with the
    same build, from the same initial weights, end in the same place; fit on Keras's default
    build (a loop over the one step) too: unrolling changes no equation."""
    eng, r, init, final = _trained(STEPS.replace(cell=cell))
    assert cells.unroll(cell, eng.cfg.sample_len)
    from models.engine import rnn_layers
    assert [la.unroll for la in rnn_layers(eng.model)] == [True]
    werr, serr, rnn = _fit_from(eng, init, unroll=True)
    assert rnn.unroll
    dw, ds, _ = _fit_from(eng, init, unroll=False)
    print(f"{cell}, one-step samples: engine vs fit (unrolled): weights differ by {werr:g}, "
          f"states by {serr:g}; vs fit (loop): {dw:g}, {ds:g}")
    assert werr <= 1e-6 and serr <= 1e-6, f"weights differ by {werr:g}, states by {serr:g}"
    assert dw <= 1e-6 and ds <= 1e-6, f"weights differ by {dw:g}, states by {ds:g}"
    np.testing.assert_array_equal(r.trace.hT[-1], final[0])


def test_the_trace_holds_exactly_the_states_the_cell_has(stateful):
    eng, r, _, _ = stateful
    t = r.trace
    keys = set(t.to_arrays())
    if eng.cfg.cell == "LSTM":  # a one-layer LSTM trace: exactly the DESIGN.md keys
        assert {"h0", "c0", "hT", "cT", "grad_h0", "grad_c0"} <= keys
        assert t.c0.shape == t.h0.shape
    else:  # no fake zeros: the keys are absent
        assert {"h0", "hT", "grad_h0", "grad_x"} <= keys
        assert not keys & {"c0", "cT", "grad_c0"}, keys & {"c0", "cT", "grad_c0"}
        assert t.c0 is None and t.cT is None and t.grad_c0 is None
        assert f"a {eng.cfg.cell} carries h only (no c)" in carry_summary(t)
    back = copy(t)
    assert back.cell == eng.cfg.cell and set(back.to_arrays()) == keys
    assert back.carry_check() == t.carry_check()


def test_carry_and_replay_hold_on_a_stateful_run(stateful):
    t = stateful[1].trace
    c = t.carry_check()
    print(f"{t.cell}: carry error {c['max_carry_error']}, replay error {c['max_replay_error']:.1e}")
    assert c["continuation"] > 0 and c["max_carry_error"] == 0.0 and c["max_fresh_abs"] == 0.0
    assert c["replayed"] == 2 and c["max_replay_error"] < 1e-5
    # epoch 2 starts from the state epoch 1 ended with: the same replay from zeros fails
    k = int(t.replay["replay_batch"][1])
    assert not t.reset_before[k] and np.abs(t.h0[k]).max() > 0
    z = copy(t)
    for name in cells.state_names(t.cell):
        getattr(z, f"{name}0")[k] = 0
    assert z.carry_check()["max_replay_error"] > REPLAY_TOLERANCE


def test_replay_from_zeros_matches_a_stateless_run(stateless):
    c = stateless.carry_check()
    assert c["carried"] == 0 and (stateless.h0 == 0).all()
    assert c["replayed"] == 2 and c["max_replay_error"] < 1e-5


def _corrupt_h0(t: Trace, what: str) -> None:
    t = copy(t)
    t.h0[int(t.replay["replay_batch"][-1])] += 0.3
    err = t.carry_check()["max_replay_error"]
    print(f"{t.cell} {what}: h0 + 0.3 replays off by {err:.2e}")
    assert err > REPLAY_TOLERANCE
    assert "does NOT match" in carry_summary(t)


def test_a_corrupted_h0_fails_the_replay_of_a_stateful_run(stateful):
    _corrupt_h0(stateful[1].trace, "stateful")


def test_a_corrupted_h0_fails_the_replay_of_a_stateless_run(stateless):
    _corrupt_h0(stateless, "stateless")


@pytest.mark.parametrize("key", ["replay_kernel", "replay_recurrent", "replay_bias"])
def test_wrong_weights_fail_the_replay(stateful, key):
    t = copy(stateful[1].trace)
    t.replay[key][-1] += 0.2
    assert t.carry_check()["max_replay_error"] > REPLAY_TOLERANCE


def test_a_gru_file_with_a_c_state_is_refused(stateful):
    t = stateful[1].trace
    a = t.to_arrays()
    if t.cell == "LSTM":
        del a["c0"]
        with pytest.raises(ValueError, match="needs c0 and cT"):
            Trace.from_arrays(a)
    else:
        a["c0"] = a["cT"] = np.zeros_like(a["h0"])
        with pytest.raises(ValueError, match=f"a {t.cell} has no c state"):
            Trace.from_arrays(a)


def _fd_grad_h0(t: Trace, j: int, eps: float = 1e-5) -> np.ndarray:
    """|dL/dh0| per slot of replayed batch j by central differences of the cell's NumPy
    forward pass and the sigmoid Dense readout (binary cross-entropy, mean over B slots)."""
    r = t.replay
    k = int(r["replay_batch"][j])
    x = r["replay_x"][j].astype(np.float64)
    S, U = x.shape[0], t.units
    h0 = t.h0[k, :S].astype(np.float64)
    d = np.zeros((2 * U, S, U))
    for u in range(U):
        d[2 * u, :, u], d[2 * u + 1, :, u] = eps, -eps
    m = 2 * U
    rep = lambda a: np.repeat(a[j][None], m, axis=0)  # noqa: E731
    states = (h0[None] + d,)
    if t.cell == "LSTM":  # c0 held fixed: this is the h0 part of the gradient
        states += (np.repeat(t.c0[k, :S].astype(np.float64)[None], m, 0),)
    h = cells.run_numpy(t.cell, np.repeat(x[None], m, 0), states, rep(r["replay_kernel"]),
                        rep(r["replay_recurrent"]), rep(r["replay_bias"]))[0]
    p = 1 / (1 + np.exp(-(h @ r["replay_dense_kernel"][j] + r["replay_dense_bias"][j])))[..., 0]
    y = t.target[k, :S][None]
    loss = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    g = (loss[0::2] - loss[1::2]) / (2 * eps) / t.batch_size
    return np.linalg.norm(g, axis=0)


def test_gradients_to_h0_are_the_tapes_and_only_lstm_has_c(stateful):
    t = stateful[1].trace
    assert (t.grad_c0 is not None) == (t.cell == "LSTM")
    assert t.grad_h0.shape == (t.n, t.batch_size) and t.grad_x.shape == (t.n, SMALL.length)
    for j, k in enumerate(t.replay["replay_batch"].tolist()):
        mine = _fd_grad_h0(t, j)
        rel = np.abs(mine - t.grad_h0[k]).max() / np.abs(mine).max()
        print(f"{t.cell} batch {k}: |dL/dh0| relative error {rel:.1e}")
        assert rel < 1e-3


@pytest.mark.parametrize("cell", H_ONLY)
def test_cell_lives_in_the_url_and_the_script(cell):
    cfg = SMALL.replace(cell=cell)
    assert cfg.to_query()["cell"] == cell
    back, errs = RunConfig.from_mapping(cfg.to_query())
    assert back == cfg and not errs
    src = generate(cfg)
    assert f"rnn = keras.layers.{cell}(" in src and "keras.layers.LSTM(" not in src
    assert "rnn.states = [h] (no c)" in src and f"cell={cell}" in src
    assert f"python stateful_{cell.lower()}.py" in src and "stateful_lstm" not in src
    bad, errs = RunConfig.from_mapping({"cell": "LSTMX"})
    assert bad.cell == "LSTM" and errs == ["Cell type must be one of LSTM, GRU, SimpleRNN. Using LSTM."]


def test_the_page_says_the_cell_of_the_settings():
    """Sentences about the run name its cell (AppTest, no training): the page's opening question
    and the Keras code tab's script; 'LSTM' stays where the sentence is about the LSTM."""
    from test_app import app, show
    at = app(preset="gru-chunks-stateful")
    assert any("in a Keras GRU layer?" in c.value for c in at.caption)
    assert not any("Keras LSTM layer" in c.value for c in at.caption)
    show(at, "Keras code")
    code = "\n".join(c.value for c in at.code)
    assert "python stateful_gru.py" in code and "keras.layers.GRU(" in code
    show(at, "Answers")
    assert any("stateful recurrent layers in Keras (LSTM, GRU, SimpleRNN)" in c.value
               for c in at.caption)
    lstm = app(preset="chunks-stateful")
    assert any("in a Keras LSTM layer?" in c.value for c in lstm.caption)
