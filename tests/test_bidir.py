"""The `bidirectional` setting on real Keras: the engine trains keras.layers.Bidirectional exactly
as `fit` does, both directions' own per-slot states are recorded from forward_layer and
backward_layer, carried, reset and replayed (the backward one over the inputs reversed in time),
and the backward carry is named for what it is (WRONG_END), not a continuation."""
import numpy as np
import pytest

from models import bidir, cost, engine
from models.codegen import generate
from models.config import RunConfig
from models.engine import Engine
from models.presets import PRESETS
from models.trace import CONTINUATION, REPLAY_TOLERANCE, WRONG_END, Trace, carry_kinds
from tests.engine_runs import SMALL, trained

import keras  # noqa: E402  (after models pinned the backend)

BIDI = SMALL.replace(bidirectional=True)


@pytest.fixture(scope="module")
def stateful():
    return trained(BIDI)


def copy(t: Trace) -> Trace:
    return Trace.from_bytes(t.to_bytes())


def test_engine_agrees_with_plain_keras_fit(stateful):
    """The engine and model.fit (XLA), from the same initial weights, on the Bidirectional
    model written the plain way. Measured: weights differ by 3.0e-7 and states by 2.4e-6 (on
    a c of 4.2: 1.1e-6 relative at most, a few float32 ulps). The engine without recording is
    bit-identical to fit (measured, 0.0 on weights and all four states); recording the
    readout, Dense applied to [h0, h0_bw] inside the step's XLA program, changes how XLA
    fuses the step's arithmetic, and the recurrence carries the ulps along. Bound: 1e-6 on
    weights, 1e-5 relative on states (models/inference.py's STREAM_TOLERANCE)."""
    eng, r, init, final = stateful
    cfg = eng.cfg
    s = eng.train
    x = s.x[s.order.reshape(-1)]
    y = s.y[s.order.reshape(-1)].astype("float32")[:, None]
    inp = keras.Input(batch_shape=(cfg.batch_size, cfg.sample_len, 1))
    bi = keras.layers.Bidirectional(
        keras.layers.LSTM(cfg.units, stateful=True),
        backward_layer=keras.layers.LSTM(cfg.units, stateful=True, go_backwards=True))
    model = keras.Model(inp, keras.layers.Dense(1, activation="sigmoid")(bi(inp)))
    model.set_weights(init)
    model.compile(keras.optimizers.Adam(cfg.lr), "binary_crossentropy", jit_compile=True)
    model.fit(x, y, batch_size=cfg.batch_size, epochs=cfg.epochs, shuffle=False, verbose=0)
    states = list(bi.forward_layer.states) + list(bi.backward_layer.states)
    assert len(states) == len(final) == 4
    werr = max(float(np.abs(a - b).max()) for a, b in zip(model.get_weights(), r.weights))
    serr = max(float((np.abs(v.numpy() - f) / np.maximum(1.0, np.abs(f))).max())
               for v, f in zip(states, final))
    print(f"bidirectional LSTM: engine vs fit: weights differ by {werr:g}, states by {serr:g} "
          f"(relative where |state| > 1)")
    assert werr <= 1e-6 and serr <= 1e-5, f"weights differ by {werr:g}, states by {serr:g}"
    # the trace's last states are each direction's own: forward h, c, then backward h, c
    np.testing.assert_array_equal(r.trace.hT[-1], final[0])
    np.testing.assert_array_equal(r.trace.upper["hT_bw"][-1], final[2])
    np.testing.assert_array_equal(r.trace.upper["cT_bw"][-1], final[3])


def test_each_direction_is_seeded_on_its_own_and_pooled_equals_fresh(stateful):
    eng, _, init, _ = stateful
    assert not np.array_equal(init[1], init[4])  # forward vs backward recurrent kernel
    first = trained(BIDI.replace(seed=11))[1]
    assert engine._POOL  # the net went back to the pool and is reused, re-seeded
    again = trained(BIDI.replace(seed=11))[1]
    for a, b in zip(first.weights, again.weights):
        np.testing.assert_array_equal(a, b)
    fresh = engine.build_model(BIDI.replace(seed=12), 1, 1, "binary")[0].get_weights()
    e = Engine(BIDI.replace(seed=12))
    try:
        assert len(fresh) == len(e.initial_weights) == 8  # 2 x (kernel, recurrent, bias) + Dense
        for a, b in zip(fresh, e.initial_weights):
            np.testing.assert_array_equal(a, b)
    finally:
        e.close()
    # the forward direction starts where the same run without the setting starts
    plain = Engine(SMALL.replace(seed=12))
    try:
        for a, b in zip(plain.initial_weights[:3], fresh[:3]):
            np.testing.assert_array_equal(a, b)
    finally:
        plain.close()


