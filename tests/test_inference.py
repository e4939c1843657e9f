"""Inference with another batch size (models/inference.py), with real Keras layers.

The batch-1 copy is checked against the batch-B model fed the same stream in slot 0; the
check is shown to fail when the copy has other weights or the stream loses its state.
"""
import numpy as np
import pytest

from models import claims, inference
from models.cells import state_names
from models.config import RunConfig
from models.engine import build_model
from models.presets import PRESETS

CFG = RunConfig(layout="chunks", length=5, batch_size=8, units=6, seq_len=20, sequences=60)


def weights_and_data(cfg, seed=0):
    model, *_ = build_model(cfg, 1, 1, "binary")
    rng = np.random.default_rng(seed)
    return model.get_weights(), rng.normal(size=(cfg.batch_size, cfg.seq_len, 1)).astype(np.float32)


@pytest.mark.parametrize("cell,bidi", [("LSTM", False), ("GRU", False), ("SimpleRNN", False),
                                      ("LSTM", True), ("GRU", True)])
def test_batch1_copy_matches_slot0_of_the_trained_shape(cell, bidi):
    cfg = CFG.replace(cell=cell, bidirectional=bidi)
    w, x = weights_and_data(cfg)
    one = inference.stream_batch1(cfg, w, "binary", x[0])
    slot0 = inference.stream_slot0(cfg, w, "binary", x[0], x[1:])
    names = inference.state_keys(cfg)
    # only the cell's own states (no c for GRU), both directions' for a Bidirectional layer
    assert names == state_names(cell) + (tuple(n + "_bw" for n in state_names(cell)) if bidi else ())
    assert set(one) == {"output", "steps", *names}
    assert list(slot0["steps"]) == [4, 9, 14, 19]
    # one step per call, or (Bidirectional: its backward direction reads a whole sample) one
    # sample per call
    assert list(one["steps"]) == (list(slot0["steps"]) if bidi else list(range(20)))
    d = inference.compare_streams(one, slot0, names)
    assert d <= inference.STREAM_TOLERANCE, d
    # The check fails on a copy with slightly other weights ...
    bent = [a.copy() for a in w]
    bent[1] += 1e-3
    assert inference.compare_streams(inference.stream_batch1(cfg, bent, "binary", x[0]), slot0,
                                     names) > 10 * inference.STREAM_TOLERANCE
    # ... and on a stream whose state is lost between chunks (reset before each chunk).
    lost = {k: np.concatenate([inference.stream_batch1(cfg, w, "binary", x[0, a:a + 5])[k]
                               for a in range(0, 20, 5)]) for k in one if k != "steps"}
    lost["steps"] = one["steps"]
    assert inference.compare_streams(lost, slot0, names) > 10 * inference.STREAM_TOLERANCE
    if bidi:  # one step per call is another model for the backward direction: it differs
        stepwise = inference.stream_batch1(cfg, w, "binary", x[0], n=1)
        assert inference.compare_streams(stepwise, slot0, names) > 10 * inference.STREAM_TOLERANCE
    # Other slots' streams do not reach slot 0: other sequences there, same slot-0 answers.
    other = inference.stream_slot0(cfg, w, "binary", x[0], x[1:][::-1] * 3)
    assert inference.compare_streams(one, other, names) <= inference.STREAM_TOLERANCE


def test_predict_on_the_trained_shape_needs_its_batch_size_and_moves_the_state():
    cfg = PRESETS["chunks-stateful"].config
    w, _ = weights_and_data(cfg)
    x = np.random.default_rng(1).normal(size=(50, 5, 1)).astype(np.float32)
    p = inference.predict_batches(cfg, w, "binary", x)
    assert "Expected batch size: 50" in p["default"] and "Received batch size: 32" in p["default"]
    assert "Received batch size: 1" in p["one_sample"]
    assert p["with_batch_size"] is None and p["rows"] == 50
    assert all(v > 0 for v in p["moved"].values()), p["moved"]
    # A stateless model stores no state: nothing to move. The app's stateless model passes a
    # zero initial state of B rows (engine.build_model), so it is tied to B as well, but the
    # failure comes from the cell's shapes, not from the stateful check.
    q = inference.predict_batches(cfg.replace(stateful=False), w, "binary", x)
    assert q["moved"] == {"predict": 0.0, "predict_on_batch": 0.0, "evaluate": 0.0}
    assert "Dimensions must be equal, but are 32 and 50" in q["default"]
    assert "Expected batch size" not in q["default"]


