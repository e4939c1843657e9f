"""Stacked recurrent layers (layers=2, 3) on real Keras: the engine trains the stack exactly as
`fit` does, every layer's own per-slot state is recorded, carried and replayed (layer N from
layer N-1's recomputed outputs), and a wrong state of any layer is detected."""
import os
import subprocess
import sys

import numpy as np
import pytest

from models import stacked
from models.codegen import generate
from models.config import RunConfig
from models.engine import Engine
from models.presets import PRESETS
from tests.engine_runs import SMALL, trained  # noqa: E402
from models.trace import REPLAY_TOLERANCE, Trace
from viz import carry_summary

import keras  # noqa: E402  (after models pinned the backend)

CASES = [("LSTM", 2), ("GRU", 3)]


@pytest.fixture(scope="module", params=CASES, ids=lambda c: f"{c[0]}x{c[1]}")
def stateful(request):
    cell, layers = request.param
    return trained(SMALL.replace(cell=cell, layers=layers))


def copy(t: Trace) -> Trace:
    return Trace.from_bytes(t.to_bytes())


def test_engine_agrees_with_plain_keras_fit(stateful):
    """The engine and model.fit (XLA), from the same initial weights, on the stacked model
    written the plain way (return_sequences below the top). Measured: LSTM x2 bit-identical
    (weights and every layer's state); GRU x3 weights differ by 4.6e-7 and states by 3.7e-8,
    the GRU's float32 rounding test_cells.py explains (XLA orders its gate arithmetic
    differently in the engine's K-step program and fit's one-step one), over three layers.
    The bound is test_cells.py's: 1e-6."""
    eng, r, init, final = stateful
    cfg = eng.cfg
    s = eng.train
    x = s.x[s.order.reshape(-1)]
    y = s.y[s.order.reshape(-1)].astype("float32")[:, None]
    inp = keras.Input(batch_shape=(cfg.batch_size, cfg.sample_len, 1))
    rnns = [getattr(keras.layers, cfg.cell)(cfg.units, stateful=True,
                                            return_sequences=i < cfg.layers - 1)
            for i in range(cfg.layers)]
    h = inp
    for rnn in rnns:
        h = rnn(h)
    model = keras.Model(inp, keras.layers.Dense(1, activation="sigmoid")(h))
    model.set_weights(init)
    model.compile(keras.optimizers.Adam(cfg.lr), "binary_crossentropy", jit_compile=True)
    model.fit(x, y, batch_size=cfg.batch_size, epochs=cfg.epochs, shuffle=False, verbose=0)

    states = [v for rnn in rnns for v in rnn.states]
    assert len(states) == len(final)
    werr = max(float(np.abs(a - b).max()) for a, b in zip(model.get_weights(), r.weights))
    serr = max(float(np.abs(v.numpy() - f).max()) for v, f in zip(states, final))
    print(f"{cfg.cell} x{cfg.layers}: engine vs fit: weights differ by {werr:g}, states by {serr:g}")
    assert werr <= 1e-6 and serr <= 1e-6, f"weights differ by {werr:g}, states by {serr:g}"
    # the trace's last states are each layer's own, in the order the layers are stacked
    per = len(final) // cfg.layers
    for L in range(1, cfg.layers + 1):
        np.testing.assert_array_equal(r.trace.layer_array("hT", L)[-1], final[(L - 1) * per])


def test_initial_weights_are_seeded_per_layer(stateful):
    """Every layer gets its own seeds (models/stacked.py): no two kernels alike."""
    eng, _, init, _ = stateful
    kernels = [init[3 * i + 1] for i in range(eng.cfg.layers)]  # recurrent: all (U, G*U)
    assert all(not np.array_equal(a, b) for i, a in enumerate(kernels) for b in kernels[i + 1:])
    again = Engine(eng.cfg.replace(seed=eng.cfg.seed))
    try:
        assert all(np.array_equal(a, b) for a, b in zip(again.initial_weights, init))
    finally:
        again.close()


def test_layer_one_keeps_the_one_layer_names_and_others_are_suffixed(stateful):
    eng, r, _, _ = stateful
    t, cfg = r.trace, eng.cfg
    keys = set(t.to_arrays())
    for L in range(1, cfg.layers + 1):
        assert set(stacked.state_keys(cfg.cell, L)) <= keys
        assert set(stacked.replay_keys(L)) <= keys
        assert f"grad_h0{stacked.suffix(L)}" in keys
    assert not any(k.endswith(f"_l{cfg.layers + 1}") for k in keys)
    assert {"h0", "hT"} <= keys and ("c0" in keys) == (cfg.cell == "LSTM")
    back = copy(t)
    assert back.layers == cfg.layers and back.carry_check() == t.carry_check()
    # layer 2 is a different state from layer 1, of the same shape
    assert t.layer_array("h0", 2).shape == t.h0.shape
    assert not np.array_equal(t.layer_array("hT", 2), t.hT)