def test_both_directions_carried_and_replayed_and_the_backward_carry_is_named(stateful):
    t = stateful[1].trace
    c = t.carry_check()
    fw, bw = c["directions"]
    print(f"forward: {fw}\nbackward: {bw}")
    assert c["carried"] > 0 and c["replayed"] == 2
    for row in (fw, bw):
        assert row["max_carry_error"] == 0.0 and row["max_fresh_abs"] == 0.0
        assert row["max_replay_error"] < 1e-5
    # forward: a continuation; backward: the same slots, entering at the wrong end
    assert fw["continuation"] == c["continuation"] > 0 and fw["wrong_end"] == 0
    assert bw["wrong_end"] == fw["continuation"] and bw["continuation"] == 0
    kinds = carry_kinds(t.direction_view("backward"))
    np.testing.assert_array_equal(kinds == WRONG_END, carry_kinds(t) == CONTINUATION)
    # the backward state really is another state, stored and carried on its own
    assert not np.array_equal(t.upper["hT_bw"], t.hT)


def test_a_corrupted_backward_state_fails_the_checks(stateful):
    t = stateful[1].trace
    z = copy(t)
    k = int(z.replay["replay_batch"][-1])
    z.upper["h0_bw"][k] += 0.3  # the backward h0 of a replayed batch
    c = z.carry_check()
    fw, bw = c["directions"]
    assert bw["max_replay_error"] > REPLAY_TOLERANCE and c["max_replay_error"] > REPLAY_TOLERANCE
    assert fw["max_replay_error"] < 1e-5  # the forward direction is untouched
    z = copy(t)
    z.upper["hT_bw"][3] -= 0.2  # handed on wrongly once (a batch not replayed)
    assert z.carry_check()["directions"][1]["max_carry_error"] == pytest.approx(0.2, abs=1e-6)
    # the backward replay reads the inputs reversed: forwards they do not give hT_bw
    z = copy(t)
    z.replay["replay_x"] = np.ascontiguousarray(z.replay["replay_x"][:, :, ::-1])
    assert z.carry_check()["directions"][1]["max_replay_error"] > REPLAY_TOLERANCE


def test_the_backward_view_is_the_backward_layer(stateful):
    t = stateful[1].trace
    v = t.direction_view("backward")
    np.testing.assert_array_equal(v.h0, t.upper["h0_bw"])
    np.testing.assert_array_equal(v.cT, t.upper["cT_bw"])
    np.testing.assert_array_equal(v.grad_h0, t.upper["grad_h0_bw"])
    assert v.direction == "backward" and t.direction_view("forward") is t
    c = v.carry_check()
    assert c["continuation"] == 0 and c["wrong_end"] == t.carry_check()["continuation"] > 0
    assert c["max_replay_error"] < 1e-5


def test_a_file_missing_the_backward_direction_or_holding_a_stray_one_is_refused(stateful):
    t = stateful[1].trace
    a = t.to_arrays()
    del a["cT_bw"]
    with pytest.raises(ValueError, match="needs cT_bw"):
        Trace.from_arrays(a)
    a = t.to_arrays()
    del a["replay_kernel_bw"]
    with pytest.raises(ValueError, match="backward layer's weights"):
        Trace.from_arrays(a)
    # the same record as a one-direction trace: the keys from before the setting
    a = {k: v for k, v in t.to_arrays().items() if not k.endswith("_bw")}
    a["config"] = np.array(SMALL.to_json())
    a["replay_dense_kernel"] = a["replay_dense_kernel"][:, :SMALL.units]
    plain = Trace.from_arrays(a)
    assert "directions" not in plain.carry_check() and not plain.upper
    a["h0_bw"] = a["h0"]
    with pytest.raises(ValueError, match="one-direction trace holds h0_bw"):
        Trace.from_arrays(a)


def test_resets_reach_both_directions_per_slot():
    """Packed streams reset single slots: both directions' rows of a reset slot start from
    zeros, every other slot of that batch from exactly its own hT (per direction)."""
    t = trained(BIDI.replace(layout="packed", reset="sequence", epochs=1))[1].trace  # pooled net
    r = t.reset_slots
    partial = r.any(axis=1) & ~r.all(axis=1)
    assert partial.any()
    for direction in bidir.DIRECTIONS:
        h0 = t.direction_array("h0", direction)
        hT = t.direction_array("hT", direction)
        assert (h0[r] == 0).all() and np.abs(hT).max() > 0
        k = np.nonzero(partial)[0]
        k = k[k > 0]
        keep = ~r[k]
        np.testing.assert_array_equal(h0[k][keep], hT[k - 1][keep])
    assert all(d["max_carry_error"] == 0.0 and d["max_fresh_abs"] == 0.0
               for d in t.carry_check()["directions"])