def test_inference_claims_can_fail_on_other_runs():
    """The four claims judged on measurements of untrained weights and other shapes."""
    inf = [c for c in claims.CLAIMS if isinstance(c, claims.Inference)]
    assert {c.question for c in inf} == {8} and len(inf) == 4
    cfg = PRESETS["chunks-stateful"].config
    w, _ = weights_and_data(cfg)
    untrained = inference.for_run(cfg, w)
    verdict = {c.id: claims.evaluate(c, {c.preset: {"inference": untrained}}).holds for c in inf}
    # Untrained, it still refuses other batch sizes, moves its state and matches its copy,
    # but the copy's answers are no better than chance.
    assert verdict == {"predict-needs-batch-size": True, "predict-evaluate-move-state": True,
                       "batch1-copy-matches-slot0": True, "batch1-copy-answers": False}
    # A batch-1 stateful run: predict's default batch fits it, so the first claim fails.
    b1 = RunConfig(layout="steps", batch_size=1, seq_len=20, sequences=60)
    m = inference.for_run(b1, weights_and_data(b1)[0], n_streams=0)
    bad = claims.BY_ID["predict-needs-batch-size"]
    assert not claims.evaluate(bad, {bad.preset: {"inference": m}}).holds
    # A stateless run stores no state: the second fails.
    sl = cfg.replace(stateful=False)
    m = inference.for_run(sl, w, n_streams=0)
    moved = claims.BY_ID["predict-evaluate-move-state"]
    assert not claims.evaluate(moved, {moved.preset: {"inference": m}}).holds
    # No measurement at all: every claim says so and fails.
    assert not any(claims.evaluate(c, {c.preset: {}}).holds for c in inf)


def test_reset_slot_zeroes_one_slot_and_leaves_the_others_exactly():
    cfg = CFG.replace(batch_size=5)
    model, layer, *_ = build_model(cfg, 1, 1, "binary")
    x = np.random.default_rng(2).normal(size=(5, 5, 1)).astype(np.float32)
    model(x)
    before = [v.numpy().copy() for v in layer.states]
    assert all(np.abs(b).min() > 0 for b in before)
    inference.reset_slot(layer, 2)
    after = [v.numpy() for v in layer.states]
    for b, a in zip(before, after):
        assert np.array_equal(np.delete(a, 2, 0), np.delete(b, 2, 0))  # bit for bit
        assert not a[2].any()


def test_inference_claims_hold_on_the_trained_chunks_run():
    """The preset's own run, as `python -m models claims` measures it."""
    m = claims.run_preset("chunks-stateful")
    inf = [c for c in claims.CLAIMS if isinstance(c, claims.Inference)]
    for c in inf:
        v = claims.evaluate(c, {"chunks-stateful": m})
        assert v.holds, f"{c.id}: {v.measured}"
    assert m["inference"]["stream_accuracy"] >= 0.99 and m["inference"]["streams"] == 20


@pytest.mark.parametrize("preset,fed", [
    ("chunks-stateful", "one step per call"),
    # its backward direction reads a whole sample: streamed one sample per call
    ("bidirectional-chunks-stateful", "one sample of 5 steps per call")])
def test_answers_streams_the_run_shown_through_a_batch1_copy(preset, fed):
    import re
    import time
    from pathlib import Path
    from streamlit.testing.v1 import AppTest
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=120)
    for k, v in {"preset": preset, "epochs": "2", "seed": "31"}.items():
        at.query_params[k] = v
    at.run()
    at.sidebar.button(key="btn_train").click().run()
    t0 = time.time()
    while not ("results" in at.session_state and at.session_state["results"]):
        assert time.time() - t0 < 180, "the run did not finish"
        time.sleep(0.5)
        at.run()
    at.session_state["view"] = "Answers"
    at.run()
    assert not at.exception, at.exception
    assert any("Why does my stateful model need its batch size" in m.value for m in at.markdown)
    at.toggle(key="inference_on").set_value(True).run()
    assert not at.exception, at.exception
    assert any("inference_fig" in c.proto.id for c in at.get("plotly_chart"))
    [words] = [m.value for m in at.markdown if "copied into a batch-1 stateful LSTM" in m.value]
    assert "Received batch size: 32" in words and "With `batch_size=50`: 50 rows." in words
    assert f"validation sequence 0 {fed}" in words, words
    diff = float(re.search(r"largest difference ([-+.e0-9]+) ", words).group(1))
    assert diff <= inference.STREAM_TOLERANCE, words