def test_carry_and_replay_hold_on_every_layer(stateful):
    t = stateful[1].trace
    c = t.carry_check()
    rows = c["layers"]
    print(f"{t.cell} x{t.layers}: " + "; ".join(
        f"layer {r['layer']}: carry {r['max_carry_error']:g}, replay {r['max_replay_error']:.1e}"
        for r in rows))
    assert [r["layer"] for r in rows] == list(range(1, t.layers + 1))
    assert c["continuation"] > 0 and c["replayed"] == 2
    for r in rows:
        assert r["max_carry_error"] == 0.0 and r["max_fresh_abs"] == 0.0
        assert r["max_replay_error"] < 1e-5


def test_a_corrupted_state_of_any_upper_layer_fails_the_checks(stateful):
    t = stateful[1].trace
    for layer in range(2, t.layers + 1):
        # the replay: layer L's h0 of a replayed batch, carried from the batch before
        z = copy(t)
        k = int(z.replay["replay_batch"][-1])
        z.upper[f"h0_l{layer}"][k] += 0.3
        c = z.carry_check()
        bad = c["layers"][layer - 1]
        assert bad["max_replay_error"] > REPLAY_TOLERANCE and c["max_replay_error"] > REPLAY_TOLERANCE
        assert all(r["max_replay_error"] < 1e-5 for r in c["layers"][:layer - 1])  # below: fine
        assert bad["max_carry_error"] > 0 and "does NOT match" in carry_summary(z)
        # the carry identity alone: layer L's hT of a batch that is not replayed
        z = copy(t)
        z.upper[f"hT_l{layer}"][3] -= 0.2
        assert z.carry_check()["layers"][layer - 1]["max_carry_error"] == pytest.approx(0.2, abs=1e-6)
        assert z.carry_check()["max_carry_error"] == pytest.approx(0.2, abs=1e-6)


def test_wrong_upper_layer_weights_fail_the_replay(stateful):
    t = copy(stateful[1].trace)
    t.replay[f"replay_recurrent_l{t.layers}"][-1] += 0.2
    assert t.carry_check()["layers"][-1]["max_replay_error"] > REPLAY_TOLERANCE


def test_a_file_missing_a_layer_or_holding_an_extra_one_is_refused(stateful):
    t = stateful[1].trace
    a = t.to_arrays()
    del a["hT_l2"]
    with pytest.raises(ValueError, match="needs hT_l2"):
        Trace.from_arrays(a)
    a = t.to_arrays()
    a[f"h0_l{t.layers + 1}"] = a["h0"]
    with pytest.raises(ValueError, match=f"a {t.layers}-layer trace holds h0_l{t.layers + 1}"):
        Trace.from_arrays(a)
    a = t.to_arrays()
    del a["replay_bias_l2"]
    with pytest.raises(ValueError, match="layer 2's weights"):
        Trace.from_arrays(a)


def test_layer_view_holds_that_layers_states(stateful):
    t = stateful[1].trace
    v = t.layer_view(2)
    np.testing.assert_array_equal(v.h0, t.upper["h0_l2"])
    np.testing.assert_array_equal(v.grad_h0, t.upper["grad_h0_l2"])
    assert v.replay is None and v.n == t.n and t.layer_view(1) is t
    c = v.carry_check()
    assert "layers" not in c and c["max_carry_error"] == 0.0 and c["continuation"] > 0


def test_a_stateless_stack_starts_every_layer_from_zeros():
    t = trained(SMALL.replace(layers=2, stateful=False))[1].trace
    c = t.carry_check()
    assert c["carried"] == 0 and (t.h0 == 0).all() and (t.upper["h0_l2"] == 0).all()
    assert (t.upper["c0_l2"] == 0).all() and np.abs(t.upper["hT_l2"]).max() > 0
    assert all(r["max_replay_error"] < 1e-5 for r in c["layers"])


def test_one_layer_trace_keys_are_unchanged():
    """layers=1 writes exactly the keys a trace had before the setting (DESIGN.md)."""
    t = trained(SMALL.replace(epochs=1))[1].trace
    keys = set(t.to_arrays())
    assert not any("_l" in k for k in keys) and "layers" not in t.carry_check()
    assert {"h0", "c0", "hT", "cT", "replay_kernel"} <= keys