def test_the_setting_lives_in_the_url_the_cli_and_the_script():
    assert BIDI.to_query()["bidirectional"] == "true" and "bidirectional" not in SMALL.to_query()
    back, errs = RunConfig.from_mapping(BIDI.to_query())
    assert back == BIDI and not errs
    assert BIDI.replace(layers=2).problems() == []  # stacked Bidirectional layers are built
    src = generate(BIDI)
    assert "keras.layers.Bidirectional(" in src and "go_backwards=True" in src
    assert "seed=SEED + 7" in src and bidir.seeds(0, 1, "backward") == (7, 8)
    assert "Bidirectional" not in generate(SMALL)


def test_cli_takes_the_setting_and_still_refuses_a_bad_stack_with_a_message(capsys):
    """A stack of Bidirectional layers is built now (tests/test_bidir.py, stacked section);
    what the settings cannot hold is still refused in words."""
    from models.__main__ import main
    assert PRESETS["stacked-chunks-stateful"].config.replace(bidirectional=True).problems() == []
    assert main(["run", "stacked-chunks-stateful", "--bidirectional", "--layers", "4"]) == 2
    err = capsys.readouterr().err
    assert "Stacked layers must be between 1 and 3" in err and "Bidirectional runs" not in err


def test_the_preset_changes_only_bidirectional_and_costs_twice_the_recurrent_work():
    a, b = PRESETS["bidirectional-chunks-stateful"].config, PRESETS["chunks-stateful"].config
    assert a == b.replace(bidirectional=True)
    one, two = cost.estimate(b), cost.estimate(a)
    assert two.seconds_per_batch == pytest.approx(2 * one.seconds_per_batch)
    assert two.trace_bytes > 1.5 * one.trace_bytes


def test_flow_tab_offers_the_direction_and_draws_its_states():
    """Real Streamlit (AppTest): a Bidirectional run's flow offers "Direction shown" and colours
    by the chosen direction's h0; the backward one is labelled as the wrong-end carry."""
    import json

    from test_app import app, wait_until_idle
    from test_flow_ui import _arr
    at = app(preset="bidirectional-chunks-stateful", epochs="1", sequences="120")
    assert at.sidebar.toggle(key="f_bidirectional").value is True  # the sidebar widget
    at.sidebar.button(key="btn_train").click().run()
    wait_until_idle(at)
    assert not at.exception
    tr = at.session_state["results"]["run"]["trace"]
    assert tr.bidirectional
    assert any(c.value.startswith("Bidirectional: the forward and the backward layer")
               for c in at.caption)
    at.radio(key="flow_colour").set_value("unit").run()
    for direction, h0 in (("forward", tr.h0), ("backward", tr.upper["h0_bw"])):
        at.radio(key="flow_direction").set_value(direction).run()
        assert not at.exception
        [chart] = [c for c in at.get("plotly_chart") if "flow_fig" in c.proto.id]
        spec = json.loads(chart.proto.spec)
        z = _arr(spec["data"][0]["z"])
        assert np.allclose(z, h0[:z.shape[1], :z.shape[0], 0].T, atol=1e-6), direction
        names = {d.get("name") for d in spec["data"]}
        assert ("◀ backward: start of chunk → end of next" in names) == (direction == "backward")
    assert any("backward carries enter the next chunk at the wrong end" in m.value
               for m in at.markdown)


def test_hidden_tab_and_gradient_view_show_the_chosen_direction():
    """Real Streamlit (AppTest): the Hidden state tab and the gradient view offer the same
    "Direction shown" choice as the flow (one control, its own key per view) and draw the
    chosen direction's own arrays: hT_bw / h0_bw and grad_h0_bw for the backward layer.
    A one-direction run offers no choice and keeps its titles."""
    import json

    from test_app import app, wait_until_idle
    from test_flow_ui import _arr

    def chart(at, key):
        [c] = [c for c in at.get("plotly_chart") if key in c.proto.id]
        return json.loads(c.proto.spec)

    at = app(preset="bidirectional-chunks-stateful", epochs="1", sequences="120")
    at.sidebar.button(key="btn_train").click().run()
    wait_until_idle(at)
    assert not at.exception
    tr = at.session_state["results"]["run"]["trace"]
    # the two directions' states differ, so a view showing the wrong one fails below
    assert not np.allclose(tr.hT[:, 0], tr.upper["hT_bw"][:, 0])
    at.session_state["view"] = "Hidden state"
    at.run()
    assert at.radio(key="hidden_direction").value == "forward"
    for direction, which, arr in (("backward", "hT", tr.upper["hT_bw"]),
                                  ("backward", "h0", tr.upper["h0_bw"]),
                                  ("forward", "hT", tr.hT)):
        at.radio(key="hidden_direction").set_value(direction).run()
        at.radio(key="hidden_which").set_value(which).run()
        assert not at.exception
        spec = chart(at, "hidden_fig")
        z = _arr(spec["data"][0]["z"])
        assert np.allclose(z, arr[:, 0, :].T, atol=1e-6), (direction, which)
        name = which + ("_bw" if direction == "backward" else "")
        assert spec["layout"]["title"]["text"].startswith(f"Slot 0, {direction} direction: {name} ")
        names = {d.get("name") for d in spec["data"]}
        # the backward carry's ◀ marks, where the forward one continues its sequence
        assert ("◀ backward: start of chunk → end of next" in names) == (direction == "backward")
        assert any(c.value.startswith("The backward layer reads each batch last step first")
                   for c in at.caption) == (direction == "backward")
    # the gradient view under the flow: the flow's direction, the chosen layer's |dL/dh0|
    at.session_state["view"] = "State flow"
    at.run()
    at.toggle(key="flow_gradients").set_value(True).run()
    for direction, g in (("backward", tr.upper["grad_h0_bw"]), ("forward", tr.grad_h0)):
        at.radio(key="flow_direction").set_value(direction).run()
        assert not at.exception
        spec = chart(at, "grad_fig")
        first = int(at.session_state["flow_first"] if tr.n > at.session_state["flow_per_page"]
                    else 0)
        cols = np.arange(tr.n)[first:first + int(at.session_state["flow_per_page"])]
        [cut] = [d for d in spec["data"] if d.get("name", "").startswith("✂ cut")]
        med = np.median(g[cols], axis=1)
        k = np.round(_arr(cut["x"]) + 0.5).astype(int)  # boundary before column k
        assert len(k) > 0
        np.testing.assert_allclose(_arr(cut["customdata"]), med[k], rtol=1e-6)
        assert f"Where the gradient stops</b> ({direction} layer)" in spec["layout"]["title"]["text"]
        assert ("dL/dh0_bw" in cut["name"]) == (direction == "backward")
    assert not np.allclose(np.median(tr.grad_h0, 1), np.median(tr.upper["grad_h0_bw"], 1))
    one = app(preset="chunks-stateful", epochs="1", sequences="120")
    one.sidebar.button(key="btn_train").click().run()
    wait_until_idle(one)
    one.session_state["view"] = "Hidden state"
    one.run()
    assert not [r for r in one.radio if r.key == "hidden_direction"]
    assert chart(one, "hidden_fig")["layout"]["title"]["text"].startswith("Slot 0: hT after")


# ---- stacked Bidirectional layers (layers=2, 3 with bidirectional=True) ------------------------
# Every layer is a keras.layers.Bidirectional; layer N > 1 reads layer N-1's two output
# sequences side by side. Keys: name + direction suffix + layer suffix (h0_bw_l2; bidir.key).

STACK = BIDI.replace(layers=2)


@pytest.fixture(scope="module")
def stack():
    return trained(STACK)