def test_layers_live_in_the_url_the_cli_and_the_script():
    cfg = SMALL.replace(layers=3)
    assert cfg.to_query()["layers"] == "3" and "layers" not in SMALL.to_query()
    back, errs = RunConfig.from_mapping(cfg.to_query())
    assert back == cfg and not errs
    bad, errs = RunConfig.from_mapping({"layers": "4"})
    assert bad.layers == 1 and errs == ["Stacked layers must be between 1 and 3 (got 4). Using 1."]
    src = generate(cfg)
    assert "LAYERS = 3" in src and "return_sequences=i < LAYERS - 1" in src
    assert "reset_all()" in src and "rnn.reset_state()" not in src
    one = generate(SMALL)
    assert "LAYERS" not in one and "rnn.reset_state()" in one


def test_cli_refuses_too_many_layers_with_a_message():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    p = subprocess.run([sys.executable, "-m", "models", "run", "chunks-stateful", "--layers", "4"],
                       capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert "Stacked layers must be between 1 and 3" in p.stderr


def test_the_stacked_preset_changes_only_layers():
    a, b = PRESETS["stacked-chunks-stateful"].config, PRESETS["chunks-stateful"].config
    assert a == b.replace(layers=2)


def test_generated_stacked_script_runs(tmp_path):
    path = tmp_path / "stacked.py"
    path.write_text(generate(SMALL.replace(layers=3, cell="GRU"), quick=True))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    p = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=300,
                       cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.strip().splitlines()[-1].startswith("val_accuracy ")
    from test_codegen import check_stream
    # the batch-1 copy streams like slot 0, in every layer
    check_stream(p.stdout, SMALL.replace(layers=3, cell="GRU"))


def test_flow_tab_offers_the_layer_and_draws_its_states():
    """Real Streamlit (AppTest): a stacked run's flow offers a layer choice and colours by the
    chosen layer's h0; a one-layer run offers none."""
    import json
    from test_app import app, wait_until_idle
    from test_flow_ui import _arr
    at = app(preset="stacked-chunks-stateful", epochs="1", sequences="120")
    assert at.sidebar.number_input(key="f_layers").value == 2  # the sidebar widget
    at.sidebar.button(key="btn_train").click().run()
    wait_until_idle(at)
    assert not at.exception
    tr = at.session_state["results"]["run"]["trace"]
    assert tr.layers == 2
    assert any("Each of the 2 stacked layers keeps its own state" in c.value for c in at.caption)
    at.radio(key="flow_colour").set_value("unit").run()
    for layer, h0 in ((1, tr.h0), (2, tr.upper["h0_l2"])):
        at.radio(key="flow_layer").set_value(layer).run()
        assert not at.exception
        [chart] = [c for c in at.get("plotly_chart") if "flow_fig" in c.proto.id]
        z = _arr(json.loads(chart.proto.spec)["data"][0]["z"])
        assert np.allclose(z, h0[:z.shape[1], :z.shape[0], 0].T, atol=1e-6), layer
    # the Hidden state tab: the same choice, its own widget; opens on the top layer
    at.session_state["view"] = "Hidden state"
    at.run()
    assert at.radio(key="hidden_layer").value == 2
    for layer, hT in ((2, tr.upper["hT_l2"]), (1, tr.hT)):
        at.radio(key="hidden_layer").set_value(layer).run()
        assert not at.exception
        [chart] = [c for c in at.get("plotly_chart") if "hidden_fig" in c.proto.id]
        spec = json.loads(chart.proto.spec)
        z = _arr(spec["data"][0]["z"])
        assert np.allclose(z, hT[:, 0, :].T, atol=1e-6), layer  # slot 0, every recorded batch
        assert spec["layout"]["title"]["text"].startswith(f"Slot 0, layer {layer} of 2: hT")
    assert not np.allclose(tr.hT[:, 0], tr.upper["hT_l2"][:, 0])  # the two layers differ
    one = app(preset="chunks-stateful", epochs="1", sequences="120")
    one.sidebar.button(key="btn_train").click().run()
    wait_until_idle(one)
    assert not [r for r in one.radio if r.key == "flow_layer"]
    one.session_state["view"] = "Hidden state"
    one.run()
    assert not [r for r in one.radio if r.key == "hidden_layer"]


def test_live_panel_offers_the_layer_and_draws_its_states():
    """While a stacked run trains, the live flow offers the layer choice (top layer first) and
    draws the chosen layer's newest states: its figure is the one viz draws from that layer
    of the run's published newest batches (real training, real Streamlit)."""
    import json
    import time
    import viz
    from test_app import app
    from ui import runs, views
    # long enough to still train while the page polls (the trainer process trains fast)
    at = app(preset="stacked-chunks-stateful", epochs="480")
    at.sidebar.button(key="btn_train").click().run()
    seen, t0 = {}, time.time()
    job = at.session_state["runs"]["run"]["job"]
    while len(seen) < 2 and time.time() - t0 < 90 and at.session_state["runs"]:
        time.sleep(0.3)
        # the page draws what was published while it ran: the newest batches before or after
        candidates = [runs.manager().live(job, "recent")]
        at.run()
        candidates.append(runs.manager().live(job, "recent"))
        assert not at.exception, at.exception
        radios = [r for r in at.radio if r.key == "live_layer"]
        charts = [c for c in at.get("plotly_chart") if "live_flow_run" in c.proto.id]
        if not radios or not charts:
            continue
        layer = radios[0].value
        if not seen:
            assert layer == 2  # the top layer, the one Dense reads, first
        spec = json.loads(charts[0].proto.spec)
        wants = [viz.flow_figure(r.layer_view(layer), window=runs.LIVE_BATCHES,
                                 max_slots=views.LIVE_SLOTS, max_batches=runs.LIVE_BATCHES)
                 for r in candidates if r is not None]
        wants = [w for w in wants
                 if spec["layout"]["xaxis"]["ticktext"] == list(w.layout.xaxis.ticktext)]
        if not wants:
            continue  # batches were published twice while the page drew: try again
        want = wants[0]
        assert f"layer {layer} of 2" in spec["layout"]["title"]["text"]
        texts = [d.get("text") for d in spec["data"] if d.get("name") == "continued"]
        assert texts == [list(d.text) for d in want.data if d.name == "continued"]
        seen[layer] = texts
        radios[0].set_value(1)
    at.sidebar.button(key="btn_stop").click().run()
    # leave nothing behind: the job ends and the page collects it (a job or an uncollected
    # result keeps the process-wide manager's threads alive into later tests)
    runs.manager().wait(job, timeout=60)
    t1 = time.time()
    while at.session_state["runs"] and time.time() - t1 < 30:
        time.sleep(0.2)
        at.run()
    assert set(seen) == {1, 2}, f"saw the live flow for layers {sorted(seen)}"
    assert seen[1] != seen[2]  # the layers' states differ


@pytest.mark.parametrize("stateful", [c for c in CASES if c[1] == 2], indirect=True,
                         ids=lambda c: f"{c[0]}x{c[1]}")  # the claim's preset has two layers
def test_the_every_layer_claim_holds_and_fails_on_a_corrupted_layer_2(stateful):
    from models import claims
    eng, r, _, _ = stateful
    assert eng.cfg.layers == 2
    claim = claims.BY_ID["stacked-every-layer-carried"]
    res = {"cfg": eng.cfg, "trace": r.trace, "epochs": r.epochs, "metric": r.metric}
    judge = lambda t: claim.evaluate({claim.preset: claims.measure({**res, "trace": t},  # noqa: E731
                                                                   probe=False)})
    assert judge(r.trace).holds
    z = copy(r.trace)
    z.upper["hT_l2"][3] += 0.1  # layer 2's state handed on wrongly once; layer 1 untouched
    v = judge(z)
    assert not v.holds and "layer 2: carry error 0.1" in v.measured, v.measured


def test_a_stacked_run_costs_more_and_a_too_costly_stack_is_refused():
    from models import cost
    one, three = cost.estimate(SMALL), cost.estimate(SMALL.replace(layers=3))
    assert three.trace_bytes > one.trace_bytes and three.seconds > one.seconds
    # recording three layers' states needs three times the memory: refused, with the fix
    big = RunConfig(layout="chunks", length=5, batch_size=50, units=32, sequences=1200,
                    seq_len=100, epochs=20)
    assert big.problems() == []
    [msg] = big.replace(layers=3).problems()
    assert "Lower stacked layers to" in msg, msg


@pytest.mark.parametrize("stateful_", [True, False])
def test_units_panel_and_batch1_copy_read_a_stack(stateful_):
    """The units panel lists every layer's states and the top layer's output; the batch-1
    inference copy loads a stacked run's weights."""
    from models import inference, shapes
    cfg = SMALL.replace(layers=2, stateful=stateful_, epochs=1)
    rows = shapes.for_config(cfg)
    states = [r for r in rows if r.tensor.startswith("State ")]
    assert [r.tensor for r in states] == [f"State {n} ({w}, layer {L} of 2)" for L in (1, 2)
                                          for n, w in (("h", "hidden state"), ("c", "cell state"))]
    out = next(r for r in rows if r.tensor.endswith("as the app uses it)"))
    assert out.shape == (cfg.batch_size, cfg.units)
    if stateful_:
        eng = Engine(cfg)
        try:
            w = eng.run(validate=False).weights
        finally:
            eng.close()
        model, layer = inference.build(cfg, w, "binary", 1, 1)
        assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), w))