def test_stacked_engine_agrees_with_plain_keras_fit(stack):
    """The engine and model.fit (XLA), from the same initial weights, on two stacked
    Bidirectional LSTMs written the plain way (return_sequences below the top). Bound as the
    one-layer Bidirectional test's: 1e-6 on weights, 1e-5 relative on states."""
    eng, r, init, final = stack
    cfg = eng.cfg
    s = eng.train
    x = s.x[s.order.reshape(-1)]
    y = s.y[s.order.reshape(-1)].astype("float32")[:, None]
    inp = keras.Input(batch_shape=(cfg.batch_size, cfg.sample_len, 1))
    layers = [keras.layers.Bidirectional(
        keras.layers.LSTM(cfg.units, stateful=True, return_sequences=i < cfg.layers - 1),
        backward_layer=keras.layers.LSTM(cfg.units, stateful=True, go_backwards=True,
                                         return_sequences=i < cfg.layers - 1))
        for i in range(cfg.layers)]
    h = inp
    for la in layers:
        h = la(h)
    model = keras.Model(inp, keras.layers.Dense(1, activation="sigmoid")(h))
    model.set_weights(init)
    model.compile(keras.optimizers.Adam(cfg.lr), "binary_crossentropy", jit_compile=True)
    model.fit(x, y, batch_size=cfg.batch_size, epochs=cfg.epochs, shuffle=False, verbose=0)
    states = [v for la in layers for d in (la.forward_layer, la.backward_layer) for v in d.states]
    assert len(states) == len(final) == 8  # 2 layers x 2 directions x (h, c)
    werr = max(float(np.abs(a - b).max()) for a, b in zip(model.get_weights(), r.weights))
    serr = max(float((np.abs(v.numpy() - f) / np.maximum(1.0, np.abs(f))).max())
               for v, f in zip(states, final))
    print(f"2 stacked bidirectional LSTMs: engine vs fit: weights differ by {werr:g}, "
          f"states by {serr:g}")
    assert werr <= 1e-6 and serr <= 1e-5, f"weights differ by {werr:g}, states by {serr:g}"
    # the trace's last states are each layer's and direction's own, as the model holds them
    t = r.trace
    for i, (L, d) in enumerate((L, d) for L in (1, 2) for d in bidir.DIRECTIONS):
        np.testing.assert_array_equal(t.state_array("hT", L, d)[-1], final[2 * i])
        np.testing.assert_array_equal(t.state_array("cT", L, d)[-1], final[2 * i + 1])
    # every backward seed is its own (BACKWARD_OFFSET): 4 different recurrent kernels
    rec = [init[1], init[4], init[7], init[10]]
    assert all(not np.array_equal(a, b) for i, a in enumerate(rec) for b in rec[i + 1:])


def test_stacked_trace_keys_compose_direction_then_layer(stack):
    t = stack[1].trace
    assert set(bidir.state_keys("LSTM", "backward", 2)) == {"h0_bw_l2", "c0_bw_l2", "hT_bw_l2",
                                                            "cT_bw_l2"}
    assert {"h0_l2", "h0_bw", "h0_bw_l2", "grad_h0_bw_l2", "grad_c0_bw_l2"} <= set(t.upper)
    assert {"replay_kernel_bw", "replay_kernel_l2", "replay_kernel_bw_l2"} <= set(t.replay)
    assert t.replay["replay_kernel_bw_l2"].shape[1:] == (2 * t.units, 4 * t.units)  # reads 2U
    assert bidir.is_backward("h0_bw_l2") and not bidir.is_backward("h0_l2")
    # layer 1 forward keeps the one-layer names; a saved file reads back the same
    z = copy(t)
    assert sorted(z.upper) == sorted(t.upper) and sorted(z.replay) == sorted(t.replay)
    a = t.to_arrays()
    del a["cT_bw_l2"]
    with pytest.raises(ValueError, match="needs cT_bw_l2"):
        Trace.from_arrays(a)
    a = t.to_arrays()
    del a["replay_recurrent_bw_l2"]
    with pytest.raises(ValueError, match="layer 2 backward's weights"):
        Trace.from_arrays(a)


def test_stacked_carry_and_replay_per_layer_and_direction(stack):
    t = stack[1].trace
    c = t.carry_check()
    rows = c["directions"]
    print(rows)
    assert [(r["layer"], r["direction"]) for r in rows] == [(1, "forward"), (1, "backward"),
                                                           (2, "forward"), (2, "backward")]
    assert [r["layer"] for r in c["layers"]] == [1, 2]
    assert c["carried"] > 0 and c["replayed"] == 2
    for r in rows + c["layers"]:
        assert r["max_carry_error"] == 0.0 and r["max_fresh_abs"] == 0.0
        assert r["max_replay_error"] < 1e-5
    for r in rows:  # the backward carries enter the next chunk at the wrong end, in both layers
        if r["direction"] == "forward":
            assert r["continuation"] == c["continuation"] > 0 and r["wrong_end"] == 0
        else:
            assert r["wrong_end"] == c["continuation"] and r["continuation"] == 0
    # the four are different states
    hs = [t.state_array("hT", L, d) for L in (1, 2) for d in bidir.DIRECTIONS]
    assert all(not np.allclose(a, b) for i, a in enumerate(hs) for b in hs[i + 1:])


def test_a_corrupted_layer_2_backward_state_fails_the_checks(stack):
    t = stack[1].trace
    z = copy(t)
    k = int(z.replay["replay_batch"][-1])
    z.upper["h0_bw_l2"][k] += 0.3  # layer 2's backward h0 of a replayed batch
    c = z.carry_check()
    bad = {(r["layer"], r["direction"]): r for r in c["directions"]}
    assert bad[2, "backward"]["max_replay_error"] > REPLAY_TOLERANCE
    assert bad[2, "backward"]["max_carry_error"] > 0
    assert c["layers"][1]["max_replay_error"] > REPLAY_TOLERANCE
    assert c["max_replay_error"] > REPLAY_TOLERANCE and c["max_carry_error"] > 0
    for key in ((1, "forward"), (1, "backward"), (2, "forward")):  # the others are untouched
        assert bad[key]["max_replay_error"] < 1e-5 and bad[key]["max_carry_error"] == 0.0
    # carried wrongly once (a batch not replayed): the carry identity alone names it
    z = copy(t)
    z.upper["hT_bw_l2"][3] -= 0.2
    c = z.carry_check()
    assert c["directions"][3]["max_carry_error"] == pytest.approx(0.2, abs=1e-6)
    assert c["max_carry_error"] == pytest.approx(0.2, abs=1e-6)
    # layer 1's backward output sequence feeds layer 2: a wrong layer-1 backward weight fails
    # layer 1 backward's replay and, through its outputs, layer 2's
    z = copy(t)
    z.replay["replay_recurrent_bw"][-1] += 0.2
    rows = {(r["layer"], r["direction"]): r for r in z.carry_check()["directions"]}
    assert rows[1, "backward"]["max_replay_error"] > REPLAY_TOLERANCE
    assert rows[2, "forward"]["max_replay_error"] > REPLAY_TOLERANCE
    assert rows[1, "forward"]["max_replay_error"] < 1e-5
    # layer 2 reads the backward sequence flipped back into time order: fed unflipped, it fails
    from models import cells, trace as trace_mod
    assert trace_mod.replay_errors_by_layer(t).shape == (4, 2)


def test_layer_view_then_direction_view_is_that_layers_backward_direction(stack):
    t = stack[1].trace
    v = t.layer_view(2).direction_view("backward")
    assert (v.layer, v.direction) == (2, "backward")
    for k in ("h0", "c0", "hT", "cT", "grad_h0", "grad_c0"):
        np.testing.assert_array_equal(getattr(v, k), t.upper[f"{k}_bw_l2"])
    f = t.layer_view(2)
    np.testing.assert_array_equal(f.h0, t.upper["h0_l2"])
    np.testing.assert_array_equal(t.layer_view(1).direction_view("backward").hT, t.upper["hT_bw"])
    c = v.carry_check()
    assert c["wrong_end"] == t.carry_check()["continuation"] > 0 and c["continuation"] == 0
    assert c["max_carry_error"] == 0.0
    with pytest.raises(ValueError, match="one layer"):
        v.layer_view(1)
    from viz import carry_summary, direction_summary
    s = carry_summary(v, whole=t)
    assert "replay of 2 batches from the recorded h0 matches" in s and "wrong end" in s
    assert direction_summary(t, 2).count("layer 2 ") == 2 and "layer 1 " not in direction_summary(t, 2)


def test_stacked_batch1_copy_streams_every_layer_and_direction(stack):
    """Answers q8: the batch-1 copy of a stacked Bidirectional run, one whole sample per call,
    matches slot 0 of the trained shape in every layer's and direction's state."""
    from models import inference
    eng, r, _, _ = stack
    cfg = eng.cfg
    names = inference.state_keys(cfg)
    assert names == ("h", "c", "h_bw", "c_bw", "h_l2", "c_l2", "h_bw_l2", "c_bw_l2")
    x = eng.data.x_val
    m = inference.measure(cfg, r.weights, x, "binary")
    print(f"stacked bidirectional copy vs slot 0: {m['max_difference']:g}")
    assert set(names) <= set(m["stream"]) and m["per_call"] == cfg.sample_len
    assert m["max_difference"] <= inference.STREAM_TOLERANCE
    # the check fails when the copy's layer-2 backward weights are off ...
    bent = [w.copy() for w in r.weights]
    bent[10] += 1e-2  # layer 2 backward's recurrent kernel
    one = inference.stream_batch1(cfg, bent, "binary", x[0])
    assert inference.compare_streams(one, m["slot0"], names) > 10 * inference.STREAM_TOLERANCE
    # ... and when only that state is lost between samples
    one = inference.stream_batch1(cfg, r.weights, "binary", x[0])
    lost = {k: v.copy() for k, v in one.items()}
    lost["h_bw_l2"][1:] = 0.0
    assert inference.compare_streams(lost, m["slot0"], names) > 10 * inference.STREAM_TOLERANCE


def test_generated_stacked_bidirectional_script_runs_and_streams(tmp_path):
    """The Keras code view's script of a stacked Bidirectional config trains in a fresh
    interpreter, and its batch-1 copy (built anew from each layer's two directions' configs)
    matches slot 0 in every layer's and direction's h and c."""
    import os
    import subprocess
    import sys

    from test_codegen import ENV, check_stream
    cfg = STACK.replace(layers=3)
    src = generate(cfg, quick=True)
    assert "STATE_NAMES = ['h1', 'c1', 'h1_bw', 'c1_bw', 'h2', 'c2', 'h2_bw', 'c2_bw', 'h3'" in src
    assert "keras.models.clone_model(" not in src and "PER_CALL = SAMPLE_LEN" in src
    path = tmp_path / "stacked_bidi.py"
    path.write_text(src)
    p = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=300,
                       cwd=tmp_path, env=ENV)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.strip().splitlines()[-1].startswith("val_accuracy ")
    check_stream(p.stdout, cfg)
    assert os.path.exists(path)


def test_stacked_gradient_summary_and_answers_name_every_layer_and_direction(stack):
    """The gradient summary's per-state rows are each (layer, direction)'s own |dL/dh0|, the
    same arrays the gradient view draws; the Answers sentences (q6, q11) name all four."""
    from models.trace import gradient_summary
    from ui import text
    eng, r, _, _ = stack
    t = r.trace
    g = gradient_summary(t)
    rows = g["per_state"]
    assert [(x["layer"], x["direction"]) for x in rows] == [(1, "forward"), (1, "backward"),
                                                           (2, "forward"), (2, "backward")]
    for x in rows:
        v = gradient_summary(t.layer_view(x["layer"]).direction_view(x["direction"]))
        assert v["grad_h0_median"] == x["grad_h0_median"]
        # a backward view holds one state; a layer's view both its directions (layer 1's:
        # the whole trace)
        assert ("per_state" in v) == (x["direction"] == "forward")
        assert v["grad_c0_median"] == x["grad_c0_median"]
    assert rows[3]["grad_h0_median"] != rows[0]["grad_h0_median"]
    res = {"cfg": eng.cfg, "trace": t, "epochs": r.epochs, "metric": "accuracy", "notes": []}
    assert "layer 2 backward" in text.measured(6, res)
    s11 = text.measured(11, res)
    assert s11.startswith("Your last run stacked 2 Bidirectional layers (stateful): ")
    assert "layer 2 backward" in s11 and "wrong-end carries" in s11


def test_a_stateless_bidirectional_stack_starts_every_layer_and_direction_from_zeros():
    t = trained(STACK.replace(stateful=False, epochs=1))[1].trace
    c = t.carry_check()
    assert c["carried"] == 0 and c["fresh_starts"] > 0 and len(c["directions"]) == 4
    for row in c["directions"]:
        assert row["max_fresh_abs"] == 0.0 and row["max_replay_error"] < 1e-5
    assert np.abs(t.upper["hT_bw_l2"]).max() > 0  # each batch moved it, from zeros


def test_flow_hidden_and_gradient_views_offer_layer_and_direction():
    """Real Streamlit (AppTest): a small stacked Bidirectional run trained through the page;
    the flow, Hidden state and gradient views offer "Layer shown" AND "Direction shown", and
    layer 2 + backward draws layer 2's backward arrays (h0_bw_l2, hT_bw_l2, grad_h0_bw_l2)."""
    import json

    from test_app import app, wait_until_idle
    from test_flow_ui import _arr

    def chart(at, key):
        [c] = [c for c in at.get("plotly_chart") if key in c.proto.id]
        return json.loads(c.proto.spec)

    at = app(preset="bidirectional-chunks-stateful", epochs="1", sequences="120", layers="2")
    at.sidebar.button(key="btn_train").click().run()
    wait_until_idle(at)
    assert not at.exception
    tr = at.session_state["results"]["run"]["trace"]
    assert tr.bidirectional and tr.layers == 2
    at.radio(key="flow_colour").set_value("unit").run()
    at.radio(key="flow_layer").set_value(2).run()
    at.radio(key="flow_direction").set_value("backward").run()
    at.toggle(key="flow_gradients").set_value(True).run()
    assert not at.exception
    spec = chart(at, "flow_fig")
    z = _arr(spec["data"][0]["z"])
    h0 = tr.upper["h0_bw_l2"]
    assert np.allclose(z, h0[:z.shape[1], :z.shape[0], 0].T, atol=1e-6)
    assert not np.allclose(z, tr.upper["h0_bw"][:z.shape[1], :z.shape[0], 0].T, atol=1e-3)
    assert "◀ backward: start of chunk → end of next" in {d.get("name") for d in spec["data"]}
    assert any("layer 2 backward: largest |h0[k+1]−hT[k]| = 0 (exact), replay matches" in c.value
               for c in at.caption)
    assert any("backward carries enter the next chunk at the wrong end" in m.value
               and "replay of" in m.value and "matches" in m.value for m in at.markdown)
    g = chart(at, "grad_fig")
    [cut] = [d for d in g["data"] if d.get("name", "").startswith("✂ cut")]
    first = int(at.session_state["flow_first"] if tr.n > at.session_state["flow_per_page"] else 0)
    cols = np.arange(tr.n)[first:first + int(at.session_state["flow_per_page"])]
    k = np.round(_arr(cut["x"]) + 0.5).astype(int)
    assert len(k) > 0
    np.testing.assert_allclose(_arr(cut["customdata"]),
                               np.median(tr.upper["grad_h0_bw_l2"][cols], axis=1)[k], rtol=1e-6)
    at.session_state["view"] = "Hidden state"
    at.run()
    at.radio(key="hidden_layer").set_value(2).run()
    at.radio(key="hidden_direction").set_value("backward").run()
    at.radio(key="hidden_which").set_value("hT").run()
    assert not at.exception
    spec = chart(at, "hidden_fig")
    assert np.allclose(_arr(spec["data"][0]["z"]), tr.upper["hT_bw_l2"][:, 0, :].T, atol=1e-6)
    assert spec["layout"]["title"]["text"].startswith("Slot 0, layer 2 of 2, backward direction: hT_bw")


def test_live_panel_offers_the_direction_and_draws_its_states():
    """While a Bidirectional run trains, the live flow offers the direction (forward first)
    and draws the chosen direction's newest states: its figure is the one viz draws from that
    direction of the run's published newest batches (real training, real Streamlit)."""
    import json
    import time

    import viz
    from test_app import app
    from ui import runs, views
    # long enough to still train while the page polls (the trainer process trains fast)
    at = app(preset="bidirectional-chunks-stateful", epochs="480")
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
        radios = [r for r in at.radio if r.key == "live_direction"]
        charts = [c for c in at.get("plotly_chart") if "live_flow_run" in c.proto.id]
        if not radios or not charts:
            continue
        direction = radios[0].value
        if not seen:
            assert direction == "forward"
        spec = json.loads(charts[0].proto.spec)
        wants = [viz.flow_figure(r.direction_view(direction), window=runs.LIVE_BATCHES,
                                 max_slots=views.LIVE_SLOTS, max_batches=runs.LIVE_BATCHES)
                 for r in candidates if r is not None]
        wants = [w for w in wants
                 if spec["layout"]["xaxis"]["ticktext"] == list(w.layout.xaxis.ticktext)]
        if not wants:
            continue  # batches were published twice while the page drew: try again
        assert f"{direction} direction" in spec["layout"]["title"]["text"]
        names = {d.get("name") for d in spec["data"]}
        assert names == {d.name for d in wants[0].data}  # a backward flow's carries: wrong end
        texts = [d.get("text") for d in spec["data"] if d.get("name") == "continued"]
        assert texts == [list(d.text) for d in wants[0].data if d.name == "continued"]
        seen[direction] = names
        caps = [c.value for c in at.caption if c.value.startswith("Newest ")]
        assert caps and f"layer 1 {direction}:" in caps[0], caps  # the carries of the one drawn
        if direction == "backward":
            assert "wrong end" in caps[0], caps[0]
        at.radio(key="live_direction").set_value("backward")
    at.sidebar.button(key="btn_stop").click().run()
    # leave nothing behind: the job ends and the page collects it (a job or an uncollected
    # result keeps the process-wide manager's threads alive into later tests)
    runs.manager().wait(job, timeout=60)
    t1 = time.time()
    while at.session_state["runs"] and time.time() - t1 < 30:
        time.sleep(0.2)
        at.run()
    assert set(seen) == {"forward", "backward"}, f"saw only {sorted(seen)}"
    assert seen["forward"] != seen["backward"]  # the two directions draw different carries
